package audit

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// maxBatch bounds the records of one AppendBatch call.
	maxBatch = 4096
	// maxPendingBytes bounds the bytes the writer gathers while the syncer
	// is busy; a full batch waits for the syncer instead of growing.
	maxPendingBytes = 8 << 20
)

// request is one Append or AppendBatch waiting for the writer. bodies are
// the records' canonical bytes without seq, encoded by the caller.
type request struct {
	recs   []Record
	bodies [][]byte
	offs   []int64 // frame offsets in their segment, set by the writer
	done   chan result
}

type result struct {
	recs []Record
	err  error
}

// onePool recycles the request of a single Append, the common case: its
// done channel and body buffer survive, so an append allocates only the
// record's hash string.
var onePool = sync.Pool{New: func() any {
	return &request{recs: make([]Record, 1), bodies: make([][]byte, 1), offs: make([]int64, 1), done: make(chan result, 1)}
}}

// Append assigns r the next Seq (and Time, if zero), links it into the
// chain and returns it with Hash set, once it is written and fsynced. Seq
// and Hash given by the caller are ignored. ctx bounds only the wait to
// enqueue: once queued, the record is committed or fails with its batch.
// Any error means the record may not be durable, and the caller must refuse
// the operation it wanted to record.
func (c *Chain) Append(ctx context.Context, r Record) (Record, error) {
	req := onePool.Get().(*request)
	if err := prepare(&r, time.Time{}); err != nil {
		onePool.Put(req)
		return Record{}, err
	}
	req.recs[0] = r
	req.bodies[0] = appendBody(req.bodies[0][:0], &r)
	if len(req.bodies[0])+maxSeqPrefix > MaxPayload {
		onePool.Put(req)
		return Record{}, fmt.Errorf("%w: %d bytes, max %d", ErrInvalidRecord, len(req.bodies[0]), MaxPayload-maxSeqPrefix)
	}
	res, err := c.submit(ctx, req)
	if err != nil {
		onePool.Put(req)
		return Record{}, err
	}
	if res.err != nil {
		onePool.Put(req)
		return Record{}, res.err
	}
	out := res.recs[0]
	req.recs[0] = Record{}
	onePool.Put(req)
	return out, nil
}

// AppendBatch appends records with contiguous seqs in one commit: all are
// durable or the call fails.
func (c *Chain) AppendBatch(ctx context.Context, rs []Record) ([]Record, error) {
	if len(rs) == 0 || len(rs) > maxBatch {
		return nil, fmt.Errorf("%w: batch of %d records (1..%d)", ErrInvalidRecord, len(rs), maxBatch)
	}
	req := &request{recs: make([]Record, len(rs)), bodies: make([][]byte, len(rs)), offs: make([]int64, len(rs)), done: make(chan result, 1)}
	now := time.Now()
	for i, r := range rs {
		if err := prepare(&r, now); err != nil {
			return nil, err
		}
		body := encodeBody(&r)
		if len(body)+maxSeqPrefix > MaxPayload {
			return nil, fmt.Errorf("%w: %d bytes, max %d", ErrInvalidRecord, len(body), MaxPayload-maxSeqPrefix)
		}
		req.recs[i], req.bodies[i] = r, body
	}
	res, err := c.submit(ctx, req)
	if err != nil {
		return nil, err
	}
	return res.recs, res.err
}

// prepare fills in the time (now, or the clock if now is zero), clears
// what the chain assigns and validates r.
func prepare(r *Record, now time.Time) error {
	if r.Time.IsZero() {
		if now.IsZero() {
			now = time.Now()
		}
		r.Time = now
	}
	r.Time = r.Time.UTC()
	r.Seq, r.Hash = 0, ""
	if len(r.Detail) == 0 {
		r.Detail = nil
	}
	return validate(r)
}

// submit queues req for the writer and waits for its commit. The error is
// that of queueing; the commit's own error is in the result.
func (c *Chain) submit(ctx context.Context, req *request) (result, error) {
	if err := ctx.Err(); err != nil {
		return result{}, err
	}
	c.closeMu.RLock()
	if c.closed {
		c.closeMu.RUnlock()
		return result{}, ErrClosed
	}
	if err := c.brokenErr(); err != nil {
		c.closeMu.RUnlock()
		return result{}, err
	}
	select {
	case c.reqs <- req:
	case <-ctx.Done():
		c.closeMu.RUnlock()
		return result{}, ctx.Err()
	}
	c.closeMu.RUnlock()
	return <-req.done, nil
}

