package agent

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/enforce"
	"github.com/coconut-os/coconut/internal/grant"
	"github.com/coconut-os/coconut/internal/policy"
	"github.com/coconut-os/coconut/internal/state"
)

// capTarget checks that caller may change agent aid's bundle and returns
// it with the caps parsed and ~ expanded for the agent's user. A user holds
// cap.grant over the agents they authorized (root over all); an agent may
// delegate only to agents it spawned, within its own cap.grant scopes
// (delegate.go).
func (m *Manager) capTarget(caller Caller, aid uint64, verb string, caps []string) (*entry, []capability.Cap, error) {
	if len(caps) == 0 {
		return nil, nil, api.Errorf(api.ErrInvalid, "%s: no capabilities given", verb)
	}
	parsed, err := capability.ParseAll(caps)
	if err != nil {
		return nil, nil, api.Errorf(api.ErrInvalid, "%v", err)
	}
	var e *entry
	if caller.AID != 0 {
		e, err = m.delegateTarget(caller, aid, verb, parsed)
	} else {
		e, err = m.lookup(caller, aid)
	}
	if err != nil {
		return nil, nil, err
	}
	m.mu.Lock()
	uid := e.rec.UID
	st := e.rec.State
	m.mu.Unlock()
	if !st.Running() && st != state.Quarantined {
		return nil, nil, api.Errorf(api.ErrConflict, "agent %d is %s", aid, st)
	}
	home := ""
	if id, err := lookupUID(uid); err == nil {
		home = id.Home
	}
	for i := range parsed {
		parsed[i] = parsed[i].Expand(home)
	}
	return e, parsed, nil
}

// Grant is agent_cap_grant: every capability must lie within the agent's
// ceiling (its kernel floor cannot be widened while it runs), or nothing
// is granted. It takes effect before the call returns.
func (m *Manager) Grant(ctx context.Context, caller Caller, aid uint64, caps []string) ([]string, error) {
	if caller.AID != 0 {
		m.deleg.Lock() // delegate.go: the scope check holds until the grant is marked
		defer m.deleg.Unlock()
	}
	e, want, err := m.capTarget(caller, aid, "grant", caps)
	if err != nil {
		return nil, err
	}
	e.trans.Lock()
	defer e.trans.Unlock()
	m.mu.Lock()
	ceilingS, current := e.rec.Ceiling, append([]string{}, e.rec.Caps...)
	m.mu.Unlock()
	if ceilingS == nil {
		ceilingS = current
	}
	ceiling, err := capability.ParseAll(ceilingS)
	if err != nil {
		return nil, api.Errorf(api.ErrInternal, "agent %d ceiling: %v", aid, err)
	}
	added, beyond := grant.Add(ceiling, current, want)
	if beyond != nil {
		return nil, api.Errorf(api.ErrConflict, "%s is beyond agent %d's ceiling: a running agent's kernel floor cannot be widened; respawn it from a manifest whose ceiling includes it (nothing was granted)", *beyond, aid)
	}
	if len(added) == 0 {
		return current, nil
	}
	next := append(current, added...)
	if err := m.applyCaps(ctx, e, audit.CapGrant, added, next, caller); err != nil {
		return nil, err
	}
	// Remember where each capability came from: from an agent, it is
	// revoked with that agent's; from a user, it is the child's own.
	m.mu.Lock()
	for _, c := range want {
		s := c.String()
		if caller.AID != 0 && slices.Contains(added, s) {
			if e.rec.Delegated == nil {
				e.rec.Delegated = map[string]uint64{}
			}
			e.rec.Delegated[s] = caller.AID
		} else if caller.AID == 0 {
			delete(e.rec.Delegated, s)
		}
	}
	m.mu.Unlock()
	if err := m.persist(e); err != nil {
		return nil, api.Errorf(api.ErrInternal, "%v", err)
	}
	return next, nil
}

// Revoke is agent_cap_revoke: every capability the revoked ones cover is
// removed, effective before the call returns. Network use stops at once
// (cgroup BPF); the seccomp supervisor refuses the next open or exec. A
// descriptor already open under a revoked file scope keeps its access,
// so only then (or when the agent is not supervised) is the agent
// quarantined, and the caller told why: access is never silently left in
// place.
func (m *Manager) Revoke(ctx context.Context, caller Caller, aid uint64, caps []string) ([]string, error) {
	m.deleg.Lock() // after delegations in flight, before new ones
	defer m.deleg.Unlock()
	e, revoke, err := m.capTarget(caller, aid, "revoke", caps)
	if err != nil {
		return nil, err
	}
	return m.revokeEntry(ctx, e, revoke, caller, "")
}

// revokeEntry removes from e every capability revoke covers, then the
// same from every agent e reached by delegation (delegate.go). cause, if
// set, says why (a cascade) in the row.
func (m *Manager) revokeEntry(ctx context.Context, e *entry, revoke []capability.Cap, caller Caller, cause string) ([]string, error) {
	kept, removed, err := m.revokeOne(ctx, e, revoke, caller, cause)
	if len(removed) > 0 {
		if cerr := m.cascadeRevoke(ctx, e.rec.AID, removed, caller); cerr != nil && err == nil {
			err = cerr
		}
	}
	return kept, err
}

