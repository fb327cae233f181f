package agent

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/grant"
	"github.com/coconut-os/coconut/internal/policy"
	"github.com/coconut-os/coconut/internal/state"
)

// Delegation (issue 3, item 6; the bookkeeping is internal/grant's). An agent that holds cap.grant:SCOPE may
// spawn agents over the API (the daemon knows it is an agent from its
// cgroup) and grant them, at spawn or later, capabilities within SCOPE;
// all or nothing. Its children run as its own user, are owned by the user
// who authorized it, and record it as their parent. Every capability a
// child holds by delegation remembers who granted it (record.Delegated),
// and revoking a capability from an agent revokes what it reached by
// delegation from every agent downstream, each with its own row.

// spawnCaller turns an agent calling agent_spawn into the caller its
// children are planned for: the user who authorized the agent, asking
// for the agent's own user. A user's call is returned unchanged with no
// parent.
func (g *grants) spawnCaller(caller Caller) (Caller, *entry, error) {
	m := g.m
	if caller.AID == 0 {
		return caller, nil, nil
	}
	m.mu.Lock()
	parent := m.agents[caller.AID]
	var st string
	var owner uint32
	if parent != nil {
		st, owner = string(parent.rec.State), parent.rec.Owner
	}
	m.mu.Unlock()
	if parent == nil || !parent.rec.State.Running() {
		return Caller{}, nil, api.Errorf(api.ErrDenied, "agent %d may not spawn agents: it is %s", caller.AID, st)
	}
	if len(g.scopes(parent)) == 0 {
		return Caller{}, nil, api.Errorf(api.ErrDenied, "agent %d may not spawn agents: it holds no cap.grant", caller.AID)
	}
	return Caller{UID: owner, PID: caller.PID}, parent, nil
}

// scopes returns what the agent may delegate: the scopes of its
// cap.grant capabilities (grant.Scopes).
func (g *grants) scopes(e *entry) []capability.Cap {
	m := g.m
	m.mu.Lock()
	held := append([]string{}, e.rec.Caps...)
	m.mu.Unlock()
	return grant.Scopes(held)
}

// delegatePlans checks the plans an agent asked for: each child runs as
// the parent's user, and its bundle and ceiling lie within the parent's
// cap.grant scopes. A child with no declared ceiling may later be granted
// anything the parent may delegate (its floor is built from that). The
// whole request is refused if one plan is not within scope.
func (g *grants) delegatePlans(parent *entry, plans []*plan) error {
	m := g.m
	if parent == nil {
		return nil
	}
	scopes := g.scopes(parent)
	m.mu.Lock()
	paid, puid := parent.rec.AID, parent.rec.UID
	m.mu.Unlock()
	for _, p := range plans {
		if p.user.UID != puid {
			return api.Errorf(api.ErrDenied, "agent %d may only spawn agents that run as its own user, not %s (nothing was spawned)", paid, p.user.Name)
		}
		if c := grant.Beyond(scopes, p.caps); c != "" {
			return api.Errorf(api.ErrDenied, "agent %d may not delegate %s: beyond its cap.grant (nothing was spawned)", paid, c)
		}
		if c := grant.Beyond(scopes, p.ceiling); c != "" {
			return api.Errorf(api.ErrDenied, "agent %d may not delegate %s (ceiling): beyond its cap.grant (nothing was spawned)", paid, c)
		}
		if p.ceiling == nil {
			p.ceiling = grant.ChildCeiling(p.caps, scopes)
		}
		p.parent = paid
		p.delegated = map[string]uint64{}
		for _, c := range p.caps {
			p.delegated[c] = paid
		}
	}
	return nil
}

// delegateTarget checks that agent caller may change agent aid's bundle:
// aid is its child and every capability lies within its cap.grant.
func (g *grants) delegateTarget(caller Caller, aid uint64, verb string, caps []capability.Cap) (*entry, error) {
	m := g.m
	m.mu.Lock()
	e := m.agents[aid]
	self := m.agents[caller.AID]
	m.mu.Unlock()
	if e == nil || self == nil || e.rec.Parent != caller.AID {
		return nil, api.Errorf(api.ErrDenied, "agent %d may not %s capabilities of agent %d: it did not spawn it", caller.AID, verb, aid)
	}
	scopes := g.scopes(self)
	for _, c := range caps {
		if !policy.Within(scopes, c) {
			return nil, api.Errorf(api.ErrDenied, "agent %d may not %s %s: beyond its cap.grant (nothing was changed)", caller.AID, verb, c)
		}
	}
	return e, nil
}

// cascade revokes from every agent that agent from delegated to
// what the removed capabilities reached, then from theirs. Each agent
// gets its own cap.revoke row naming the cause. It returns the first
// error; the walk goes on past it (more revoked, never less).
func (g *grants) cascade(ctx context.Context, from uint64, removed []string, caller Caller) error {
	m := g.m
	rm, err := capability.ParseAll(removed)
	if err != nil {
		return api.Errorf(api.ErrInternal, "%v", err)
	}
	m.mu.Lock()
	var children []*entry
	for _, e := range m.agents {
		if st := e.rec.State; e.rec.Parent == from && (st.Running() || st == state.Quarantined) {
			children = append(children, e)
		}
	}
	m.mu.Unlock()
	var first error
	for _, child := range children {
		m.mu.Lock()
		lose := grant.Lost(child.rec.Caps, child.rec.Delegated, from, rm)
		aid := child.rec.AID
		m.mu.Unlock()
		if len(lose) == 0 {
			continue
		}
		cause := fmt.Sprintf("delegated by agent %d, which lost %s", from, strings.Join(removed, " "))
		_, err := g.revokeEntry(ctx, child, lose, caller, cause)
		if err != nil && first == nil {
			first = fmt.Errorf("agent %d: %w", aid, err)
		}
	}
	return first
}

// delegationDetail is the audit detail of a change made by an agent.
func delegationDetail(caller Caller, d map[string]string) map[string]string {
	if caller.AID != 0 {
		d["by_aid"] = strconv.FormatUint(caller.AID, 10)
	}
	if caller.Via != "" {
		d["via"] = caller.Via
	}
	return d
}
