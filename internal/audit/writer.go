package audit

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"time"
)

// maxBatch bounds the records committed by one write and one fsync.
const maxBatch = 4096

// request is one Append or AppendBatch waiting for the writer. bodies are
// the records' canonical bytes without seq, encoded by the caller.
type request struct {
	recs   []Record
	bodies [][]byte
	done   chan result
}

type result struct {
	recs []Record
	err  error
}

// Append assigns r the next Seq (and Time, if zero), links it into the
// chain and returns it with Hash set, once it is written and fsynced. Seq
// and Hash given by the caller are ignored. ctx bounds only the wait to
// enqueue: once queued, the record is committed or fails with its batch.
// Any error means the record may not be durable, and the caller must refuse
// the operation it wanted to record.
func (c *Chain) Append(ctx context.Context, r Record) (Record, error) {
	recs, err := c.AppendBatch(ctx, []Record{r})
	if err != nil {
		return Record{}, err
	}
	return recs[0], nil
}

// AppendBatch appends records with contiguous seqs in one commit: all are
// durable or the call fails.
func (c *Chain) AppendBatch(ctx context.Context, rs []Record) ([]Record, error) {
	if len(rs) == 0 || len(rs) > maxBatch {
		return nil, fmt.Errorf("%w: batch of %d records (1..%d)", ErrInvalidRecord, len(rs), maxBatch)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	req := &request{recs: make([]Record, len(rs)), bodies: make([][]byte, len(rs)), done: make(chan result, 1)}
	now := time.Now()
	for i, r := range rs {
		if r.Time.IsZero() {
			r.Time = now
		}
		r.Time = r.Time.UTC()
		r.Seq, r.Hash = 0, ""
		if len(r.Detail) == 0 {
			r.Detail = nil
		}
		if err := validate(r); err != nil {
			return nil, err
		}
		body, err := encodeBody(r)
		if err != nil {
			return nil, err
		}
		if len(body)+maxSeqPrefix > MaxPayload {
			return nil, fmt.Errorf("%w: %d bytes, max %d", ErrInvalidRecord, len(body), MaxPayload-maxSeqPrefix)
		}
		req.recs[i], req.bodies[i] = r, body
	}
	c.closeMu.RLock()
	if c.closed {
		c.closeMu.RUnlock()
		return nil, ErrClosed
	}
	if err := c.brokenErr(); err != nil {
		c.closeMu.RUnlock()
		return nil, err
	}
	select {
	case c.reqs <- req:
	case <-ctx.Done():
		c.closeMu.RUnlock()
		return nil, ctx.Err()
	}
	c.closeMu.RUnlock()
	res := <-req.done
	return res.recs, res.err
}

func (c *Chain) brokenErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broken
}

// pending is a batch written to the active segment and waiting for fsync.
type pending struct {
	reqs    []*request
	file    *os.File       // the segment its last records went to
	seq     uint64         // chain state after the batch
	head    [HeadSize]byte //
	size    int64          // size of file after the batch
	rotated []rotation     // segments started during the batch
	err     error          // the write failed
}

// rotation records the final size of the segment that was active (-1 if
// none) and the segment that replaced it.
type rotation struct {
	prevSize int64
	next     segInfo
}

// writer is the goroutine that encodes and writes batches; syncer is the
// one that fsyncs them. Group commit: writer takes whatever requests are
// queued as one batch and writes it with one write; while syncer fsyncs,
// writer already writes the next batch, and syncer's next fsync covers all
// batches written meanwhile. Requests are answered only after their fsync.
func (c *Chain) writer() {
	syncDone := make(chan struct{})
	go c.syncer(syncDone)
	defer func() {
		close(c.syncq)
		<-syncDone
		close(c.done)
	}()
	batch := make([]*request, 0, 64)
	for req := range c.reqs {
		batch = append(batch[:0], req)
		n := len(req.recs)
	drain:
		for n < maxBatch {
			select {
			case r, ok := <-c.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r)
				n += len(r.recs)
			default:
				break drain
			}
		}
		p := c.write(append([]*request(nil), batch...))
		c.inflight.Add(1)
		c.syncq <- p
	}
}

// write encodes and writes one batch without fsync. A failure breaks the
// chain for good.
func (c *Chain) write(batch []*request) *pending {
	p := &pending{reqs: batch}
	if p.err = c.brokenErr(); p.err != nil {
		return p
	}
	buf := c.buf[:0]
	err := c.encode(p, buf)
	if err != nil {
		p.err = c.breakChain(err)
		return p
	}
	p.file, p.seq, p.head, p.size = c.active, c.wseq, c.whead, c.activeSize
	return p
}

