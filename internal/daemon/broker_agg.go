package daemon

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/broker"
)

// Inference call aggregation (issue 19.1).
//
// Every call the broker finished was one durable inference.call row: a
// flooding agent (1-token completions from 16 connections) added about
// 350 rows a second. Now the first finished call of each (agent, model,
// endpoint, stream) since this daemon started has its own row, as
// before; further calls of that key that finished ok (and whose usage
// stayed within its reservation: no reason to review) are summed —
// count, tokens_in, tokens_out — into audit.InferenceCallAggregate rows,
// at most one every callAggregateEvery per agent, the key pending longest
// first. Refusals and failures stay one row each: they are rare and a
// person reviews them. The tokens of an agent's inference.call rows still
// add up to what the broker metered.
//
// Fail closed: a call is counted only while the chain can write the row
// that will count it (audit.Chain.Err). When it cannot, a finished call
// gets its row of its own (its tokens are spent: they go on record if the
// chain can take anything) and is refused; a streamed call whose start
// would only have been counted is refused before its first token. An
// agent's pending rows are written before its terminal state row
// (flushAgent, agent.Config.BeforeEnd), and all of them at
// shutdown (close); a daemon killed with -9 loses the pending counts
// (each key's first is on record; with K keys of an agent pending, up to
// about K x callAggregateEvery of its counted calls).
// audit_each_use = true keeps one row per call.

// callAggregateEvery is the least time between two aggregate rows of one
// agent (four a second); callAggregateTick how often due rows are looked
// for.
const (
	callAggregateEvery = 250 * time.Millisecond
	callAggregateTick  = 50 * time.Millisecond
)

// maxCallKeys bounds the keys remembered; past it the idle ones are
// forgotten (each then has one more row of its own).
const maxCallKeys = 16384

type callKey struct {
	aid             uint64
	model, endpoint string
	stream          bool
}

// callSum is the pending aggregate of one key.
type callSum struct {
	count       uint64
	in, out     int64
	first, last time.Time
}

type callAggregator struct {
	chain *audit.Chain
	log   *slog.Logger
	off   bool // audit_each_use

	mu       sync.Mutex
	seen     map[callKey]bool // keys whose first call has its row
	pending  map[callKey]*callSum
	agentRow map[uint64]time.Time // when each agent's last aggregate row was written
	closed   bool

	stop chan struct{}
	done chan struct{}
}

func newCallAggregator(chain *audit.Chain, log *slog.Logger, off bool) *callAggregator {
	a := &callAggregator{chain: chain, log: log, off: off, seen: map[callKey]bool{}, pending: map[callKey]*callSum{},
		agentRow: map[uint64]time.Time{}, stop: make(chan struct{}), done: make(chan struct{})}
	go a.run()
	return a
}

func keyOf(c broker.Call) callKey {
	return callKey{aid: c.AID, model: c.Model, endpoint: c.Endpoint, stream: c.Stream}
}

// countable: a call the aggregator may count (an agent's, finished ok,
// nothing to review), or the admission of a streamed one.
func countable(c broker.Call) bool {
	return c.AID != 0 && c.Reason == "" && (c.Result == broker.ResultOK || c.Result == broker.ResultAdmitted)
}

// known reports whether c's key has had its row of its own (so c would be
// counted), and the aggregator is on.
func (a *callAggregator) known(c broker.Call) bool {
	if a.off || !countable(c) {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return !a.closed && a.seen[keyOf(c)]
}

// add counts a finished call of a known key; false once closing (the
// caller then writes its row).
func (a *callAggregator) add(c broker.Call, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	k := keyOf(c)
	p := a.pending[k]
	if p == nil {
		p = &callSum{first: now}
		a.pending[k] = p
	}
	p.count++
	p.in += c.TokensIn
	p.out += c.TokensOut
	p.last = now
	return true
}

// wrote marks c's key as having its row (its first finished call's).
func (a *callAggregator) wrote(c broker.Call) {
	if a.off || c.Result != broker.ResultOK || !countable(c) {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.seen) >= maxCallKeys {
		for k := range a.seen {
			if a.pending[k] == nil {
				delete(a.seen, k)
			}
		}
	}
	a.seen[keyOf(c)] = true
}

// take removes and returns the rows due now: for each agent whose last
// aggregate row is callAggregateEvery old, the key pending longest; all
// of them with all; those of one agent with only.
func (a *callAggregator) take(now time.Time, all bool, only uint64) []audit.Record {
	a.mu.Lock()
	defer a.mu.Unlock()
	var keys []callKey
	oldest := map[uint64]callKey{}
	for k, p := range a.pending {
		switch {
		case all || (only != 0 && k.aid == only):
			keys = append(keys, k)
		case only != 0 || now.Sub(a.agentRow[k.aid]) < callAggregateEvery:
		default:
			if o, ok := oldest[k.aid]; !ok || p.first.Before(a.pending[o].first) {
				oldest[k.aid] = k
			}
		}
	}
	for _, k := range oldest {
		keys = append(keys, k)
	}
	recs := make([]audit.Record, 0, len(keys))
	for _, k := range keys {
		p := a.pending[k]
		delete(a.pending, k)
		a.agentRow[k.aid] = now
		recs = append(recs, audit.InferenceCallAggregate(k.aid, k.model, p.count, p.in, p.out, p.first, p.last,
			map[string]string{"endpoint": k.endpoint, "stream": strconv.FormatBool(k.stream)}))
	}
	if only != 0 {
		for k := range a.seen {
			if k.aid == only {
				delete(a.seen, k)
			}
		}
		delete(a.agentRow, only)
	}
	return recs
}

// write appends recs in one commit.
func (a *callAggregator) write(recs []audit.Record) {
	if len(recs) == 0 {
		return
	}
	if _, err := a.chain.AppendBatch(context.Background(), recs); err != nil {
		var calls uint64
		for _, r := range recs {
			calls += audit.RowCount(r)
		}
		a.log.Error("audit chain refused aggregate inference rows: those calls were answered and are not on record", "rows", len(recs), "calls", calls, "err", err)
	}
}

func (a *callAggregator) run() {
	defer close(a.done)
	t := time.NewTicker(callAggregateTick)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case now := <-t.C:
			a.write(a.take(now, false, 0))
		}
	}
}

// flushAgent writes agent aid's pending rows now and forgets its keys
// (it is ending: agent.Config.BeforeEnd).
func (a *callAggregator) flushAgent(aid uint64) {
	a.write(a.take(time.Now(), false, aid))
}

// close writes every pending row and stops: later calls get rows of
// their own. After the broker's calls have finished.
func (a *callAggregator) close() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.closed = true
	a.mu.Unlock()
	close(a.stop)
	<-a.done
	a.write(a.take(time.Now(), true, 0))
}
