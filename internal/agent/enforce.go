package agent

import (
	"context"
	"fmt"
	"strconv"
	"strings"

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
func (m *Manager) bind(rec *record) (*launch.Floor, error) {
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
	floor, err := m.cfg.Enforce.Bind(enforce.Agent{
		AID: rec.AID, CgroupID: rec.CgroupID, Policy: rec.Workload + "/" + rec.Class, Caps: caps, Ceiling: ceiling,
	})
	if err != nil {
		return nil, api.Errorf(api.ErrUnavailable, "enforcer: %v", err)
	}
	m.mu.Lock()
	m.byCgroup[rec.CgroupID] = rec.AID
	m.mu.Unlock()
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
// chainDenies counts the rows, so doctor can show kernel and chain agree.
func (m *Manager) consumeDenies() {
	for ev := range m.cfg.Enforce.Events() {
		m.mu.Lock()
		aid := m.byCgroup[ev.CgroupID]
		e := m.agents[aid]
		m.mu.Unlock()
		detail := map[string]string{"source": ev.Source, "cgroup_id": strconv.FormatUint(ev.CgroupID, 10)}
		if ev.Syscall != "" {
			detail["syscall"] = ev.Syscall
		}
		rec := audit.Record{AID: aid, Type: "cap.deny", Cap: ev.Cap, Object: ev.Object, Result: audit.ResultDeny,
			Errno: ev.Errno, PID: ev.PID, KSeq: ev.Seq, Detail: detail}
		if ev.Allowed {
			// An allowed use the audit policy wants on record (the
			// supervisor's opens and execs): the call waits for it.
			rec.Type, rec.Result, rec.Errno = "cap.use", audit.ResultAllow, 0
		}
		_, err := m.cfg.Chain.Append(context.Background(), rec)
		if ev.Reply != nil {
			ev.Reply <- err // an unrecorded allowed use is refused
		}
		if err != nil {
			if !ev.Allowed {
				m.log.Error("audit chain refused a deny row: kernel and chain counters now differ", "kseq", ev.Seq, "err", err)
			}
			continue
		}
		if ev.Allowed {
			continue
		}
		m.chainDenies.Add(1)
		if e != nil {
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

// Counters reports kernel denies, chain deny rows and ring-buffer losses.
func (m *Manager) Counters() map[string]uint64 {
	out := map[string]uint64{"kernel_denies": 0, "chain_denies": m.chainDenies.Load(), "ringbuf_full": 0}
	if m.cfg.Enforce != nil {
		if c, err := m.cfg.Enforce.Counters(); err == nil {
			out["kernel_denies"], out["ringbuf_full"] = c.KernelDenies, c.RingbufFull
		}
	}
	return out
}
