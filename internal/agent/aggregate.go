package agent

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/enforce"
)

// Deny aggregation (issue 19).
//
// An agent looping on a denied call used to add one durable row per deny
// (1,860 rows/s, 47 GB a day of chain). Now the first deny of each
// (agent, source, capability, object, errno) since this daemon started
// has its own row — the one a person reviews — and the further denies of
// that key are gathered into one aggregate row (audit.CapDenyAggregate:
// count, first and last source sequence, time span). An agent's aggregate
// rows are written at most once every aggregateEvery per agent, not per
// key: an agent looping over four denied calls used to add ten rows a
// second for each (about 30 rows/s measured), now it adds at most ten in
// all, whatever it loops over. When several keys of one agent are pending
// the one pending longest goes first; the others keep counting (their
// calls wait longer: the flooder waits for its own turn). First rows are
// not paced: they are bounded by the distinct objects the agent tries.
//
// Nothing is answered before its count is durable: a gathered deny's
// event is held, its supervisor call waiting (Reply) and its network
// guard ring record unacknowledged (Ack), until the aggregate row that
// counts it is in the chain. So a daemon killed with a pending aggregate
// loses no count: the supervisor's calls were not answered (the next
// daemon restarts them, and counts them afresh: its kernel-side count
// starts at zero too), and the ring's records are replayed to the next
// daemon, which finds the ones an aggregate row already counts by its
// kseq range (counters.go, recordedBefore). The chain-side counters count
// denies, not rows, so "kernel denies == chain denies" is unchanged and
// equals the sum of the counts of the deny rows.
//
// The wait also slows the storm itself: a denied call waits for its row
// (aggregateEvery, times the agent's other keys pending), so a looping
// agent's supervised denies come at the pace of its own rows (a one-thread
// loop: at most ten a second in all, one deny a row; many threads share
// a row), and the consumer
// does not fsync for it per deny. Network guard denies do not wait (the
// kernel answers them), so their aggregate rows do count many.
const aggregateEvery = 100 * time.Millisecond

// Allowed-use aggregation (issue 19.1). The uses the audit policy keeps
// on record (cap.use: the supervisor's execs and writes, the network
// guard's connects, under `all`) are one durable row each, and a call
// waits for its row: an agent looping on fork+exec wrote about 250 rows a
// second. Now they are treated as denies are: the first use of each key
// is a row of its own, further uses are counted into
// audit.CapUseAggregate rows, at most one every useAggregateEvery per
// agent (four a second), on a budget of their own so that a use flood
// does not delay the agent's deny rows nor the reverse. Unlike a deny, a
// counted supervised use is answered at once (the call goes on) when the
// chain is healthy (audit.Chain.Err: not broken, not below its reserve);
// when it is not, the use is refused as one whose row cannot be written,
// never let through uncounted (a network guard connect, made already,
// then gets a row of its own). A counted network guard use is
// acknowledged in the ring at once (see gather). What a daemon killed
// with -9 loses is the pending counts (each key's first use has its row;
// an agent with K keys pending has each written within about
// K x useAggregateEvery, so the loss is bounded by that span, not by
// useAggregateEvery alone), and an aggregate row the chain refuses is
// logged with its count (the uses it counts were answered); a clean stop,
// and an agent's end, write every pending row first (flushAgent). audit_each_use = true in coconut.toml (Config.
// AuditEachUse) keeps one row per use.
const useAggregateEvery = 250 * time.Millisecond

// aggregateTick is how often due aggregates are looked for.
const aggregateTick = 50 * time.Millisecond

// maxAggregateKeys bounds the keys remembered; past it they are forgotten
// (each then has one more row of its own).
const maxAggregateKeys = 16384

// maxNotifIDs bounds the supervisor notification ids kept in one
// aggregate row (watch.go answers them after a restart); with one
// supervisor goroutine per agent, a row gathers about one call per thread.
const maxNotifIDs = 64

type aggKey struct {
	aid, cgroup              uint64
	source, cap, object, sys string
	errno                    int
	allowed                  bool // an allowed use (cap.use), not a deny
}

// aggregate is the pending row of one key.
type aggregate struct {
	count             uint64
	firstSeq, lastSeq uint64
	first, last       time.Time
	pid               int
	events            []enforce.Event // answered once the row is durable
	entry             *entry
}

type aggregator struct {
	lastRow  map[aggKey]time.Time // keys with a row, and when the last was written
	pending  map[aggKey]*aggregate
	agentRow map[uint64]time.Time // when each agent's last aggregate deny row was written
	useRow   map[uint64]time.Time // when each agent's last aggregate use row was written
	off      bool                 // closing: every deny and use gets its own row again
	eachUse  bool                 // audit_each_use: allowed uses are never counted
}

