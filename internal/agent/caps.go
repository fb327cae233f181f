package agent

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/enforce"
	"github.com/coconut-os/coconut/internal/grant"
	"github.com/coconut-os/coconut/internal/policy"
	"github.com/coconut-os/coconut/internal/state"
)

// grants changes the bundles of running agents: agent_cap_grant and
// agent_cap_revoke (each a row, then the enforcer, then the record), the
// cascade of a revocation through delegation, agent_cap_present, and the
// checks of an agent delegating to the agents it spawns (delegate.go). The
// bookkeeping is internal/grant's and the verdicts internal/policy's; the
// bundles are in the registry's records, changed under each agent's
// transition lock. It owns the lock that orders delegations against
// revocations.
type grants struct {
	m *Manager
	// deleg orders the delegation steps against revocations: a delegated
	// spawn (from its scope check until its children are Active), a grant
	// by an agent (from its scope check until the grant is marked as
	// delegated) and every revoke with its cascade. Without it a revoke of
	// a parent's cap.grant could return while a child was still being
	// given what it covered.
	deleg sync.Mutex
}

// Grant is agent_cap_grant (grants.grant).
func (m *Manager) Grant(ctx context.Context, caller Caller, aid uint64, caps []string) ([]string, error) {
	return m.grants.grant(ctx, caller, aid, caps)
}

// Revoke is agent_cap_revoke (grants.revoke).
func (m *Manager) Revoke(ctx context.Context, caller Caller, aid uint64, caps []string) ([]string, error) {
	return m.grants.revoke(ctx, caller, aid, caps)
}

// Present is agent_cap_present (grants.present).
func (m *Manager) Present(ctx context.Context, caller Caller, aid uint64, capStr, object string) error {
	return m.grants.present(ctx, caller, aid, capStr, object)
}

// CeilingCovers reports whether cap lies within agent aid's ceiling
// (grants.covers).
func (m *Manager) CeilingCovers(caller Caller, aid uint64, cp string) (bool, error) {
	return m.grants.covers(caller, aid, cp)
}

