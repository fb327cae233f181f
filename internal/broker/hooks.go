package broker

import "sync"

// hookRunner calls Hooks.Blocked and Hooks.Spent from one goroutine, in the
// order the scheduler produced the events, so the scheduler never waits on
// the wiring (which may write audit rows and persist state) and a
// blocked/unblocked pair is never seen reversed.
type hookRunner struct {
	h    Hooks
	mu   sync.Mutex
	cond *sync.Cond
	q    []hookEvent
	stop bool
	done chan struct{}
}

type hookEvent struct {
	aid     uint64
	spent   int64 // > 0: a Spent event
	blocked bool
	reason  string
}

func newHookRunner(h Hooks) *hookRunner {
	r := &hookRunner{h: h, done: make(chan struct{})}
	r.cond = sync.NewCond(&r.mu)
	go r.run()
	return r
}

func (r *hookRunner) push(e hookEvent) {
	r.mu.Lock()
	r.q = append(r.q, e)
	r.mu.Unlock()
	r.cond.Signal()
}

func (r *hookRunner) blocked(aid uint64, b bool, reason string) {
	if r.h.Blocked != nil {
		r.push(hookEvent{aid: aid, blocked: b, reason: reason})
	}
}

func (r *hookRunner) spent(aid uint64, n int64) {
	if r.h.Spent != nil {
		r.push(hookEvent{aid: aid, spent: n})
	}
}

func (r *hookRunner) run() {
	defer close(r.done)
	var batch []hookEvent
	for {
		r.mu.Lock()
		for len(r.q) == 0 && !r.stop {
			r.cond.Wait()
		}
		if len(r.q) == 0 && r.stop {
			r.mu.Unlock()
			return
		}
		batch, r.q = r.q, batch[:0]
		r.mu.Unlock()
		for _, e := range batch {
			if e.spent > 0 {
				r.h.Spent(e.aid, e.spent)
			} else {
				r.h.Blocked(e.aid, e.blocked, e.reason)
			}
		}
		clear(batch)
	}
}

// close delivers what is queued, then stops the goroutine.
func (r *hookRunner) close() {
	r.mu.Lock()
	r.stop = true
	r.mu.Unlock()
	r.cond.Signal()
	<-r.done
}
