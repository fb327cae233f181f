package audit

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"runtime/debug"
	"sort"
	"strings"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// candidates returns up to n ascending seqs in after+1..upTo that may
// match, and whether there are none left after them; an error is a
// damaged index.
type candidates func(tx *bolt.Tx, after, upTo uint64, n int) (seqs []uint64, done bool, err error)

// driver picks the most selective indexed field of q to walk; every
// candidate is then read from the chain and matched in full. holds
// reports whether a row read for a candidate has the walked field's
// value: a row that does not is the index's damage, never a match.
func driver(q Query) (walk candidates, holds func(Record) bool) {
	always := func(Record) bool { return true }
	switch {
	case q.AID != nil:
		aid := *q.AID
		return prefixWalk(bAID, u64key(aid)), func(r Record) bool { return r.AID == aid }
	case q.Cap != "":
		return strWalk(bCap, q.Cap), func(r Record) bool { return cutKeyStr(r.Cap) == cutKeyStr(q.Cap) }
	case q.Type != "" && !strings.HasSuffix(q.Type, "*"):
		return strWalk(bType, q.Type), func(r Record) bool { return cutKeyStr(r.Type) == cutKeyStr(q.Type) }
	case q.Type != "":
		p := strings.TrimSuffix(q.Type, "*")
		return typePrefixWalk(p), func(r Record) bool { return typeKeyMatches(cutKeyStr(r.Type), p) }
	case q.Result != "":
		return strWalk(bRes, q.Result), func(r Record) bool { return cutKeyStr(r.Result) == cutKeyStr(q.Result) }
	case !q.Since.IsZero() || !q.Until.IsZero():
		return timeWalk(q), always
	}
	return seqWalk, always
}

// typeKeyMatches reports whether the blocks of indexed (cut) type k are
// walked for the type prefix p.
func typeKeyMatches(k, p string) bool {
	return strings.HasPrefix(k, p) || (len(k) == maxKeyStr && strings.HasPrefix(p, k))
}

func strWalk(bucket []byte, s string) candidates {
	return prefixWalk(bucket, strPrefix(nil, s))
}

// prefixWalk walks the posting blocks of prefix: it seeks the first block
// starting after AfterSeq, then steps back one, to the block that may
// hold seqs on both sides of it.
func prefixWalk(bucket, prefix []byte) candidates {
	return func(tx *bolt.Tx, after, upTo uint64, n int) ([]uint64, bool, error) {
		cur := tx.Bucket(bucket).Cursor()
		start := blockKey(prefix, after+1)
		k, v := cur.Seek(start)
		var pk, pv []byte
		if k == nil {
			pk, pv = cur.Last()
		} else {
			pk, pv = cur.Prev()
		}
		if isBlock(pk, prefix) {
			k, v = pk, pv
		} else {
			k, v = cur.Seek(start)
		}
		var out, seqs []uint64
		var last uint64 // blocks of one value ascend and do not overlap
		for ; isBlock(k, prefix); k, v = cur.Next() {
			var err error
			if seqs, err = decodeBlock(k, v, seqs[:0]); err != nil {
				return nil, false, err
			}
			if seqs[0] <= last {
				return nil, false, fmt.Errorf("%w: posting block %x overlaps the one before", ErrIndex, k)
			}
			last = seqs[len(seqs)-1]
			for _, s := range seqs {
				if s <= after {
					continue
				}
				if s > upTo {
					return out, true, nil
				}
				if len(out) == n {
					return out, false, nil
				}
				out = append(out, s)
			}
		}
		return out, true, nil
	}
}

// typePrefixWalk merges the walks of every indexed type starting with p.
func typePrefixWalk(p string) candidates {
	return func(tx *bolt.Tx, after, upTo uint64, n int) ([]uint64, bool, error) {
		var walks []candidates
		cur := tx.Bucket(bType).Cursor()
		for k, _ := cur.First(); k != nil; {
			if len(k) < 10 {
				return nil, false, fmt.Errorf("%w: type key %x", ErrIndex, k)
			}
			l := int(binary.BigEndian.Uint16(k))
			if len(k) != 2+l+8 {
				return nil, false, fmt.Errorf("%w: type key %x", ErrIndex, k)
			}
			typ := k[:2+l]
			if typeKeyMatches(string(k[2:2+l]), p) {
				walks = append(walks, prefixWalk(bType, bytes.Clone(typ)))
			}
			k, _ = cur.Seek(append(bytes.Clone(typ), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0))
		}
		var out []uint64
		done := true
		for _, w := range walks {
			s, d, err := w(tx, after, upTo, n)
			if err != nil {
				return nil, false, err
			}
			out = append(out, s...)
			done = done && d
		}
		sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
		if len(out) > n {
			out, done = out[:n], false
		}
		return out, done, nil
	}
}

