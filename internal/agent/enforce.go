package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/attest"
	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/enforce"
	"github.com/coconut-os/coconut/internal/launch"
	"github.com/coconut-os/coconut/internal/state"
)

// bind hands the agent's bundle to the enforcer before its first process
// exists; the floor it returns goes to the trampoline. No enforcer, no
// agent: nothing runs unenforced.
// measured are the sealed memfds the trampoline will exec and the
// interpreter read (none for an adopted agent: it runs already).
func (m *Manager) bind(rec *record, measured ...enforce.MeasuredFile) (*launch.Floor, error) {
	if m.cfg.Enforce == nil {
		return nil, api.Errorf(api.ErrUnavailable, "no capability enforcer is loaded (%s): agents do not start", m.cfg.EnforceWhy)
	}
	caps, err := capability.ParseAll(rec.Caps)
	if err != nil {
		return nil, api.Errorf(api.ErrInternal, "agent %d: %v", rec.AID, err)
	}
	var ceiling []capability.Cap
	if rec.Ceiling != nil {
		if ceiling, err = capability.ParseAll(rec.Ceiling); err != nil {
			return nil, api.Errorf(api.ErrInternal, "agent %d ceiling: %v", rec.AID, err)
		}
		if ceiling == nil {
			ceiling = []capability.Cap{}
		}
	}
	if rec.Memory.SSD > 0 {
		// The SSD tier is the agent's own: writable without saying so.
		scratch, _ := capability.Parse("fs.write:" + m.scratchDir(rec.AID) + "/**")
		caps = append(caps, scratch)
		if ceiling != nil {
			ceiling = append(ceiling, scratch)
		}
	}
	if ceiling != nil {
		ceiling = m.implicitCaps(ceiling) // unixsock.go: the implicit broker and Unix socket rules
	}
	floor, err := m.cfg.Enforce.Bind(enforce.Agent{
		AID: rec.AID, CgroupID: rec.CgroupID, Policy: rec.Workload + "/" + rec.Class, Caps: m.implicitCaps(caps), Ceiling: ceiling,
		Audit: rec.Audit, Static: rec.Static, Programs: programPaths(rec.Command),
		Measured: measured,
	})
	if err != nil {
		return nil, api.Errorf(api.ErrUnavailable, "enforcer: %v", err)
	}
	m.mu.Lock()
	m.byCgroup[rec.CgroupID] = rec.AID
	m.mu.Unlock()
	m.indexKey(rec) // inference.go: at spawn, and again for an adopted agent
	return floor, nil
}

func (m *Manager) unbind(aid uint64) {
	if m.cfg.Enforce == nil {
		return
	}
	if err := m.cfg.Enforce.Unbind(aid); err != nil {
		m.log.Warn("unbind agent from enforcer", "aid", aid, "err", err)
	}
}

// enforcement is what the attestation says about how the bundle is held.
func (m *Manager) enforcement() attest.Enforcement {
	if m.cfg.Enforce == nil {
		return attest.Enforcement{Backend: "none"}
	}
	return attest.Enforcement{
		Backend:      m.cfg.Enforce.Name(),
		KernelRights: m.cfg.Enforce.Rights(),
		Notes:        "baseline allowed to every agent: " + strings.Join(enforce.Baseline(), " "),
	}
}

// consumeDenies turns every kernel deny into an audit row carrying the
// kernel's sequence number, and moves the agent to Capability-denied.
// The chain counts (counters.go) count the rows, so doctor can show kernel
// and chain agree; their snapshots are taken here, between two batches.
func (m *Manager) consumeDenies() {
	events := m.cfg.Enforce.Events()
	tick := time.NewTicker(aggregateTick) // aggregate.go
	defer tick.Stop()
	stop := m.stop
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				m.flushAggregates(true)
				return
			}
			m.recordEvents(takeBatch(ev, events))
		case req := <-m.aggReq:
			m.serveFlush(req, events) // aggregate.go: an agent ends
		case reply := <-m.counts.requests:
			reply <- m.settle(events)
		case <-tick.C:
			m.flushAggregates(false)
		case <-stop:
			// Closing: nothing pending may be lost with the daemon, and
			// from now on every deny has its own row.
			m.agg.off = true
			m.flushAggregates(true)
			close(m.aggFlushed)
			stop = nil
		}
	}
}

// takeBatch takes whatever else is already queued after ev, to append it
// in one commit: one fsync per row would cap a deny burst at the disk's
// fsync rate (a 100k burst would take minutes).
func takeBatch(ev enforce.Event, events <-chan enforce.Event) []enforce.Event {
	batch := []enforce.Event{ev}
	for len(batch) < denyBatch {
		select {
		case ev, ok := <-events:
			if !ok {
				return batch
			}
			batch = append(batch, ev)
		default:
			return batch
		}
	}
	return batch
}

// denyBatch bounds the rows of one chain commit made by consumeDenies.
const denyBatch = 1024

