package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/state"
)

// freezeWait bounds how long a freeze or thaw may take to settle: the
// kernel stops tasks at their next return to user space.
const freezeWait = 5 * time.Second

// Quarantine freezes a running agent through its unified cgroup.freeze:
// it uses no CPU and keeps its memory until Release. The state change
// (audit row first) comes before the freeze; if the freeze fails the agent
// is moved back to Active, recorded as such, and the error returned.
func (m *Manager) Quarantine(ctx context.Context, caller Caller, aid uint64) (*api.Agent, error) {
	return m.freeze(ctx, caller, aid, true)
}

// Release thaws a quarantined agent: Quarantined → Active, then thaw.
func (m *Manager) Release(ctx context.Context, caller Caller, aid uint64) (*api.Agent, error) {
	return m.freeze(ctx, caller, aid, false)
}

func (m *Manager) freeze(ctx context.Context, caller Caller, aid uint64, on bool) (*api.Agent, error) {
	e, err := m.lookup(caller, aid)
	if err != nil {
		return nil, err
	}
	verb := map[bool]string{true: "quarantine", false: "release"}[on]
	if caller.AID != 0 {
		return nil, api.Errorf(api.ErrDenied, "agent %d may not %s agents", caller.AID, verb)
	}
	e.trans.Lock()
	defer e.trans.Unlock()
	m.mu.Lock()
	from, path := e.rec.State, e.rec.CgroupPath
	m.mu.Unlock()
	to := state.Active
	if on {
		to = state.Quarantined
	}
	reason := fmt.Sprintf("%s by uid %d", verb, caller.UID)
	if err := m.transitionWith(ctx, e, to, reason, callerDetail(caller), nil); err != nil {
		return nil, err
	}
	if ferr := m.cfg.Cgroups.Freeze(path, on); ferr != nil {
		// Put the record back where the kernel is.
		if err := m.transition(ctx, e, from, fmt.Sprintf("%s failed: %v", verb, ferr), nil); err != nil {
			m.log.Error("record failed "+verb, "aid", aid, "err", err)
		}
		return nil, api.Errorf(api.ErrInternal, "agent %d: %s: %v", aid, verb, ferr)
	}
	return m.Get(caller, aid)
}

// quarantineLocked freezes the agent for the daemon's own reasons. The
// caller holds e.trans.
func (m *Manager) quarantineLocked(ctx context.Context, e *entry, reason string) error {
	m.mu.Lock()
	st, path := e.rec.State, e.rec.CgroupPath
	m.mu.Unlock()
	if st == state.Quarantined {
		return nil
	}
	if err := m.transition(ctx, e, state.Quarantined, reason, nil); err != nil {
		return err
	}
	if err := m.cfg.Cgroups.Freeze(path, true); err != nil {
		// Could not freeze: end it rather than leave access in place.
		m.endLocked(e, state.TerminatedRevoked, reason+"; freezing failed: "+err.Error(), nil)
		return api.Errorf(api.ErrInternal, "agent %d could not be frozen and was ended: %v", e.rec.AID, err)
	}
	return nil
}
