package audit

import "context"

// FollowBuffer is how many new records a follower may fall behind before
// it is dropped.
const FollowBuffer = 4096

type subscriber struct {
	q     Query
	after uint64 // only records with Seq > after are published to it
	ch    chan Record
}

// Follow sends the matching records after q.AfterSeq, then the matching
// records appended from now on, until ctx ends or the chain closes; then it
// closes the channel. q.Limit is ignored.
//
// A slow reader never blocks appends: when more than FollowBuffer new
// records wait for it, it is dropped; the channel delivers what was
// buffered (a gapless prefix) and is closed. The reader then calls Follow
// again with AfterSeq set to the last Seq it received, and misses nothing.
func (c *Chain) Follow(ctx context.Context, q Query) (<-chan Record, error) {
	if _, err := q.check(); err != nil {
		return nil, err
	}
	sub := &subscriber{q: q, ch: make(chan Record, FollowBuffer)}
	c.subMu.Lock()
	if c.subsClosed {
		c.subMu.Unlock()
		return nil, ErrClosed
	}
	c.mu.Lock()
	sub.after = max(c.seq, q.AfterSeq)
	c.mu.Unlock()
	c.subs[sub] = struct{}{}
	c.subMu.Unlock()

	out := make(chan Record, 64)
	go func() {
		defer close(out)
		defer c.unsubscribe(sub)
		send := func(r Record) bool {
			select {
			case out <- r:
				return true
			case <-ctx.Done():
				return false
			}
		}
		// The backlog ends at sub.after; everything later arrives on sub.ch.
		err := c.scan(q.AfterSeq, sub.after, func(r Record) bool {
			return !q.match(r) || send(r)
		})
		if err != nil || ctx.Err() != nil {
			return
		}
		for {
			select {
			case r, ok := <-sub.ch:
				if !ok || !send(r) {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func (c *Chain) unsubscribe(s *subscriber) {
	c.subMu.Lock()
	delete(c.subs, s)
	c.subMu.Unlock()
}

// publish hands a committed batch to the followers without blocking; the
// caller holds subMu. A follower whose buffer is full is dropped.
func (c *Chain) publish(batch []*request) {
	for s := range c.subs {
	recs:
		for _, req := range batch {
			for _, r := range req.recs {
				if r.Seq <= s.after || !s.q.match(r) {
					continue
				}
				select {
				case s.ch <- r:
				default:
					close(s.ch)
					delete(c.subs, s)
					break recs
				}
			}
		}
	}
}