// recordEvents appends one row per event, in order, in one commit, and
// answers the events that wait for it. A replayed network guard event
// whose row the previous daemon wrote gets no second one. The chain
// counts move, and sources are acknowledged, before any answer: a deny is
// counted on the chain side as soon as its row is durable.
func (m *Manager) recordEvents(batch []enforce.Event) {
	recs := make([]audit.Record, 0, len(batch))
	entries := make([]*entry, len(batch))
	written := make([]bool, len(batch))
	gathered := make([]bool, len(batch)) // counted in a pending aggregate (a deny: answered when it is written)
	refused := make([]error, len(batch)) // a supervised use that could only be counted, on an unhealthy chain
	var health error                     // m.cfg.Chain.Err(), asked once per batch
	asked := false
	now := time.Now()
	m.mu.Lock()
	for i, ev := range batch {
		aid, ok := m.byCgroup[ev.CgroupID]
		if !ok {
			// A deny made while no daemon ran, read from the pinned ring
			// before its agent was adopted again.
			aid = m.aidOfCgroupLocked(ev.CgroupID)
		}
		entries[i] = m.agents[aid]
		if ev.Replayed && m.counts.recordedBefore(ev) {
			continue
		}
		detail := map[string]string{"source": ev.Source, "cgroup_id": strconv.FormatUint(ev.CgroupID, 10)}
		if ev.Syscall != "" {
			detail["syscall"] = ev.Syscall
		}
		if ev.NotifID != 0 {
			detail["notif_id"] = strconv.FormatUint(ev.NotifID, 10) // journal.go: answered from the row after a restart
		}
		if !ev.Allowed {
			m.countStorm(aid, entries[i], now) // storm.go
		}
		own := false // a row of its own, whatever aggregation says
		if ev.Allowed && m.agg.wouldGather(aid, ev) {
			// aggregate.go: a use that would only be counted passes only
			// on a chain that can still write the row that counts it.
			if !asked {
				health, asked = m.cfg.Chain.Err(), true
			}
			if health != nil && ev.Reply != nil {
				refused[i] = health
				continue
			}
			// The network guard's connect is made already: a row of its
			// own, which the chain writes or refuses.
			own = health != nil
		}
		if !own && m.agg.gather(aid, entries[i], ev, now) { // aggregate.go: counted in a later row
			gathered[i] = true
			continue
		}
		r := audit.CapDeny(aid, ev.Cap, ev.Object, ev.Errno, ev.PID, ev.Seq, detail)
		if ev.Allowed {
			// An allowed use the audit policy wants on record (the
			// supervisor's opens and execs wait for it).
			r = audit.CapUse(aid, ev.Cap, ev.Object, ev.PID, ev.Seq, detail)
		}
		recs = append(recs, r)
		written[i] = true
	}
	m.mu.Unlock()
	var err error
	if len(recs) > 0 {
		_, err = m.cfg.Chain.AppendBatch(context.Background(), recs)
	}
	marked := map[*entry]bool{}
	for i, ev := range batch {
		if gathered[i] || refused[i] != nil {
			continue
		}
		if !ev.Allowed && (err == nil || !written[i]) {
			m.counts.addChain(ev.Source)
		}
		if ev.Ack != nil {
			ev.Ack() // recorded, or refused by the chain: the counters say which
		}
	}
	for i, ev := range batch {
		if refused[i] != nil {
			ev.Reply <- refused[i] // refused, as a use whose row cannot be written
			continue
		}
		if gathered[i] {
			if ev.Allowed && ev.Reply != nil {
				ev.Reply <- nil // counted: the call goes on (its row comes within useAggregateEvery)
			}
			continue
		}
		if ev.Reply != nil {
			ev.Reply <- err // an unrecorded allowed use is refused
		}
		if ev.Allowed || !written[i] {
			continue
		}
		if err != nil {
			m.log.Error("audit chain refused a deny row: kernel and chain counters now differ", "source", ev.Source, "kseq", ev.Seq, "err", err)
			continue
		}
		if e := entries[i]; e != nil && !marked[e] {
			marked[e] = true
			go m.markDenied(e, ev)
		}
	}
}

func (m *Manager) markDenied(e *entry, ev enforce.Event) {
	e.trans.Lock()
	defer e.trans.Unlock()
	m.mu.Lock()
	st := e.rec.State
	m.mu.Unlock()
	if st != state.Active && st != state.InferenceBlocked {
		return
	}
	reason := fmt.Sprintf("%s %s denied (kseq %d)", ev.Cap, ev.Object, ev.Seq)
	if err := m.transition(context.Background(), e, state.CapabilityDenied, reason, nil); err != nil {
		m.log.Warn("mark agent capability-denied", "aid", e.rec.AID, "err", err)
	}
}

// programPaths is the real path of an agent's program (symlinks resolved,
// as the kernel names the file it execs), for the bpf-lsm backend's exec
// rule; none when it cannot be resolved.
func programPaths(command []string) []string {
	if len(command) == 0 || !filepath.IsAbs(command[0]) {
		return nil
	}
	p, err := filepath.EvalSymlinks(command[0])
	if err != nil {
		return nil
	}
	return []string{p}
}
