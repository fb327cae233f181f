package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/state"
	"github.com/coconut-os/coconut/internal/storm"
)

// Deny storms (issue 19.2). The deny consumer counts each agent's denies
// (not its rows: an aggregate row counts many) in a storm.Detector; when
// one passes the agent's on_deny_storm rate, the action runs apart from
// the consumer (it must never wait on a freeze): one agent.deny_storm
// row (audit.DenyStorm) saying why, then
//   - throttle: the agent's cgroup is frozen for storm.Pause, then thawed
//     unless it was quarantined meanwhile; again as soon as it passes the
//     rate again;
//   - quarantine: Quarantined (its agent.state row names the storm), frozen
//     until a person releases it;
//   - kill: Terminated-revoked, its cgroup killed.
//
// The row comes first: if it cannot be written nothing is done (and the
// error logged), as for every operation here.
type stormWatch struct {
	det  map[uint64]*storm.Detector // the consumer's own
	busy sync.Map                   // aid -> struct{}: an action is running
}

// stormPolicyLocked is e's policy with the host's default in what it
// leaves unset. The caller holds m.mu.
func (m *Manager) stormPolicyLocked(e *entry) storm.Policy {
	return e.rec.Storm.Or(m.cfg.StormDefault.Or(storm.Default))
}

// StormDefault is the on_deny_storm of an agent that names none.
func (m *Manager) StormDefault() string { return m.cfg.StormDefault.Or(storm.Default).String() }

// countStorm counts one deny of e's agent, made at now; from the consumer
// (recordEvents), which holds m.mu.
func (m *Manager) countStorm(aid uint64, e *entry, now time.Time) {
	if e == nil {
		return
	}
	w := &m.storm
	if w.det == nil {
		w.det = map[uint64]*storm.Detector{}
	}
	d := w.det[aid]
	if d == nil {
		d = &storm.Detector{}
		w.det[aid] = d
	}
	p := m.stormPolicyLocked(e)
	s, ok := d.Add(1, now, p)
	if !ok {
		return
	}
	if _, running := w.busy.LoadOrStore(aid, struct{}{}); running {
		return // the last action is still running: this storm is its
	}
	go func() {
		defer w.busy.Delete(aid)
		if err := m.actOnStorm(e, p, s); err != nil {
			m.log.Error("deny storm", "aid", aid, "action", p.Action, "err", err)
		}
	}()
}

// actOnStorm records the storm and does p's action.
func (m *Manager) actOnStorm(e *entry, p storm.Policy, s storm.Storm) error {
	ctx := context.Background()
	e.trans.Lock()
	m.mu.Lock()
	aid, pid, st, path := e.rec.AID, e.rec.PID, e.rec.State, e.rec.CgroupPath
	m.mu.Unlock()
	if st.Terminal() || st == state.Quarantined {
		e.trans.Unlock()
		return nil // stopped already
	}
	why := fmt.Sprintf("deny storm: %d denies in %v, above %d a second (on_deny_storm %s)", s.Denies, s.Over.Round(time.Millisecond), p.Rate, p.Action)
	if err := m.audit(ctx, audit.DenyStorm(aid, string(p.Action), pid, s.Denies, s.Over, p.Rate, p.Window, nil)); err != nil {
		e.trans.Unlock()
		return err
	}
	switch p.Action {
	case storm.Quarantine:
		defer e.trans.Unlock()
		if err := m.transition(ctx, e, state.Quarantined, why, nil); err != nil {
			return err
		}
		if err := m.cfg.Cgroups.Freeze(path, true); err != nil {
			if terr := m.transition(ctx, e, st, fmt.Sprintf("quarantine failed: %v", err), nil); terr != nil {
				m.log.Error("record failed quarantine", "aid", aid, "err", terr)
			}
			return fmt.Errorf("quarantine: %w", err)
		}
		return nil
	case storm.Kill:
		if err := m.transition(ctx, e, state.TerminatedRevoked, why, nil); err != nil {
			e.trans.Unlock()
			return err
		}
		e.trans.Unlock()
		m.killGroup(e)
		return nil
	case storm.Throttle:
		err := m.cfg.Cgroups.Freeze(path, true)
		e.trans.Unlock()
		if err != nil {
			return fmt.Errorf("throttle: %w", err)
		}
		time.Sleep(storm.Pause)
		e.trans.Lock()
		defer e.trans.Unlock()
		m.mu.Lock()
		st = e.rec.State
		m.mu.Unlock()
		if st == state.Quarantined || st.Terminal() {
			return nil // a person quarantined it meanwhile, or it ended: leave it so
		}
		return m.cfg.Cgroups.Freeze(path, false)
	}
	return nil
}
