package audit

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Query limits.
const (
	DefaultLimit = 1000
	MaxLimit     = 10000
)

// Query selects records. Zero fields match anything.
type Query struct {
	AID          *uint64   // nil: any agent
	Since, Until time.Time // Since inclusive, Until exclusive; zero: open
	// Type matches exactly, or as a prefix when it ends in "*" ("agent.*").
	Type     string
	Cap      string
	Result   string
	AfterSeq uint64 // only records with Seq > AfterSeq
	Limit    int    // 0: DefaultLimit; at most MaxLimit; ignored by Follow
}

// check validates q and returns the effective limit.
func (q Query) check() (int, error) {
	if i := strings.IndexByte(q.Type, '*'); i >= 0 && i != len(q.Type)-1 {
		return 0, fmt.Errorf("%w: type %q: '*' only at the end", ErrBadQuery, q.Type)
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Until.Before(q.Since) {
		return 0, fmt.Errorf("%w: until before since", ErrBadQuery)
	}
	switch {
	case q.Limit < 0 || q.Limit > MaxLimit:
		return 0, fmt.Errorf("%w: limit %d (0..%d)", ErrBadQuery, q.Limit, MaxLimit)
	case q.Limit == 0:
		return DefaultLimit, nil
	}
	return q.Limit, nil
}

func (q Query) match(r Record) bool {
	if q.AID != nil && r.AID != *q.AID {
		return false
	}
	if !q.Since.IsZero() && r.Time.Before(q.Since) {
		return false
	}
	if !q.Until.IsZero() && !r.Time.Before(q.Until) {
		return false
	}
	if p, ok := strings.CutSuffix(q.Type, "*"); ok {
		if !strings.HasPrefix(r.Type, p) {
			return false
		}
	} else if q.Type != "" && r.Type != q.Type {
		return false
	}
	return (q.Cap == "" || r.Cap == q.Cap) && (q.Result == "" || r.Result == q.Result)
}

// Query returns up to q.Limit matching records with Seq > q.AfterSeq, in
// seq order. To page, pass the last Seq returned as the next AfterSeq.
// With a query index it reads only candidate frames for the most
// selective field (plus the rows the index has not taken in yet);
// otherwise it streams the segments. It checks framing, CRC and canonical form, but not
// linkage: that is Verify's job.
func (c *Chain) Query(q Query) ([]Record, error) {
	limit, err := q.check()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	upTo := c.seq
	if c.pruned != nil && q.AfterSeq < c.pruned.Last {
		// The deleted prefix holds nothing to return: start past it, so
		// neither the index nor the scan reaches for a removed file.
		q.AfterSeq = c.pruned.Last
	}
	c.mu.Unlock()
	if c.idx != nil {
		if out, ok, err := c.queryIndexed(q, limit, upTo); ok {
			return out, err
		}
	}
	var out []Record
	err = c.scan(q.AfterSeq, upTo, func(r Record) bool {
		if q.match(r) {
			out = append(out, r)
		}
		return len(out) < limit
	})
	return out, err
}

// scan calls fn for every committed record with after < Seq <= upTo, in
// order, until fn returns false.
func (c *Chain) scan(after, upTo uint64, fn func(Record) bool) error {
	if after >= upTo {
		return nil
	}
	c.mu.Lock()
	segs := append([]segInfo(nil), c.segs...)
	if c.pruned != nil {
		after = max(after, c.pruned.Last) // deleted rows are skipped, not errors
	}
	c.mu.Unlock()
	for i, s := range segs {
		if i+1 < len(segs) && segs[i+1].first-1 <= after {
			continue // every record of s is <= after
		}
		if s.first > upTo {
			return nil
		}
		more, err := c.scanSegment(s, after, upTo, fn)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

func (c *Chain) scanSegment(s segInfo, after, upTo uint64, fn func(Record) bool) (bool, error) {
	f, err := openSegment(c.dir, s)
	if err != nil {
		return false, err
	}
	defer f.Close()
	rd, err := NewReader(io.LimitReader(f, s.size))
	if err != nil {
		return false, fmt.Errorf("segment %s: %w", s.name, err)
	}
	for {
		fr, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("segment %s: %w", s.name, err)
		}
		seq, ok := peekSeq(fr.Payload)
		if !ok {
			return false, fmt.Errorf("segment %s: offset %d: %w", s.name, fr.Offset, ErrNonCanonical)
		}
		if seq <= after {
			continue
		}
		if seq > upTo {
			return false, nil
		}
		r, err := DecodeRecord(fr.Payload)
		if err != nil {
			return false, &SeqError{Seq: seq, Err: err}
		}
		r.Hash = hexHead(fr.Head)
		if !fn(r) {
			return false, nil
		}
	}
}
