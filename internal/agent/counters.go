package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/atomicfile"
	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/enforce"
)

// Reconciling kernel denies with chain rows (issue 20).
//
// The kernel side counts a deny when it is made (the network guard's
// deny_seq, the supervisor's count as it hands the deny over); the chain
// side when its row is durable. A deny in between is in flight: read at
// two different instants, the two counts then differ by it (doctor once
// showed kernel_denies = chain_denies + 1 for the one deny being fsynced).
// So a snapshot is taken by the consumer itself, between two batches, at
// an instant where the chain counts cannot move: equal counts there are
// equal, and a difference that stays while nothing is in flight is real.
// A real difference is an alarm, kept in the state directory.

// alarmFile holds the alarm, per source, across restarts.
const alarmFile = "counters-alarm.json"

// settleFor bounds how long a snapshot waits for denies in flight;
// quietFor is how long a difference must stay, nothing in flight, to be
// real (a supervisor deny is counted just after it is handed over).
const (
	settleFor = time.Second
	quietFor  = 20 * time.Millisecond
)

// reconcileEvery is how often the daemon looks for a difference by
// itself, doctor or not.
const reconcileEvery = 2 * time.Second

// replayLookback is how many of the chain's last records are searched for
// the rows of replayed network guard events: the dead daemon appended
// them just before it died, and acknowledges every batch.
const replayLookback = 8192

// counterState is the chain side of the counters and the alarm.
type counterState struct {
	requests chan chan snapshot // to the consumer

	mu       sync.Mutex
	chain    map[string]uint64 // deny rows by source, since this daemon started
	replayed map[string]bool   // keys of the network guard rows near the chain's end, at start
	ranges   []replayRange     // the network guard aggregate rows near the chain's end, at start
	alarm    map[string]*api.CounterAlarm
	path     string
}

// snapshot is the two sides of the counters at one instant.
type snapshot struct {
	kernel, chain map[string]uint64
	ringbufFull   uint64
	settled       bool // taken with nothing in flight that could explain a difference
	unread        bool // the kernel side could not be read: nothing to compare
}

func (s snapshot) total(m map[string]uint64) (n uint64) {
	for _, v := range m {
		n += v
	}
	return n
}

// diff is kernel minus chain for each source that differs.
func (s snapshot) diff() map[string]int64 {
	out := map[string]int64{}
	for _, src := range s.sources() {
		if d := int64(s.kernel[src]) - int64(s.chain[src]); d != 0 {
			out[src] = d
		}
	}
	return out
}