// target checks that caller may change agent aid's bundle and returns
// it with the caps parsed and ~ expanded for the agent's user. A user holds
// cap.grant over the agents they authorized (root over all); an agent may
// delegate only to agents it spawned, within its own cap.grant scopes
// (delegate.go).
func (g *grants) target(caller Caller, aid uint64, verb string, caps []string) (*entry, []capability.Cap, error) {
	m := g.m
	if len(caps) == 0 {
		return nil, nil, api.Errorf(api.ErrInvalid, "%s: no capabilities given", verb)
	}
	parsed, err := capability.ParseAll(caps)
	if err != nil {
		return nil, nil, api.Errorf(api.ErrInvalid, "%v", err)
	}
	var e *entry
	if caller.AID != 0 {
		e, err = g.delegateTarget(caller, aid, verb, parsed)
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

// grant is agent_cap_grant: every capability must lie within the agent's
// ceiling (its kernel floor cannot be widened while it runs), or nothing
// is granted. It takes effect before the call returns.
func (g *grants) grant(ctx context.Context, caller Caller, aid uint64, caps []string) ([]string, error) {
	m := g.m
	if caller.AID != 0 {
		g.deleg.Lock() // delegate.go: the scope check holds until the grant is marked
		defer g.deleg.Unlock()
	}
	e, want, err := g.target(caller, aid, "grant", caps)
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
		return g.adopt(ctx, e, caller, want, current)
	}
	next := append(current, added...)
	if err := g.apply(ctx, e, audit.CapGrant, added, next, caller, ""); err != nil {
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

// adopt is a grant that adds nothing to the bundle. From a user, what it
// names that the agent held only through its parent becomes the agent's
// own (a later revoke of the parent's leaves it), which the chain records
// as a grant with its cause; anything else is a no-op, no row.
func (g *grants) adopt(ctx context.Context, e *entry, caller Caller, want []capability.Cap, current []string) ([]string, error) {
	m := g.m
	if caller.AID != 0 {
		return current, nil
	}
	var own []string
	m.mu.Lock()
	for _, c := range want {
		if _, ok := e.rec.Delegated[c.String()]; ok {
			own = append(own, c.String())
		}
	}
	m.mu.Unlock()
	if len(own) == 0 {
		return current, nil
	}
	if err := g.apply(ctx, e, audit.CapGrant, own, current, caller, "held through its parent's delegation; now the agent's own"); err != nil {
		return nil, err
	}
	m.mu.Lock()
	for _, s := range own {
		delete(e.rec.Delegated, s)
	}
	m.mu.Unlock()
	if err := m.persist(e); err != nil {
		return nil, api.Errorf(api.ErrInternal, "%v", err)
	}
	return current, nil
}

// revoke is agent_cap_revoke: every capability the revoked ones cover is
// removed, effective before the call returns. Network use stops at once
// (cgroup BPF); the seccomp supervisor refuses the next open or exec. A
// descriptor already open under a revoked file scope keeps its access,
// so only then (or when the agent is not supervised) is the agent
// quarantined, and the caller told why: access is never silently left in
// place.
func (g *grants) revoke(ctx context.Context, caller Caller, aid uint64, caps []string) ([]string, error) {
	g.deleg.Lock() // after delegations in flight, before new ones
	defer g.deleg.Unlock()
	e, revoke, err := g.target(caller, aid, "revoke", caps)
	if err != nil {
		return nil, err
	}
	return g.revokeEntry(ctx, e, revoke, caller, "")
}

// revokeEntry removes from e every capability revoke covers, then the
// same from every agent e reached by delegation (delegate.go). cause, if
// set, says why (a cascade) in the row.
func (g *grants) revokeEntry(ctx context.Context, e *entry, revoke []capability.Cap, caller Caller, cause string) ([]string, error) {
	kept, removed, err := g.revokeOne(ctx, e, revoke, caller, cause)
	if len(removed) > 0 {
		if cerr := g.cascade(ctx, e.rec.AID, removed, caller); cerr != nil && err == nil {
			err = cerr
		}
	}
	return kept, err
}

func (g *grants) revokeOne(ctx context.Context, e *entry, revoke []capability.Cap, caller Caller, cause string) (kept, removed []string, err error) {
	m := g.m
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
	if err := g.apply(ctx, e, audit.CapRevoke, removed, kept, caller, cause); err != nil {
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

// apply records the change, hands the new bundle to the enforcer and
// persists it. The row comes first: an unrecorded change does not happen.
// cause, if set, says why (a cascaded revocation) in the row.
func (g *grants) apply(ctx context.Context, e *entry, row capRow, changed, next []string, caller Caller, cause string) error {
	m := g.m
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

// present is agent_cap_present: an application capability (x.vendor.name)
// or inference, presented for an operation the kernel does not see. The
// answer is audited either way; a denial is ECAPABILITY.
func (g *grants) present(ctx context.Context, caller Caller, aid uint64, capStr, object string) error {
	m := g.m
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

// covers reports whether cap lies within agent aid's ceiling, the
// check Grant makes, so a page can offer only grants that can succeed.
// Grant still decides.
func (g *grants) covers(caller Caller, aid uint64, cp string) (bool, error) {
	m := g.m
	ceil, err := m.Ceiling(caller, aid)
	if err != nil {
		return false, err
	}
	want, err := capability.Parse(cp)
	if err != nil {
		return false, err
	}
	m.mu.Lock()
	uid := m.agents[aid].rec.UID
	m.mu.Unlock()
	if id, err := lookupUID(uid); err == nil {
		want = want.Expand(id.Home)
	}
	parsed, err := capability.ParseAll(ceil)
	if err != nil {
		return false, err
	}
	return policy.Within(parsed, want), nil
}

// capRow is the constructor of a change's row: audit.CapGrant or
// audit.CapRevoke.
type capRow func(aid uint64, caps []string, detail map[string]string) audit.Record

// callerDetail is the audit detail naming who made a change: the uid, its
// user name when the system knows it, and the door it came through
// (Caller.Via, e.g. "center") when that is not the Unix API.
func callerDetail(c Caller) map[string]string {
	d := map[string]string{"by_uid": strconv.FormatUint(uint64(c.UID), 10)}
	if id, err := lookupUID(c.UID); err == nil {
		d["by_user"] = id.Name
	}
	if c.AID != 0 {
		d["by_aid"] = strconv.FormatUint(c.AID, 10)
	}
	if c.Via != "" {
		d["via"] = c.Via
	}
	return d
}