func aggKeyOf(aid uint64, ev enforce.Event) aggKey {
	return aggKey{aid: aid, cgroup: ev.CgroupID, source: ev.Source, cap: ev.Cap, object: ev.Object, sys: ev.Syscall, errno: ev.Errno, allowed: ev.Allowed}
}

// wouldGather reports whether gather would count ev into an aggregate
// (its key has had its row), without changing anything.
func (g *aggregator) wouldGather(aid uint64, ev enforce.Event) bool {
	if g.off || (ev.Allowed && g.eachUse) || g.lastRow == nil {
		return false
	}
	_, ok := g.lastRow[aggKeyOf(aid, ev)]
	return ok
}

// gather reports whether ev, a deny or an allowed use to be recorded, is
// taken into its key's pending aggregate instead of a row of its own;
// otherwise the caller writes its row, and the key is remembered. A
// gathered supervised use is not kept (the caller answers it now); any
// other gathered event is, to be answered or acknowledged once its row
// is durable.
func (g *aggregator) gather(aid uint64, e *entry, ev enforce.Event, now time.Time) bool {
	if g.off || (ev.Allowed && g.eachUse) {
		return false
	}
	if g.lastRow == nil {
		g.lastRow, g.pending, g.agentRow, g.useRow = map[aggKey]time.Time{}, map[aggKey]*aggregate{}, map[uint64]time.Time{}, map[uint64]time.Time{}
	}
	k := aggKeyOf(aid, ev)
	if _, ok := g.lastRow[k]; !ok {
		if len(g.lastRow) >= maxAggregateKeys {
			g.forgetIdle()
		}
		g.lastRow[k] = now
		return false
	}
	a := g.pending[k]
	if a == nil {
		a = &aggregate{firstSeq: ev.Seq, first: now, entry: e}
		g.pending[k] = a
	}
	a.count++
	a.lastSeq, a.last, a.pid = ev.Seq, now, ev.PID
	if !ev.Allowed {
		a.events = append(a.events, ev)
	} else if ev.Ack != nil {
		// A counted connect is acknowledged at once, not held until its
		// aggregate row: the ring is shared by every agent, and one
		// agent's connects to many keys held for K x useAggregateEvery
		// would fill it, and the kernel would drop everyone's events
		// (denies included). What a daemon killed with -9 loses is then
		// the pending count, as for supervised uses.
		ev.Ack()
	}
	return true
}

// forgetIdle drops the remembered keys with nothing pending.
func (g *aggregator) forgetIdle() {
	for k := range g.lastRow {
		if g.pending[k] == nil {
			delete(g.lastRow, k)
		}
	}
}

// due picks the keys to write now: all of them if all, else for each
// agent whose last aggregate deny row is aggregateEvery old the deny key
// pending longest, and whose last aggregate use row is useAggregateEvery
// old the use key pending longest.
func (g *aggregator) due(now time.Time, all bool) []aggKey {
	var keys []aggKey
	type class struct {
		aid     uint64
		allowed bool
	}
	oldest := map[class]aggKey{}
	for k, a := range g.pending {
		if all {
			keys = append(keys, k)
			continue
		}
		if k.allowed && now.Sub(g.useRow[k.aid]) < useAggregateEvery || !k.allowed && now.Sub(g.agentRow[k.aid]) < aggregateEvery {
			continue
		}
		c := class{k.aid, k.allowed}
		if o, ok := oldest[c]; !ok || a.first.Before(g.pending[o].first) {
			oldest[c] = k
		}
	}
	for _, k := range oldest {
		keys = append(keys, k)
	}
	return keys
}

// ofAgent is every pending key of agent aid.
func (g *aggregator) ofAgent(aid uint64) []aggKey {
	var keys []aggKey
	for k := range g.pending {
		if k.aid == aid {
			keys = append(keys, k)
		}
	}
	return keys
}

// forgetAgent drops what is remembered of an ended agent's keys.
func (g *aggregator) forgetAgent(aid uint64) {
	for k := range g.lastRow {
		if k.aid == aid && g.pending[k] == nil {
			delete(g.lastRow, k)
		}
	}
	delete(g.agentRow, aid)
	delete(g.useRow, aid)
}

