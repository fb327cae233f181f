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
	agentRow map[uint64]time.Time // when each agent's last aggregate row was written
	off      bool                 // closing: every deny gets its own row again
}

func aggKeyOf(aid uint64, ev enforce.Event) aggKey {
	return aggKey{aid: aid, cgroup: ev.CgroupID, source: ev.Source, cap: ev.Cap, object: ev.Object, sys: ev.Syscall, errno: ev.Errno}
}

// gather reports whether ev, a deny to be recorded, is taken into its
// key's pending aggregate instead of a row of its own; otherwise the
// caller writes its row, and the key is remembered.
func (g *aggregator) gather(aid uint64, e *entry, ev enforce.Event, now time.Time) bool {
	if g.off || ev.Allowed {
		return false
	}
	if g.lastRow == nil {
		g.lastRow, g.pending, g.agentRow = map[aggKey]time.Time{}, map[aggKey]*aggregate{}, map[uint64]time.Time{}
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
	a.events = append(a.events, ev)
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
// agent whose last aggregate row is aggregateEvery old the one key
// pending longest.
func (g *aggregator) due(now time.Time, all bool) []aggKey {
	var keys []aggKey
	oldest := map[uint64]aggKey{}
	for k, a := range g.pending {
		if all {
			keys = append(keys, k)
			continue
		}
		if now.Sub(g.agentRow[k.aid]) < aggregateEvery {
			continue
		}
		if o, ok := oldest[k.aid]; !ok || a.first.Before(g.pending[o].first) {
			oldest[k.aid] = k
		}
	}
	for _, k := range oldest {
		keys = append(keys, k)
	}
	return keys
}

// flushAggregates writes, in one commit, the pending aggregates due
// (all of them if all), then counts and answers their events as
// recordEvents does.
func (m *Manager) flushAggregates(all bool) {
	g := &m.agg
	if len(g.pending) == 0 {
		return
	}
	now := time.Now()
	keys := g.due(now, all)
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