func (c *Chain) brokenErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broken
}

// pending is a batch the writer framed and the syncer writes and fsyncs.
type pending struct {
	reqs    []*request
	buf     []byte         // the frames, for file
	file    *os.File       // the segment the frames go to
	seq     uint64         // chain state after the batch
	head    [HeadSize]byte //
	size    int64          // size of file after the batch
	rotated []rotation     // segment started right before the batch
	err     error          // the chain broke before or during framing
}

// rotation records the final size of the segment that was active (-1 if
// none) and the segment that replaced it.
type rotation struct {
	prevSize int64
	next     segInfo
}

// writer frames requests; syncer writes and fsyncs. Group commit: while the
// syncer is busy with one batch (one write, one fdatasync), the writer
// keeps framing and hashing every request that arrives into the next
// batch, and hands it over the moment the syncer is free. So the disk sees
// one write and one sync per batch however many appenders there are, and
// the CPU work overlaps the sync.
func (c *Chain) writer() {
	syncDone := make(chan struct{})
	go c.syncer(syncDone)
	defer func() {
		close(c.syncq)
		<-syncDone
		close(c.done)
	}()
	var cur *pending
	for {
		if cur == nil {
			req, ok := <-c.reqs
			if !ok {
				return
			}
			cur = c.newPending()
			c.add(&cur, req)
		}
	drain:
		for len(cur.buf) < maxPendingBytes {
			select {
			case req, ok := <-c.reqs:
				if !ok {
					c.handOff(cur)
					return
				}
				c.add(&cur, req)
			default:
				break drain
			}
		}
		if len(cur.buf) >= maxPendingBytes {
			c.handOff(cur)
			cur = nil
			continue
		}
		c.inflight.Add(1) // taken back below if the syncer was busy
		select {
		case c.syncq <- cur:
			cur = nil
		case req, ok := <-c.reqs:
			c.inflight.Done()
			if !ok {
				c.handOff(cur)
				return
			}
			c.add(&cur, req)
		}
	}
}

func (c *Chain) newPending() *pending {
	p := &pending{err: c.brokenErr()}
	select {
	case p.buf = <-c.free:
	default:
		p.buf = make([]byte, 0, 256<<10)
	}
	return p
}

// handOff gives p to the syncer, waiting until it takes it. Only the
// writer adds to inflight, and only the writer waits on it.
func (c *Chain) handOff(p *pending) {
	c.inflight.Add(1)
	c.syncq <- p
}

// add frames req's records into *p, rotating the segment on the way (which
// hands *p over and starts a new batch).
func (c *Chain) add(pp **pending, req *request) {
	for i, body := range req.bodies {
		p := *pp
		if p.err != nil {
			break
		}
		frameLen := int64(len(body) + maxSeqPrefix + FrameOverhead)
		if c.active == nil || (c.activeSize > HeaderSize && c.activeSize+frameLen > c.opts.SegmentBytes) {
			p = c.rotate(p)
			*pp = p
			if p.err != nil {
				break
			}
		}
		seq := c.wseq + 1
		start := len(p.buf)
		// Frame in place: length placeholder, payload, head, CRC.
		p.buf = append(p.buf, 0, 0, 0, 0)
		p.buf = appendPayload(p.buf, seq, body)
		payload := p.buf[start+4:]
		binary.LittleEndian.PutUint32(p.buf[start:], uint32(len(payload)))
		c.whead = nextHead(c.hasher, c.whead, payload)
		p.buf = append(p.buf, c.whead[:]...)
		p.buf = binary.LittleEndian.AppendUint32(p.buf, crc32.Checksum(p.buf[start:], castagnoli))
		c.wseq = seq
		req.recs[i].Seq, req.recs[i].Hash = seq, hexHead(c.whead)
		req.offs[i] = c.activeSize
		c.activeSize += int64(len(p.buf) - start)
	}
	p := *pp
	p.reqs = append(p.reqs, req)
	p.file, p.seq, p.head, p.size = c.active, c.wseq, c.whead, c.activeSize
}