// flushAggregates writes, in one commit, the pending aggregates due
// (all of them if all), then counts and answers their events as
// recordEvents does.
func (m *Manager) flushAggregates(all bool) {
	if len(m.agg.pending) == 0 {
		return
	}
	m.writeAggregates(m.agg.due(time.Now(), all))
}

// writeAggregates writes the pending aggregates of keys in one commit,
// then counts and answers their events as recordEvents does.
func (m *Manager) writeAggregates(keys []aggKey) {
	g := &m.agg
	now := time.Now()
	var recs []audit.Record
	for _, k := range keys {
		a := g.pending[k]
		detail := map[string]string{"source": k.source, "cgroup_id": strconv.FormatUint(k.cgroup, 10)}
		if k.sys != "" {
			detail["syscall"] = k.sys
		}
		var ids []string
		for _, ev := range a.events {
			if ev.NotifID != 0 && len(ids) < maxNotifIDs {
				ids = append(ids, strconv.FormatUint(ev.NotifID, 10))
			}
		}
		if len(ids) > 0 {
			detail["notif_ids"] = strings.Join(ids, ",") // watch.go: answered from the row after a restart
		}
		if k.allowed {
			recs = append(recs, audit.CapUseAggregate(k.aid, k.cap, k.object, a.pid, a.count, a.firstSeq, a.lastSeq, a.first, a.last, detail))
			continue
		}
		recs = append(recs, audit.CapDenyAggregate(k.aid, k.cap, k.object, k.errno, a.pid, a.count, a.firstSeq, a.lastSeq, a.first, a.last, detail))
	}
	if len(recs) == 0 {
		return
	}
	_, err := m.cfg.Chain.AppendBatch(context.Background(), recs)
	for _, k := range keys {
		a := g.pending[k]
		delete(g.pending, k)
		g.lastRow[k] = now
		if k.allowed {
			g.useRow[k.aid] = now
			for _, ev := range a.events {
				if ev.Ack != nil {
					ev.Ack()
				}
			}
			if err != nil {
				m.log.Error("audit chain refused an aggregate use row: allowed uses answered and not on record", "aid", k.aid, "cap", k.cap, "object", k.object, "count", a.count, "err", err)
			}
			continue
		}
		g.agentRow[k.aid] = now
		for _, ev := range a.events {
			if err == nil {
				m.counts.addChain(ev.Source)
			}
			if ev.Ack != nil {
				ev.Ack()
			}
		}
		for _, ev := range a.events {
			if ev.Reply != nil {
				ev.Reply <- err // the deny stands either way; err says it is not recorded
			}
		}
		if err != nil {
			m.log.Error("audit chain refused an aggregate deny row: kernel and chain counters now differ", "aid", k.aid, "count", a.count, "err", err)
			continue
		}
		if a.entry != nil {
			go m.markDenied(a.entry, a.events[len(a.events)-1])
		}
	}
}

// flushWait bounds how long an agent's end waits for its aggregate rows.
const flushWait = 5 * time.Second

// aggFlushReq asks the consumer to write one agent's pending aggregates.
type aggFlushReq struct {
	aid  uint64
	done chan struct{}
}

// flushAgent has the consumer write agent aid's pending aggregate rows
// now, the events already queued first, and forget its keys; it returns
// once they are written (or past flushWait, logged). After Close the
// consumer wrote everything already.
func (m *Manager) flushAgent(aid uint64) {
	if m.aggReq == nil {
		return
	}
	req := aggFlushReq{aid: aid, done: make(chan struct{})}
	timeout := time.NewTimer(flushWait)
	defer timeout.Stop()
	select {
	case m.aggReq <- req:
	case <-m.aggFlushed:
		return
	case <-timeout.C:
		m.log.Error("agent's aggregate rows not written before its end", "aid", aid, "waited", flushWait)
		return
	}
	select {
	case <-req.done:
	case <-timeout.C:
		m.log.Error("agent's aggregate rows not written before its end", "aid", aid, "waited", flushWait)
	}
}

// serveFlush is the consumer's side of flushAgent.
func (m *Manager) serveFlush(req aggFlushReq, events <-chan enforce.Event) {
	// Everything queued when the flush was asked for (the queue holds up
	// to several batches), so no count of the agent's lands after its end.
	for n := len(events); n > 0; {
		ev, ok := <-events
		if !ok {
			break
		}
		batch := takeBatch(ev, events)
		n -= len(batch)
		m.recordEvents(batch)
	}
	if keys := m.agg.ofAgent(req.aid); len(keys) > 0 {
		m.writeAggregates(keys)
	}
	m.agg.forgetAgent(req.aid)
	close(req.done)
}