// timeWalk yields every seq of the time blocks overlapping the range.
func timeWalk(q Query) candidates {
	lo, hi := int64(-1<<63), int64(1<<63-1)
	if !q.Since.IsZero() {
		lo = q.Since.UnixNano()
	}
	if !q.Until.IsZero() {
		hi = q.Until.UnixNano() - 1
	}
	return func(tx *bolt.Tx, after, upTo uint64, n int) ([]uint64, bool, error) {
		start := after / timeBlock
		// Blocks before the first whose running max reaches lo hold no
		// time >= lo.
		if k, _ := tx.Bucket(bTMax).Cursor().Seek(u64key(orderedTime(lo))); len(k) == 16 {
			start = max(start, binary.BigEndian.Uint64(k[8:]))
		} else if k == nil {
			return nil, true, nil
		} else {
			return nil, false, fmt.Errorf("%w: tmax key %x", ErrIndex, k)
		}
		cur := tx.Bucket(bTime).Cursor()
		var out []uint64
		for k, v := cur.Seek(u64key(start)); k != nil; k, v = cur.Next() {
			if len(k) != 8 || len(v) != 16 {
				return nil, false, fmt.Errorf("%w: time block %x", ErrIndex, k)
			}
			b := binary.BigEndian.Uint64(k)
			if int64(binary.BigEndian.Uint64(v)) > hi || int64(binary.BigEndian.Uint64(v[8:])) < lo {
				continue
			}
			for seq := max(b*timeBlock+1, after+1); seq <= (b+1)*timeBlock; seq++ {
				if seq > upTo {
					return out, true, nil
				}
				if len(out) == n {
					return out, false, nil
				}
				out = append(out, seq)
			}
		}
		return out, true, nil
	}
}

func seqWalk(_ *bolt.Tx, after, upTo uint64, n int) ([]uint64, bool, error) {
	var out []uint64
	for seq := after + 1; seq <= upTo && len(out) < n; seq++ {
		out = append(out, seq)
	}
	return out, after+uint64(len(out)) >= upTo, nil
}

