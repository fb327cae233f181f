package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/zeebo/blake3"
)

// linker checks that records continue the chain: seq contiguous, head equal
// to BLAKE3(previous head || record bytes).
type linker struct {
	seq   uint64
	head  [HeadSize]byte
	visit func(seq uint64, payload []byte) error // optional, after each good record
	sink  SegmentSink                            // optional, after each good record (parallel verify)
	h     *blake3.Hasher                         // reused: one per record costs an allocation

	// skipTo, when set, is a seq already verified (incremental verify):
	// records up to it are checked for framing and seq only, and the
	// frame at skipTo must carry skipHead, the head recorded then.
	skipTo   uint64
	skipHead [HeadSize]byte
}

// add checks f continues the chain: seq, canonical form, head.
func (l *linker) add(f Frame) error {
	want := l.seq + 1
	got, ok := peekSeq(f.Payload)
	if !ok {
		return &SeqError{Seq: want, Err: ErrNonCanonical}
	}
	switch {
	case got > want:
		return &SeqError{Seq: want, Err: fmt.Errorf("%w (seq %d followed by %d)", ErrSeqMissing, l.seq, got)}
	case got < want:
		return &SeqError{Seq: want, Err: fmt.Errorf("%w (seq %d followed by %d)", ErrSeqOrder, l.seq, got)}
	}
	if want <= l.skipTo {
		if want == l.skipTo && f.Head != l.skipHead {
			return &SeqError{Seq: want, Err: fmt.Errorf("%w: the head at seq %d is not the one recorded when it was last verified: the records up to it were rewritten", ErrHashMismatch, want)}
		}
		l.seq, l.head = want, f.Head
		return nil
	}
	if err := checkCanonical(f.Payload); err != nil {
		return &SeqError{Seq: want, Err: err}
	}
	if l.h == nil {
		l.h = blake3.New()
	}
	head := nextHead(l.h, l.head, f.Payload)
	if head != f.Head {
		return &SeqError{Seq: want, Err: ErrHashMismatch}
	}
	l.seq, l.head = want, head
	if l.sink != nil {
		l.sink.Record(want, f.Payload, head)
	}
	if l.visit != nil {
		if err := l.visit(want, f.Payload); err != nil {
			var se *SeqError
			if errors.As(err, &se) {
				return err
			}
			return &SeqError{Seq: want, Err: err}
		}
	}
	return nil
}

// segCheck is the outcome of checking one segment. good is the size of the
// segment up to the last good frame; torn is set when the segment ends in
// a torn frame starting at good.
type segCheck struct {
	good    int64
	size    int64
	torn    bool
	records uint64
	hdr     SegmentHeader // once read and matching the name
}

// checkSegment verifies one segment and advances l. With trustHeader the
// linker starts from the segment header (fast open of the last segment
// only); otherwise the header must continue l.
func checkSegment(dir string, s segInfo, l *linker, trustHeader bool) (segCheck, error) {
	f, err := openSegment(dir, s)
	if err != nil {
		return segCheck{}, &SeqError{Seq: s.first, Err: err}
	}
	defer f.Close()
	size := s.size
	if of, ok := f.(*os.File); ok {
		st, err := of.Stat()
		if err != nil {
			return segCheck{}, fmt.Errorf("stat segment: %w", err)
		}
		size = st.Size()
	}
	z, _ := f.(*zstSeg)
	if z != nil {
		if err := checkArchivedSum(z.path, z.a); err != nil {
			return segCheck{}, &SeqError{Seq: s.first, Err: err}
		}
	}
	res := segCheck{size: size}
	rd, err := NewReader(io.LimitReader(f, res.size))
	if err != nil {
		return res, &SeqError{Seq: s.first, Err: fmt.Errorf("segment %s: %w", s.name, err)}
	}
	h := rd.Header()
	if h.FirstSeq != s.first {
		return res, &SeqError{Seq: s.first, Err: fmt.Errorf("segment %s: %w: first seq %d", s.name, ErrBadHeader, h.FirstSeq)}
	}
	res.hdr = h
	if trustHeader {
		l.seq, l.head = h.FirstSeq-1, h.PrevHead
	} else {
		if err := continues(l, h); err != nil {
			return res, fmt.Errorf("segment %s: %w", s.name, err)
		}
	}
	for {
		fr, err := rd.Next()
		if errors.Is(err, io.EOF) {
			res.good = rd.Offset()
			if z != nil && (l.seq != z.a.Last || hexHead(l.head) != z.a.Head) {
				return res, &SeqError{Seq: l.seq + 1, Err: fmt.Errorf("%w: %s ends at seq %d, the manifest says %d (or another head)", ErrArchiveDamaged, z.path, l.seq, z.a.Last)}
			}
			return res, nil
		}
		if err != nil {
			var fe *FrameError
			if errors.As(err, &fe) && z == nil && isTorn(f, fe, res.size) {
				res.good, res.torn = fe.Offset, true
				return res, nil
			}
			return res, &SeqError{Seq: l.seq + 1, Err: fmt.Errorf("segment %s: %w", s.name, err)}
		}
		if err := l.add(fr); err != nil {
			return res, err
		}
		res.records++
	}
}

// continues checks that a segment header picks up where l left off.
func continues(l *linker, h SegmentHeader) error {
	want := l.seq + 1
	switch {
	case h.FirstSeq > want:
		return &SeqError{Seq: want, Err: fmt.Errorf("%w (seq %d followed by %d)", ErrSeqMissing, l.seq, h.FirstSeq)}
	case h.FirstSeq < want:
		return &SeqError{Seq: want, Err: fmt.Errorf("%w (seq %d followed by %d)", ErrSeqOrder, l.seq, h.FirstSeq)}
	case h.PrevHead != l.head:
		return &SeqError{Seq: want, Err: fmt.Errorf("%w: header's previous head differs", ErrHashMismatch)}
	}
	return nil
}

// isTorn decides whether a framing fault is what a crash mid-write leaves
// (cut it) or corruption (refuse). A crash leaves a prefix of our own bytes,
// possibly followed by zeros, at the very end of the file: a short frame,
// a bad CRC on a frame followed by nothing or only zeros, or a zero length
// field followed by only zeros. Anything followed by other data is corruption.
func isTorn(f io.ReaderAt, fe *FrameError, size int64) bool {
	switch {
	case errors.Is(fe.Err, ErrTornFrame):
		return true
	case errors.Is(fe.Err, ErrFrameCRC):
		return allZero(f, fe.Offset+FrameOverhead+int64(fe.Len), size)
	case errors.Is(fe.Err, ErrFrameLength):
		return allZero(f, fe.Offset, size)
	}
	return false
}

func allZero(f io.ReaderAt, from, to int64) bool {
	buf := make([]byte, 64<<10)
	zero := make([]byte, len(buf))
	for off := from; off < to; {
		n := min(int64(len(buf)), to-off)
		if _, err := f.ReadAt(buf[:n], off); err != nil {
			return false
		}
		if !bytes.Equal(buf[:n], zero[:n]) {
			return false
		}
		off += n
	}
	return true
}
