package audit

import (
	"errors"
	"fmt"
	"io"

	"github.com/zeebo/blake3"
)

// Observer is told of commits, for work that follows the chain without
// slowing it down (the Merkle checkpoints of internal/checkpoint).
// Committed is called by the commit goroutine after records up to seq are
// durable and visible: it must not block. The observer reads the records
// itself with Payloads.
type Observer interface {
	Committed(seq uint64)
}

// Observer returns Options.Observer, so whoever holds the chain reaches
// the service that proves its records (nil if none).
func (c *Chain) Observer() Observer { return c.opts.Observer }

// Payloads calls fn with the seq and canonical bytes of every committed
// record with after < seq <= upTo, in order, until fn fails. The payload is
// only valid during the call. It checks framing, CRCs, seq order and that
// each delivered record links to the one before it (BLAKE3), so what an
// observer builds on is what the chain commits to.
func (c *Chain) Payloads(after, upTo uint64, fn func(seq uint64, payload []byte) error) error {
	return c.frames(after, upTo, func(seq uint64, fr Frame) error { return fn(seq, fr.Payload) })
}

// frames is Payloads handing over whole frames (offset and head too).
func (c *Chain) frames(after, upTo uint64, fn func(seq uint64, fr Frame) error) error {
	c.mu.Lock()
	upTo = min(upTo, c.seq)
	segs := append([]segInfo(nil), c.segs...)
	c.mu.Unlock()
	if after >= upTo {
		return nil
	}
	if err := c.deletedErr(after + 1); err != nil {
		return err // never a wrong row, nor a silent gap
	}
	for i, s := range segs {
		if i+1 < len(segs) && segs[i+1].first-1 <= after {
			continue
		}
		if s.first > upTo {
			return nil
		}
		more, err := c.payloadsSegment(s, after, upTo, fn)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

func (c *Chain) payloadsSegment(s segInfo, after, upTo uint64, fn func(uint64, Frame) error) (bool, error) {
	f, err := openSegment(c.dir, s)
	if err != nil {
		return false, err
	}
	defer f.Close()
	rd, err := NewReader(io.LimitReader(f, s.size))
	if err != nil {
		return false, fmt.Errorf("segment %s: %w", s.name, err)
	}
	prev, want := rd.Header().PrevHead, s.first
	h := blake3.New()
	for {
		fr, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return true, nil
		}
		if err != nil {
			return false, &SeqError{Seq: want, Err: fmt.Errorf("segment %s: %w", s.name, err)}
		}
		seq, ok := peekSeq(fr.Payload)
		if !ok || seq != want {
			return false, &SeqError{Seq: want, Err: fmt.Errorf("segment %s: offset %d: %w", s.name, fr.Offset, ErrSeqOrder)}
		}
		want++
		if seq <= after {
			prev = fr.Head
			continue
		}
		if seq > upTo {
			return false, nil
		}
		if nextHead(h, prev, fr.Payload) != fr.Head {
			return false, &SeqError{Seq: seq, Err: ErrHashMismatch}
		}
		prev = fr.Head
		if err := fn(seq, fr); err != nil {
			return false, err
		}
	}
}