func (m *Manager) revokeOne(ctx context.Context, e *entry, revoke []capability.Cap, caller Caller, cause string) (kept, removed []string, err error) {
	e.trans.Lock()
	defer e.trans.Unlock()
	aid := e.rec.AID
	caps := make([]string, len(revoke))
	for i, c := range revoke {
		caps[i] = c.String()
	}
	m.mu.Lock()
	current := append([]string{}, e.rec.Caps...)
	m.mu.Unlock()
	kept, removed = grant.Split(current, revoke)
	if len(removed) == 0 {
		return nil, nil, api.Errorf(api.ErrNotFound, "agent %d holds nothing that %s covers", aid, strings.Join(caps, " "))
	}
	if err := m.applyCapsWhy(ctx, e, audit.CapRevoke, removed, kept, caller, cause); err != nil {
		return nil, nil, err
	}
	m.mu.Lock()
	for _, s := range removed {
		delete(e.rec.Delegated, s)
	}
	m.mu.Unlock()
	if err := m.persist(e); err != nil {
		m.log.Error("persist revoked delegation", "aid", aid, "err", err)
	}
	if slices.ContainsFunc(removed, func(s string) bool { return strings.HasPrefix(s, "fs.") }) {
		m.mu.Lock()
		path, static := e.rec.CgroupPath, e.rec.Static
		m.mu.Unlock()
		reason := m.sup.openUnderRevoked(aid, path, static, removed)
		if reason == "" {
			return kept, removed, nil // the supervisor refuses the next open; nothing is open under it
		}
		if err := m.quarantineLocked(ctx, e, reason); err != nil {
			return nil, removed, err
		}
		return kept, removed, api.Errorf(api.ErrConflict, "agent %d: %s", aid, reason)
	}
	return kept, removed, nil
}

// applyCaps records the change, hands the new bundle to the enforcer and
// persists it. The row comes first: an unrecorded change does not happen.
func (m *Manager) applyCaps(ctx context.Context, e *entry, row capRow, changed, next []string, caller Caller) error {
	return m.applyCapsWhy(ctx, e, row, changed, next, caller, "")
}

// capRow is the constructor of a change's row: audit.CapGrant or
// audit.CapRevoke.
type capRow func(aid uint64, caps []string, detail map[string]string) audit.Record

// applyCapsWhy is applyCaps with the cause of a cascaded revocation.
func (m *Manager) applyCapsWhy(ctx context.Context, e *entry, row capRow, changed, next []string, caller Caller, cause string) error {
	m.mu.Lock()
	rec := *e.rec
	m.mu.Unlock()
	detail := delegationDetail(caller, map[string]string{"by_uid": strconv.FormatUint(uint64(caller.UID), 10)})
	if cause != "" {
		detail["cause"] = cause
	}
	decided := row(rec.AID, changed, detail)
	if err := m.audit(ctx, decided); err != nil {
		return err
	}
	caps, err := capability.ParseAll(next)
	if err != nil {
		return api.Errorf(api.ErrInternal, "%v", err)
	}
	if m.cfg.Enforce != nil {
		if err := m.cfg.Enforce.Update(enforce.Agent{AID: rec.AID, CgroupID: rec.CgroupID,
			Policy: rec.Workload + "/" + rec.Class, Caps: m.implicitCaps(caps), Audit: rec.Audit}); err != nil {
			// The row above recorded the change as decided; the chain must
			// also say it did not take effect. (The refusal is returned
			// even if this row cannot be written: nothing changed.)
			m.audit(ctx, audit.NotApplied(decided, err.Error()))
			if errors.Is(err, enforce.ErrBeyondCeiling) {
				return api.Errorf(api.ErrConflict, "%v (nothing was granted)", err)
			}
			return api.Errorf(api.ErrUnavailable, "enforcer: %v", err)
		}
	}
	m.mu.Lock()
	e.rec.Caps = next
	m.mu.Unlock()
	return m.persist(e)
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

// Present is agent_cap_present: an application capability (x.vendor.name)
// or inference, presented for an operation the kernel does not see. The
// answer is audited either way; a denial is ECAPABILITY.
func (m *Manager) Present(ctx context.Context, caller Caller, aid uint64, capStr, object string) error {
	e, err := m.lookup(caller, aid)
	if err != nil {
		return err
	}
	c, err := capability.Parse(capStr)
	if err != nil {
		return api.Errorf(api.ErrInvalid, "%v", err)
	}
	if c.KernelEnforced() {
		return api.Errorf(api.ErrInvalid, "%s is enforced by the kernel; present is for application capabilities (x.vendor.name) and inference", c.Name())
	}
	if len(object) > 4096 {
		return api.Errorf(api.ErrInvalid, "object: over 4096 bytes")
	}
	m.mu.Lock()
	held := append([]string{}, e.rec.Caps...)
	m.mu.Unlock()
	allowed := policy.Decide(policy.Bundle{Caps: grant.Parse(held)}, policy.Present{Cap: c}).Allow
	errno := 0
	if !allowed {
		errno = int(api.ECapability)
	}
	if err := m.audit(ctx, audit.CapPresent(aid, c.String(), object, errno, caller.PID)); err != nil {
		return err
	}
	if !allowed {
		return api.Errorf(api.ErrECapability, "agent %d does not hold %s", aid, c)
	}
	return nil
}
