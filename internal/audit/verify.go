package audit

import (
	"errors"
	"fmt"
)

// VerifyReport is the outcome of Verify. Records and Head describe the good
// prefix of the chain; on failure FirstBad is the seq expected at the first
// bad position and Reason says why.
type VerifyReport struct {
	Records  uint64
	Head     string
	FirstBad uint64
	Reason   string
	// Deleted: rows 1..Deleted were deleted by the user (`coconut audit
	// archive --delete`); the walk started from the pruned prefix record.
	Deleted uint64
}

// Verify re-reads every segment of dir and checks segment names and
// headers, framing, CRCs, contiguous seqs and the chain of heads. It only
// reads, takes no lock, and works on a copy of the directory with the daemon
// stopped. A torn tail is an error here; Open is what cuts it. Segments
// are checked in parallel on every core (VerifyParallel).
func Verify(dir string) (VerifyReport, error) { return VerifyParallel(dir, ParallelOptions{}) }

// VerifyFunc is Verify that also hands each good record's seq and
// canonical bytes, in order, to visit (nil: none), so a second check (the
// Merkle checkpoints) needs no second pass. An error from visit stops the
// walk and is reported as the first bad record.
func VerifyFunc(dir string, visit func(seq uint64, payload []byte) error) (VerifyReport, error) {
	segs, m, err := listChain(dir)
	if err != nil {
		return VerifyReport{FirstBad: 1, Reason: err.Error()}, err
	}
	l := linker{visit: visit}
	l.seq, l.head = prunedStart(m)
	var rep VerifyReport
	if m.Pruned != nil {
		rep.Deleted = m.Pruned.Last
	}
	fail := func(err error) (VerifyReport, error) {
		rep.Records, rep.Head = l.seq, hexHead(l.head)
		rep.FirstBad = l.seq + 1
		var se *SeqError
		if errors.As(err, &se) {
			rep.FirstBad = se.Seq
		}
		rep.Reason = err.Error()
		return rep, err
	}
	for _, s := range segs {
		res, err := checkSegment(dir, s, &l, false)
		if err != nil {
			return fail(err)
		}
		if res.torn {
			return fail(&SeqError{Seq: l.seq + 1, Err: fmt.Errorf("segment %s: %w at offset %d", s.name, ErrTornTail, res.good)})
		}
	}
	rep.Records, rep.Head = l.seq, hexHead(l.head)
	return rep, nil
}
