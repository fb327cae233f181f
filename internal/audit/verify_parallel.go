package audit

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// SegmentSink receives the good records of one segment, in order, on the
// goroutine that verifies that segment: segments are verified concurrently,
// so a sink must not touch state shared with other sinks. head is the
// chain head after the record.
type SegmentSink interface {
	Record(seq uint64, payload []byte, head [HeadSize]byte)
}

// ParallelOptions configures VerifyParallel.
type ParallelOptions struct {
	// Workers is how many segments are verified at once (0: GOMAXPROCS).
	Workers int
	// After, when not 0, is a seq verified before (incremental verify):
	// only the records after it are decoded and hashed, and the frame at
	// After must hold AfterHead. The records up to After are trusted.
	After     uint64
	AfterHead [HeadSize]byte
	// NewSink, if set, makes the sink of the segment whose first verified
	// record follows the seq before (before = first seq - 1, or After).
	// Called on the worker goroutine.
	NewSink func(before uint64) SegmentSink
	// Join, if set, is called in seq order with each segment's sink once
	// every segment before it checked out and it links to them; upTo is
	// the last good seq the sink saw. An error stops the walk, reported
	// like a bad record.
	Join func(sink SegmentSink, upTo uint64) error
}

// segOutcome is what a worker found in one segment.
type segOutcome struct {
	info     segInfo
	hdrFirst uint64
	hdrPrev  [HeadSize]byte
	res      segCheck
	last     uint64 // last good seq
	lastHead [HeadSize]byte
	skipped  bool // holds only records up to After: no link check against the previous one
	sink     SegmentSink
	err      error
	done     chan struct{}
}

// VerifyParallel checks what Verify checks, with each segment's framing,
// CRCs, seqs, canonical form and internal links verified concurrently on
// Workers goroutines, then, in seq order, the link between segments (a
// segment's header continues the previous segment's last seq and head)
// and opts.Join. Reports (FirstBad, Reason) are the ones the serial walk
// gives: a segment's fault is reported only once everything before it
// checked out. Workers run at most a few segments ahead of the ordered
// join, so memory stays bounded whatever the chain's length.
func VerifyParallel(dir string, o ParallelOptions) (VerifyReport, error) {
	segs, m, err := listChain(dir)
	if err != nil {
		return VerifyReport{FirstBad: 1, Reason: err.Error()}, err
	}
	var rep VerifyReport
	seq, head := uint64(0), Genesis
	if p := m.Pruned; p != nil {
		// Rows 1..p.Last were deleted: the walk starts from the recorded
		// head, which the next segment's header must carry.
		rep.Deleted = p.Last
		if o.After < p.Last {
			o.After, o.AfterHead = p.Last, p.HeadBytes()
		}
	}
	fail := func(err error) (VerifyReport, error) {
		rep.Records, rep.Head = seq, hexHead(head)
		rep.FirstBad = seq + 1
		var se *SeqError
		if errors.As(err, &se) {
			rep.FirstBad = se.Seq
		}
		rep.Reason = err.Error()
		return rep, err
	}
	if o.After > 0 {
		// Start at the last segment whose first seq is at most After+1.
		start := -1
		for i, s := range segs {
			if s.first <= o.After+1 {
				start = i
			}
		}
		if start < 0 {
			return fail(&SeqError{Seq: 1, Err: fmt.Errorf("%w: no segment holds seq %d, verified before: rows dropped", ErrSeqMissing, o.After)})
		}
		segs = segs[start:]
		seq, head = o.After, o.AfterHead
	}
	workers := o.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	outs := make([]*segOutcome, len(segs))
	for i := range outs {
		outs[i] = &segOutcome{info: segs[i], done: make(chan struct{})}
	}
	var (
		next    atomic.Int64 // next segment to take
		stop    atomic.Int64 // segments from this index on are not worth checking
		joined  atomic.Int64 // segments the ordered join has consumed
		wake    = sync.NewCond(&sync.Mutex{})
		wg      sync.WaitGroup
		ahead   = int64(2 * workers)
		nsegs   = int64(len(segs))
		waitFor = func(i int64) { // hold a worker until segment i is at most `ahead` past the join
			wake.L.Lock()
			for i-joined.Load() >= ahead && stop.Load() > i {
				wake.Wait()
			}
			wake.L.Unlock()
		}
	)
	stop.Store(nsegs)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= nsegs {
					return
				}
				waitFor(i)
				out := outs[i]
				if i < stop.Load() {
					verifySegment(dir, out, o)
				} else {
					out.err = errSkipped
				}
				if out.err != nil || out.res.torn {
					for {
						s := stop.Load()
						if i >= s || stop.CompareAndSwap(s, i+1) {
							break
						}
					}
				}
				close(out.done)
			}
		}()
	}
	defer func() {
		wake.L.Lock()
		stop.Store(0)
		wake.L.Unlock()
		wake.Broadcast()
		wg.Wait()
	}()
	for i, out := range outs {
		<-out.done
		if !out.skipped {
			h := SegmentHeader{FirstSeq: out.hdrFirst, PrevHead: out.hdrPrev}
			if out.hdrFirst != 0 { // else the header itself is bad: out.err says so
				l := linker{seq: seq, head: head}
				if err := continues(&l, h); err != nil {
					return fail(fmt.Errorf("segment %s: %w", out.info.name, err))
				}
			}
		}
		if out.sink != nil && o.Join != nil && out.last > seq {
			if err := o.Join(out.sink, out.last); err != nil {
				seq, head = out.last, out.lastHead
				var se *SeqError
				if !errors.As(err, &se) {
					err = &SeqError{Seq: out.last, Err: err}
				}
				return fail(err)
			}
		}
		if out.last > seq {
			seq, head = out.last, out.lastHead
		}
		if out.err != nil {
			return fail(out.err)
		}
		if out.res.torn {
			return fail(&SeqError{Seq: seq + 1, Err: fmt.Errorf("segment %s: %w at offset %d", out.info.name, ErrTornTail, out.res.good)})
		}
		if out.skipped && out.last < o.After {
			return fail(&SeqError{Seq: out.last + 1, Err: fmt.Errorf("%w: the chain holds %d records, %d were verified before: rows dropped or truncated", ErrSeqMissing, out.last, o.After)})
		}
		wake.L.Lock()
		joined.Store(int64(i + 1))
		wake.L.Unlock()
		wake.Broadcast()
	}
	rep.Records, rep.Head = seq, hexHead(head)
	return rep, nil
}

var errSkipped = errors.New("not checked: an earlier segment is bad")

// verifySegment checks one segment on its own, trusting its header for
// the starting point; the ordered join checks the header links.
func verifySegment(dir string, out *segOutcome, o ParallelOptions) {
	l := linker{}
	before := out.info.first - 1
	if o.After > 0 && out.info.first <= o.After {
		// The segment holding the last verified record: skip to it.
		l.skipTo, l.skipHead = o.After, o.AfterHead
		out.skipped = true
		before = o.After
	}
	if o.NewSink != nil {
		out.sink = o.NewSink(before)
		l.sink = out.sink
	}
	res, err := checkSegment(dir, out.info, &l, true)
	out.hdrFirst, out.hdrPrev = res.hdr.FirstSeq, res.hdr.PrevHead
	out.res = res
	out.last, out.lastHead = l.seq, l.head
	out.err = err
}