// rotate hands p over, waits until every batch is fsynced and answered,
// closes the active segment and starts a new one whose first record is the
// next seq. It returns the new batch, which carries the rotation (or the
// error that broke the chain).
func (c *Chain) rotate(p *pending) *pending {
	if len(p.buf) > 0 || len(p.reqs) > 0 || len(p.rotated) > 0 {
		// p may hold only frames of the request being added, which sets
		// these at its end: set them here too.
		p.file, p.seq, p.head, p.size = c.active, c.wseq, c.whead, c.activeSize
		c.handOff(p)
		p = c.newPending()
	}
	c.inflight.Wait()
	if p.err = c.brokenErr(); p.err != nil {
		return p
	}
	first := c.wseq + 1
	r := rotation{prevSize: -1, next: segInfo{first: first, name: segName(first)}}
	if c.active != nil {
		// Every batch for it is fsynced: inflight is zero.
		if err := c.active.Close(); err != nil {
			p.err = c.breakChain(fmt.Errorf("close segment: %w", err))
			return p
		}
		r.prevSize, c.active = c.activeSize, nil
	}
	f, err := createSegment(c.dir, SegmentHeader{FirstSeq: first, PrevHead: c.whead})
	if err != nil {
		p.err = c.breakChain(err)
		return p
	}
	c.active, c.activeSize = f, HeaderSize
	p.rotated = append(p.rotated, r)
	p.file, p.size = f, HeaderSize
	return p
}

func (c *Chain) breakChain(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken == nil {
		c.broken = fmt.Errorf("%w: %w", ErrBroken, err)
	}
	return c.broken
}

// syncer writes and fdatasyncs each batch, publishes it and passes it to
// the acker. Once the chain is broken it fails every batch, even if a
// later fsync would succeed: after a failed fsync the kernel may have
// dropped the dirty pages and report success next time.
func (c *Chain) syncer(done chan<- struct{}) {
	acks := make(chan *pending, 4)
	ackDone := make(chan struct{})
	go c.acker(acks, ackDone)
	defer func() {
		close(acks)
		<-ackDone
		close(done)
	}()
	for p := range c.syncq {
		err := c.brokenErr()
		if err == nil && p.err != nil {
			err = p.err
		}
		if err == nil && len(p.buf) > 0 {
			if _, werr := p.file.Write(p.buf); werr != nil {
				err = c.breakChain(fmt.Errorf("write segment: %w", werr))
			} else if serr := fdatasync(p.file); serr != nil {
				err = c.breakChain(fmt.Errorf("sync segment: %w", serr))
			}
		}
		if err == nil {
			c.publishOne(p)
			if o := c.opts.Observer; o != nil {
				o.Committed(p.seq)
			}
		}
		p.err = err
		acks <- p
	}
}

// acker answers committed batches and wakes the query indexer, so waking
// hundreds of appenders and indexing do not delay the next write and sync.
func (c *Chain) acker(acks <-chan *pending, done chan<- struct{}) {
	defer close(done)
	for p := range acks {
		if p.err == nil && c.idx != nil {
			c.idx.wake() // the indexer reads the new rows from the chain
		}
		for _, req := range p.reqs {
			if p.err != nil {
				req.done <- result{err: p.err}
			} else {
				req.done <- result{recs: req.recs}
			}
		}
		if cap(p.buf) <= 2*maxPendingBytes {
			select {
			case c.free <- p.buf[:0]:
			default:
			}
		}
		c.inflight.Done()
	}
}

// fdatasync flushes the data and the size of f, not its timestamps.
func fdatasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}

// publishOne makes a fsynced batch visible to Head, Query and Follow. It
// holds subMu so Follow registration sees either the old or the new head
// together with the matching set of published records.
func (c *Chain) publishOne(p *pending) {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	c.mu.Lock()
	for _, r := range p.rotated {
		if r.prevSize >= 0 {
			c.segs[len(c.segs)-1].size = r.prevSize
		}
		c.segs = append(c.segs, r.next)
	}
	if len(c.segs) > 0 {
		c.segs[len(c.segs)-1].size = p.size
	}
	c.seq, c.head = p.seq, p.head
	c.mu.Unlock()
	if len(p.rotated) > 0 {
		c.kickCompressor()
	}
	c.publish(p.reqs)
}
