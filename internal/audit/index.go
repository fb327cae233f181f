package audit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/zeebo/blake3"
)

// index is the query index: per-AID postings of seqs and, per seq, the
// offset of its frame in its segment (the segment follows from the seq).
// It lives in memory, is fed by the acker as batches commit (off the
// write/sync path), and is saved to Options.IndexDir at Close. It is a
// cache: Open checks the saved copy against the chain head it records and
// rebuilds it from the chain when it is missing, damaged or stale.
type index struct {
	mu    sync.RWMutex
	upTo  uint64              // seqs 1..upTo are indexed
	head  [HeadSize]byte      // chain head after upTo
	offs  []uint32            // offs[seq-1]: frame offset in its segment
	posts map[uint64][]uint64 // aid -> ascending seqs
}

func newIndex() *index { return &index{posts: map[uint64][]uint64{}} }

// add indexes the record seq of agent aid whose frame starts at off. Seqs
// must come in order; a gap means a bug and is refused.
func (x *index) add(seq, aid uint64, off int64) error {
	if seq != x.upTo+1 {
		return fmt.Errorf("%w: index at seq %d given seq %d", ErrIndex, x.upTo, seq)
	}
	if off < 0 || off > 1<<32-1 {
		return fmt.Errorf("%w: offset %d beyond 4 GiB", ErrIndex, off)
	}
	x.offs = append(x.offs, uint32(off))
	x.posts[aid] = append(x.posts[aid], seq)
	x.upTo = seq
	return nil
}

// indexBatch indexes a committed batch. An index that cannot follow is
// dropped (queries fall back to scanning), never trusted half-updated.
func (c *Chain) indexBatch(p *pending) {
	x := c.idx
	if x == nil {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.posts == nil {
		return // dropped
	}
	for _, req := range p.reqs {
		for i := range req.recs {
			r := &req.recs[i]
			if r.Seq == 0 {
				continue
			}
			if err := x.add(r.Seq, r.AID, req.offs[i]); err != nil {
				x.posts, x.offs = nil, nil
				return
			}
		}
	}
	x.head = p.head
}

// snapshot returns the postings of aid and the indexed bound; the slices
// are append-only, so they stay valid without the lock.
func (x *index) snapshot(aid uint64) (seqs []uint64, offs []uint32, upTo uint64, ok bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.posts == nil {
		return nil, nil, 0, false
	}
	return x.posts[aid], x.offs, x.upTo, true
}

// catchUp brings x up to the chain's committed state by reading the
// records after x.upTo: all of them for a new index, the few it missed for
// a saved one. It returns ErrIndexStale if x does not describe a prefix of
// this chain (its head differs from the chain's at x.upTo).
func (c *Chain) catchUp(x *index) error {
	c.mu.Lock()
	seq, head := c.seq, c.head
	c.mu.Unlock()
	switch {
	case x.upTo > seq:
		return fmt.Errorf("%w: indexes %d records, chain has %d", ErrIndexStale, x.upTo, seq)
	case x.upTo == seq:
		if x.head != head {
			return fmt.Errorf("%w: head at seq %d differs", ErrIndexStale, seq)
		}
		return nil
	}
	h := blake3.New()
	return c.frames(x.upTo, seq, func(seq uint64, fr Frame) error {
		if seq == x.upTo+1 && nextHead(h, x.head, fr.Payload) != fr.Head {
			return fmt.Errorf("%w: head at seq %d differs", ErrIndexStale, x.upTo)
		}
		aid, ok := peekAID(fr.Payload)
		if !ok {
			return &SeqError{Seq: seq, Err: ErrNonCanonical}
		}
		if err := x.add(seq, aid, fr.Offset); err != nil {
			return err
		}
		x.head = fr.Head
		return nil
	})
}

// readFrameAt reads and checks the frame at off of f, reusing buf.
func readFrameAt(f *os.File, off int64, buf []byte) (Frame, []byte, error) {
	var lb [4]byte
	if _, err := f.ReadAt(lb[:], off); err != nil {
		return Frame{}, buf, fmt.Errorf("read frame: %w", err)
	}
	l := binary.LittleEndian.Uint32(lb[:])
	if l == 0 || l > MaxPayload {
		return Frame{}, buf, &FrameError{Offset: off, Len: l, Err: ErrFrameLength}
	}
	n := 4 + int(l) + HeadSize + 4
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := f.ReadAt(buf, off); err != nil {
		if errors.Is(err, io.EOF) {
			return Frame{}, buf, &FrameError{Offset: off, Len: l, Err: ErrTornFrame}
		}
		return Frame{}, buf, fmt.Errorf("read frame: %w", err)
	}
	body := buf[:n-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(buf[n-4:]) {
		return Frame{}, buf, &FrameError{Offset: off, Len: l, Err: ErrFrameCRC}
	}
	return Frame{Offset: off, Payload: buf[4 : 4+l], Head: [HeadSize]byte(buf[4+l : n-4])}, buf, nil
}

// queryIndexed answers a query by AID from the index: it reads only the
// frames of that agent, then scans the few records the index has not
// seen yet. ok is false when there is no usable index.
func (c *Chain) queryIndexed(q Query, limit int, upTo uint64) (out []Record, ok bool, err error) {
	seqs, offs, idxUpTo, ok := c.idx.snapshot(*q.AID)
	if !ok {
		return nil, false, nil
	}
	c.mu.Lock()
	segs := append([]segInfo(nil), c.segs...)
	c.mu.Unlock()
	files := map[string]*os.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	var buf []byte
	i := sort.Search(len(seqs), func(i int) bool { return seqs[i] > q.AfterSeq })
	for ; i < len(seqs) && len(out) < limit; i++ {
		seq := seqs[i]
		if seq > min(upTo, idxUpTo) {
			break
		}
		k := sort.Search(len(segs), func(k int) bool { return segs[k].first > seq }) - 1
		if k < 0 {
			return nil, true, fmt.Errorf("%w: no segment holds seq %d", ErrIndex, seq)
		}
		s := segs[k]
		f := files[s.name]
		if f == nil {
			if f, err = os.Open(filepath.Join(c.dir, s.name)); err != nil {
				return nil, true, fmt.Errorf("open segment: %w", err)
			}
			files[s.name] = f
		}
		var fr Frame
		if fr, buf, err = readFrameAt(f, int64(offs[seq-1]), buf); err != nil {
			return nil, true, &SeqError{Seq: seq, Err: fmt.Errorf("segment %s: %w", s.name, err)}
		}
		r, err := DecodeRecord(fr.Payload)
		if err != nil {
			return nil, true, &SeqError{Seq: seq, Err: err}
		}
		if r.Seq != seq {
			return nil, true, &SeqError{Seq: seq, Err: fmt.Errorf("%w: index points at seq %d", ErrIndex, r.Seq)}
		}
		r.Hash = hexHead(fr.Head)
		if q.match(r) {
			out = append(out, r)
		}
	}
	if len(out) < limit && idxUpTo < upTo {
		err = c.scan(max(idxUpTo, q.AfterSeq), upTo, func(r Record) bool {
			if q.match(r) {
				out = append(out, r)
			}
			return len(out) < limit
		})
	}
	return out, true, err
}