func (s snapshot) sources() []string {
	set := map[string]bool{}
	for k := range s.kernel {
		set[k] = true
	}
	for k := range s.chain {
		set[k] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// initCounters loads the alarm and the keys of the last network guard
// rows; before the consumer starts.
func (m *Manager) initCounters() error {
	c := &m.counts
	c.requests = make(chan chan snapshot)
	c.chain = map[string]uint64{}
	c.replayed = map[string]bool{}
	c.alarm = map[string]*api.CounterAlarm{}
	c.path = filepath.Join(m.cfg.StateDir, alarmFile)
	b, err := os.ReadFile(c.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("counters alarm: %w", err)
	default:
		var list []*api.CounterAlarm
		if err := json.Unmarshal(b, &list); err != nil {
			return fmt.Errorf("counters alarm %s: %w", c.path, err)
		}
		for _, a := range list {
			a.Now = false
			c.alarm[a.Source] = a
		}
	}
	head, _ := m.cfg.Chain.Head()
	rows, err := m.cfg.Chain.Query(audit.Query{AfterSeq: head - min(head, replayLookback), Type: "cap.*", Limit: audit.MaxLimit})
	if err != nil {
		return fmt.Errorf("read the chain's last rows: %w", err)
	}
	for _, r := range rows {
		if r.Detail["source"] == "netguard" && r.Detail["count"] != "" {
			// An aggregate row (aggregate.go) counts every deny of its
			// key between its first and last sequence.
			first, err1 := strconv.ParseUint(r.Detail["first_kseq"], 10, 64)
			last, err2 := strconv.ParseUint(r.Detail["last_kseq"], 10, 64)
			if err1 == nil && err2 == nil {
				c.ranges = append(c.ranges, replayRange{allowed: r.Type == audit.TypeCapUse, cgroup: r.Detail["cgroup_id"], object: r.Object, cap: r.Cap, first: first, last: last})
			}
			continue
		}
		if r.Detail["source"] == "netguard" {
			c.replayed[replayKey(r.Type == audit.TypeCapUse, r.KSeq, r.Detail["cgroup_id"], r.PID, r.Object)] = true
		}
	}
	return nil
}

// replayKey names a network guard event by what its row keeps: two events
// of one guard differ in their sequence number, and an older guard's
// event (its numbers restart) in its cgroup, pid or object.
func replayKey(allowed bool, seq uint64, cgroup string, pid int, object string) string {
	return fmt.Sprintf("%t/%d/%s/%d/%s", allowed, seq, cgroup, pid, object)
}

// replayRange is what an aggregate deny or use row of the network guard
// counts.
type replayRange struct {
	allowed             bool
	cgroup, object, cap string
	first, last         uint64
}

// recordedBefore reports whether a replayed event's row is in the chain,
// its own or an aggregate's.
func (c *counterState) recordedBefore(ev enforce.Event) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	cg := strconv.FormatUint(ev.CgroupID, 10)
	if c.replayed[replayKey(ev.Allowed, ev.Seq, cg, ev.PID, ev.Object)] {
		return true
	}
	for _, r := range c.ranges {
		if r.allowed == ev.Allowed && r.cgroup == cg && r.object == ev.Object && r.cap == ev.Cap && ev.Seq >= r.first && ev.Seq <= r.last {
			return true
		}
	}
	return false
}

func (c *counterState) addChain(source string) {
	c.mu.Lock()
	c.chain[source]++
	c.mu.Unlock()
}

// raw reads both sides now, with no regard to denies in flight.
func (m *Manager) raw() snapshot {
	s := snapshot{kernel: map[string]uint64{}}
	if m.cfg.Enforce != nil {
		k, err := m.cfg.Enforce.Counters()
		if err != nil {
			s.unread = true
		}
		maps.Copy(s.kernel, k.BySource)
		s.ringbufFull = k.RingbufFull
	}
	m.counts.mu.Lock()
	s.chain = maps.Clone(m.counts.chain)
	m.counts.mu.Unlock()
	return s
}

// settle takes a snapshot in the consumer goroutine, recording what
// arrives meanwhile: the first instant where both sides agree, or where a
// difference stays for quietFor with nothing in flight; past settleFor,
// the last look, not settled.
func (m *Manager) settle(events <-chan enforce.Event) snapshot {
	pender, _ := m.cfg.Enforce.(enforce.Pender)
	deadline := time.Now().Add(settleFor)
	var quiet map[string]int64
	var quietSince time.Time
	for {
		m.flushAggregates(true) // aggregate.go: a pending aggregate is in flight; write it
		s := m.raw()
		if s.unread {
			return s
		}
		d := s.diff()
		if len(d) == 0 {
			s.settled = true
			return s
		}
		if len(events) == 0 && (pender == nil || !pender.Pending()) {
			if quiet != nil && maps.Equal(d, quiet) {
				if time.Since(quietSince) >= quietFor {
					s.settled = true
					return s
				}
			} else {
				quiet, quietSince = d, time.Now()
			}
		} else {
			quiet = nil
		}
		if time.Now().After(deadline) {
			return s
		}
		select {
		case ev, ok := <-events:
			if !ok {
				return s
			}
			m.recordEvents(takeBatch(ev, events))
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// snapshot asks the consumer for a settled snapshot; without one (no
// enforcer, or closing) it reads both sides as they are.
func (m *Manager) snapshot() snapshot {
	if m.cfg.Enforce == nil || m.counts.requests == nil {
		return m.raw()
	}
	reply := make(chan snapshot, 1)
	select {
	case m.counts.requests <- reply:
		return <-reply
	case <-time.After(settleFor):
		return m.raw()
	case <-m.stop:
		return m.raw()
	}
}

// note keeps a settled difference in the alarm (persisted when it
// changes) and marks which sources differ now.
func (m *Manager) note(s snapshot) {
	if !s.settled {
		return
	}
	c := &m.counts
	d := s.diff()
	now := time.Now().UTC()
	c.mu.Lock()
	changed := false
	for src, a := range c.alarm {
		if _, ok := d[src]; !ok && a.Now {
			a.Now = false
		}
	}
	for src, diff := range d {
		a := c.alarm[src]
		if a == nil {
			a = &api.CounterAlarm{Source: src, FirstSeen: now}
			c.alarm[src] = a
			m.log.Error("kernel denies and audit chain rows differ", "source", src, "kernel_denies", s.kernel[src],
				"chain_denies", s.chain[src], "difference", diff)
		}
		if a.Difference != diff || a.KernelDenies != s.kernel[src] || a.DaemonPID != os.Getpid() {
			changed = true
		}
		a.Difference, a.KernelDenies, a.ChainDenies, a.LastSeen, a.DaemonPID, a.Now = diff, s.kernel[src], s.chain[src], now, os.Getpid(), true
		if abs(diff) > abs(a.MaxDifference) {
			a.MaxDifference = diff
		}
	}
	var list []*api.CounterAlarm
	if changed {
		list = c.sortedLocked()
	}
	c.mu.Unlock()
	if changed {
		b, _ := json.MarshalIndent(list, "", "  ")
		if err := atomicfile.Write(c.path, append(b, '\n'), 0o600); err != nil {
			m.log.Error("persist the counters alarm", "path", c.path, "err", err)
		}
	}
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

func (c *counterState) sortedLocked() []*api.CounterAlarm {
	var out []*api.CounterAlarm
	for _, src := range slices.Sorted(maps.Keys(c.alarm)) {
		out = append(out, c.alarm[src])
	}
	return out
}

// reconcile looks for a difference every reconcileEvery, so the alarm
// does not wait for someone to run doctor.
func (m *Manager) reconcile() {
	defer m.wg.Done()
	t := time.NewTicker(reconcileEvery)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.note(m.snapshot())
		}
	}
}

// Counters reports, from one settled snapshot, kernel denies, chain deny
// rows and ring-buffer losses, in total and by source, whether the
// snapshot settled, and the alarm's summary: mismatch (the sum of the
// sources' differences now, by magnitude) and mismatch_since (Unix time
// a difference was first seen on this host, 0 if never).
func (m *Manager) Counters() map[string]uint64 {
	s := m.snapshot()
	m.note(s)
	out := map[string]uint64{"kernel_denies": s.total(s.kernel), "chain_denies": s.total(s.chain), "ringbuf_full": s.ringbufFull,
		"counters_settled": 0, "mismatch": 0, "mismatch_since": 0}
	if s.settled {
		out["counters_settled"] = 1
	}
	for _, src := range []string{"supervisor", "netguard", "bpf-lsm"} {
		out["kernel_denies_"+src], out["chain_denies_"+src] = s.kernel[src], s.chain[src]
	}
	if s.settled {
		for _, d := range s.diff() {
			out["mismatch"] += uint64(abs(d))
		}
	}
	m.counts.mu.Lock()
	for _, a := range m.counts.alarm {
		if t := uint64(a.FirstSeen.Unix()); out["mismatch_since"] == 0 || t < out["mismatch_since"] {
			out["mismatch_since"] = t
		}
	}
	m.counts.mu.Unlock()
	return out
}

// CountersAlarm lists the sources whose counters ever differed (nil if
// none), Now set for those that differ at the last settled snapshot.
func (m *Manager) CountersAlarm() []api.CounterAlarm {
	m.counts.mu.Lock()
	defer m.counts.mu.Unlock()
	var out []api.CounterAlarm
	for _, a := range m.counts.sortedLocked() {
		out = append(out, *a)
	}
	return out
}