// encode frames the batch into buf and writes it, rotating segments on
// the way.
func (c *Chain) encode(p *pending, buf []byte) error {
	defer func() { c.buf = buf[:0] }()
	for _, req := range p.reqs {
		for i, body := range req.bodies {
			seq := c.wseq + 1
			start := len(buf)
			frameLen := len(body) + maxSeqPrefix + FrameOverhead
			size := c.activeSize + int64(len(buf))
			if c.active == nil || (size > HeaderSize && size+int64(frameLen) > c.opts.SegmentBytes) {
				if err := c.writeBuf(buf); err != nil {
					return err
				}
				buf, start = buf[:0], 0
				r, err := c.rotate(seq, c.whead)
				if err != nil {
					return err
				}
				p.rotated = append(p.rotated, r)
			}
			// Frame in place: length placeholder, payload, head, CRC.
			buf = append(buf, 0, 0, 0, 0)
			buf = appendPayload(buf, seq, body)
			payload := buf[start+4:]
			binary.LittleEndian.PutUint32(buf[start:], uint32(len(payload)))
			c.whead = nextHead(c.hasher, c.whead, payload)
			buf = append(buf, c.whead[:]...)
			buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(buf[start:], castagnoli))
			c.wseq = seq
			req.recs[i].Seq, req.recs[i].Hash = seq, hexHead(c.whead)
		}
	}
	return c.writeBuf(buf)
}

func (c *Chain) writeBuf(buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	if _, err := c.active.Write(buf); err != nil {
		return fmt.Errorf("write segment: %w", err)
	}
	c.activeSize += int64(len(buf))
	return nil
}

// rotate waits until every written batch is fsynced, fsyncs and closes the
// active segment and starts a new one whose first record is first and
// whose header carries prev.
func (c *Chain) rotate(first uint64, prev [HeadSize]byte) (rotation, error) {
	r := rotation{prevSize: -1, next: segInfo{first: first, name: segName(first)}}
	c.inflight.Wait()
	if c.active != nil {
		if err := c.active.Sync(); err != nil {
			return r, fmt.Errorf("sync segment: %w", err)
		}
		if err := c.active.Close(); err != nil {
			return r, fmt.Errorf("close segment: %w", err)
		}
		r.prevSize, c.active = c.activeSize, nil
	}
	f, err := createSegment(c.dir, SegmentHeader{FirstSeq: first, PrevHead: prev})
	if err != nil {
		return r, err
	}
	c.active, c.activeSize = f, HeaderSize
	return r, nil
}

func (c *Chain) breakChain(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken == nil {
		c.broken = fmt.Errorf("%w: %w", ErrBroken, err)
	}
	return c.broken
}

// syncer fsyncs written batches, several at a time, then publishes and
// answers them. Once the chain is broken it answers every batch with the
// error, even if a later fsync would succeed: after a failed fsync the
// kernel may have dropped the dirty pages and report success next time.
func (c *Chain) syncer(done chan<- struct{}) {
	defer close(done)
	for p := range c.syncq {
		ps := []*pending{p}
	drain:
		for {
			select {
			case q, ok := <-c.syncq:
				if !ok {
					break drain
				}
				ps = append(ps, q)
			default:
				break drain
			}
		}
		err := c.brokenErr()
		for _, q := range ps {
			if err == nil && q.err != nil {
				err = q.err
			}
		}
		if err == nil {
			var synced *os.File
			for _, q := range ps {
				if q.file != synced {
					if serr := q.file.Sync(); serr != nil {
						err = c.breakChain(fmt.Errorf("sync segment: %w", serr))
						break
					}
					synced = q.file
				}
			}
		}
		if err == nil {
			c.publishAll(ps)
			if o := c.opts.Observer; o != nil {
				o.Committed(ps[len(ps)-1].seq)
			}
		}
		for _, q := range ps {
			for _, req := range q.reqs {
				if err != nil {
					req.done <- result{err: err}
				} else {
					req.done <- result{recs: req.recs}
				}
			}
			c.inflight.Done()
		}
	}
}

// publishAll makes fsynced batches visible to Head, Query and Follow. It
// holds subMu so Follow registration sees either the old or the new head
// together with the matching set of published records.
func (c *Chain) publishAll(ps []*pending) {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	c.mu.Lock()
	for _, p := range ps {
		for _, r := range p.rotated {
			if r.prevSize >= 0 {
				c.segs[len(c.segs)-1].size = r.prevSize
			}
			c.segs = append(c.segs, r.next)
		}
		c.segs[len(c.segs)-1].size = p.size
		c.seq, c.head = p.seq, p.head
	}
	c.mu.Unlock()
	for _, p := range ps {
		c.publish(p.reqs)
	}
}