// queryIndexed answers q from the index up to what it holds, then scans
// the rows it has not taken in yet. ok is false when there is no usable
// index (it failed): the caller scans.
func (c *Chain) queryIndexed(q Query, limit int, upTo uint64) (out []Record, ok bool, err error) {
	x := c.idx
	x.mu.RLock()
	defer x.mu.RUnlock()
	// A damaged file can make bbolt panic or fault on its mapping (a key
	// pointing past it): both become a panic here, the query scans, and
	// the indexer rebuilds the file.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			out, ok, err = nil, false, nil
			x.damaged.Store(true)
			x.wake()
		}
	}()
	if x.err != nil {
		return nil, false, nil
	}
	idxUpTo := min(x.upTo.Load(), upTo)
	walk, holds := driver(q)
	files := map[string]segFile{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	c.mu.Lock()
	segs := append([]segInfo(nil), c.segs...)
	c.mu.Unlock()
	var buf []byte
	after := q.AfterSeq
	// The first round asks for as many candidates as the page still
	// needs (each costs an offset lookup, and with the walked field the
	// only filter every one matches); later rounds, of a query whose other
	// fields drop candidates, double it.
	chunk := max(limit, 16)
	for done := after >= idxUpTo; !done && len(out) < limit; {
		var seqs []uint64
		var offs []uint32
		if err := x.db.View(func(tx *bolt.Tx) error {
			var err error
			if seqs, done, err = walk(tx, after, idxUpTo, chunk); err != nil {
				return err
			}
			ol := offsets{b: tx.Bucket(bOff)}
			offs = make([]uint32, len(seqs))
			for i, s := range seqs {
				if offs[i], err = ol.of(s); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return x.distrust(err)
		}
		// First every candidate's segment, and a read-ahead hint for its
		// frame: a page of one agent's rows lies spread over a few
		// thousand frames of chain, and on a chain larger than the page
		// cache the reads then wait on the disk together, not one by one.
		fs, names := make([]segFile, len(seqs)), make([]string, len(seqs))
		var hint readHint
		for i, seq := range seqs {
			if seq <= after || seq > idxUpTo || i > 0 && seq <= seqs[i-1] {
				return x.distrust(fmt.Errorf("%w: candidate %d out of order", ErrIndex, seq))
			}
			k := sort.Search(len(segs), func(k int) bool { return segs[k].first > seq }) - 1
			if k < 0 {
				return x.distrust(fmt.Errorf("%w: no segment holds seq %d", ErrIndex, seq))
			}
			s := segs[k]
			f := files[s.name]
			if f == nil {
				if f, err = openSegment(c.dir, s); err != nil {
					if errors.Is(err, ErrArchiveMissing) || errors.Is(err, ErrArchiveDamaged) {
						return nil, true, &SeqError{Seq: seq, Err: err} // the chain's fault, not the index's
					}
					return x.distrust(err)
				}
				files[s.name] = f
			}
			fs[i], names[i] = f, s.name
			if len(seqs) > 1 {
				hint.add(f, int64(offs[i]))
			}
		}
		hint.flush()
		for i, seq := range seqs {
			var fr Frame
			if fr, buf, err = readFrameAt(fs[i], int64(offs[i]), buf); err != nil {
				return x.distrust(&SeqError{Seq: seq, Err: fmt.Errorf("segment %s: %w", names[i], err)})
			}
			r, err := DecodeRecord(fr.Payload)
			if err != nil {
				return x.distrust(&SeqError{Seq: seq, Err: err})
			}
			if r.Seq != seq {
				return x.distrust(&SeqError{Seq: seq, Err: fmt.Errorf("%w: index points at seq %d", ErrIndex, r.Seq)})
			}
			if !holds(r) {
				return x.distrust(&SeqError{Seq: seq, Err: fmt.Errorf("%w: the row does not hold the value indexed for it", ErrIndex)})
			}
			after = seq
			r.Hash = hexHead(fr.Head)
			if q.match(r) {
				if out = append(out, r); len(out) == limit {
					break
				}
			}
		}
		if len(seqs) == 0 {
			break
		}
		chunk = min(2*chunk, 4096)
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

// readHint asks the kernel to read ahead the frames a query is about to
// read (plain segments only: a compressed one is read whole per chunk),
// one request per run of nearby frames.
type readHint struct {
	f          *os.File
	start, end int64
}

func (h *readHint) add(f segFile, off int64) {
	of, ok := f.(*os.File)
	if !ok {
		return
	}
	if of == h.f && off >= h.start && off <= h.end+4096 {
		h.end = max(h.end, off+frameGuess)
		return
	}
	h.flush()
	h.f, h.start, h.end = of, off, off+frameGuess
}

func (h *readHint) flush() {
	if h.f != nil {
		// Only a hint: an error costs the query speed, not rows.
		_ = unix.Fadvise(int(h.f.Fd()), h.start, h.end-h.start, unix.FADV_WILLNEED)
	}
	h.f = nil
}

// frameGuess is how much readFrameAt reads at first: most frames fit, so
// one read instead of two (length, then frame).
const frameGuess = 1024

// readFrameAt reads and checks the frame at off of f, reusing buf.
func readFrameAt(f io.ReaderAt, off int64, buf []byte) (Frame, []byte, error) {
	if cap(buf) < frameGuess {
		buf = make([]byte, frameGuess)
	}
	buf = buf[:frameGuess]
	got, err := f.ReadAt(buf, off)
	if got < 4 {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, buf, fmt.Errorf("read frame: %w", err)
	}
	l := binary.LittleEndian.Uint32(buf)
	if l == 0 || l > MaxPayload {
		return Frame{}, buf, &FrameError{Offset: off, Len: l, Err: ErrFrameLength}
	}
	n := 4 + int(l) + HeadSize + 4
	if n > got {
		if cap(buf) < n {
			buf = append(buf[:got], make([]byte, n-got)...)
		}
		buf = buf[:n]
		if _, err := f.ReadAt(buf[got:], off+int64(got)); err != nil {
			if errors.Is(err, io.EOF) {
				return Frame{}, buf, &FrameError{Offset: off, Len: l, Err: ErrTornFrame}
			}
			return Frame{}, buf, fmt.Errorf("read frame: %w", err)
		}
	}
	buf = buf[:n]
	body := buf[:n-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(buf[n-4:]) {
		return Frame{}, buf, &FrameError{Offset: off, Len: l, Err: ErrFrameCRC}
	}
	return Frame{Offset: off, Payload: buf[4 : 4+l], Head: [HeadSize]byte(buf[4+l : n-4])}, buf, nil
}

// distrust answers a query the index could not serve (it points where the
// chain has no such row: a damaged file): the caller scans, and the
// indexer rebuilds the file. Real chain damage the scan reports itself.
func (x *index) distrust(error) ([]Record, bool, error) {
	x.damaged.Store(true)
	x.wake()
	return nil, false, nil
}
