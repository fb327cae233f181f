package agent

import (
	"context"
	"strconv"
	"strings"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/manifest"
	"github.com/coconut-os/coconut/internal/quota"
	"github.com/coconut-os/coconut/internal/state"
)

// Quota returns the agent's budget and what its cgroups say it uses.
func (m *Manager) Quota(caller Caller, aid uint64) (*api.Quota, error) {
	e, err := m.lookup(caller, aid)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	r := *e.rec
	m.mu.Unlock()
	return m.budget.quota(r), nil
}

// QuotaDefaults is doctor's view of the defaults (budget.doctor).
func (m *Manager) QuotaDefaults() *api.QuotaDefaults { return m.budget.doctor() }

// scratchDir is where the agent's SSD tier is mounted (budget.scratchDir).
func (m *Manager) scratchDir(aid uint64) string { return m.budget.scratchDir(aid) }

// SetQuota is agent_quota's write: the owner or root changes the budget of
// a running agent live. ch is a change (zero keeps, -1 removes). The audit
// row is written before the cgroups change; if the kernel refuses, the
// old limits are put back and the record keeps them.
func (m *Manager) SetQuota(ctx context.Context, caller Caller, aid uint64, ch api.QuotaBudget) (*api.Quota, error) {
	e, err := m.lookup(caller, aid)
	if err != nil {
		return nil, err
	}
	if caller.AID != 0 {
		return nil, api.Errorf(api.ErrDenied, "agent %d may not change budgets (its own included)", caller.AID)
	}
	if ch.HBM != 0 || ch.RAM != 0 || ch.SSD != 0 {
		return nil, api.Errorf(api.ErrInvalid, "hbm, ram, ssd: the memory tiers are fixed at spawn; change memory_max instead")
	}
	if ch.Tokens < -1 {
		return nil, api.Errorf(api.ErrInvalid, "tokens %d: use -1 to remove the limit", ch.Tokens)
	}
	e.trans.Lock()
	defer e.trans.Unlock()
	m.mu.Lock()
	r := *e.rec
	m.mu.Unlock()
	if !r.State.Running() && r.State != state.Quarantined {
		return nil, api.Errorf(api.ErrConflict, "agent %d is %s: its budget can no longer change", aid, r.State)
	}
	cur := quota.Limits{CPUWeight: r.Quota.CPUWeight, CPUMax: r.Quota.CPUMax, MemoryMax: r.Quota.MemoryMax,
		MemoryHigh: r.Quota.MemoryHigh, Pids: r.Quota.Pids, IOWeight: r.Quota.IOWeight}
	next, err := cur.Merge(quota.Limits{CPUWeight: ch.CPUWeight, CPUMax: ch.CPUMax, MemoryMax: ch.MemoryMax,
		MemoryHigh: ch.MemoryHigh, Pids: ch.Pids, IOWeight: ch.IOWeight})
	if err != nil {
		return nil, quotaErr(err)
	}
	nq := r.Quota
	nq.CPUWeight, nq.CPUMax, nq.MemoryMax, nq.MemoryHigh, nq.Pids, nq.IOWeight =
		next.CPUWeight, next.CPUMax, next.MemoryMax, next.MemoryHigh, next.Pids, next.IOWeight
	switch {
	case ch.Tokens == -1:
		nq.Tokens = 0
	case ch.Tokens > 0:
		nq.Tokens = ch.Tokens
	}
	if err := m.budget.ctl.Check(limits(nq, r.Memory)); err != nil {
		return nil, quotaErr(err)
	}
	if err := m.audit(ctx, audit.AgentQuota(aid, quotaString(nq), caller.UID, quotaString(r.Quota))); err != nil {
		return nil, err
	}
	g := m.budget.group(&r)
	if err := g.Apply(limits(nq, r.Memory)); err != nil {
		if rerr := g.Apply(limits(r.Quota, r.Memory)); rerr != nil {
			m.log.Error("restore agent limits", "aid", aid, "err", rerr)
		}
		return nil, api.Errorf(api.ErrInvalid, "agent %d: the kernel refused the new limits (%v); the old ones stay", aid, err)
	}
	m.mu.Lock()
	e.rec.Quota = nq
	m.mu.Unlock()
	if err := m.persist(e); err != nil {
		m.log.Error("persist agent quota", "aid", aid, "err", err)
	}
	return m.Quota(caller, aid)
}

// MemoryTier is agent_memory_tier. Reading (tier "") is open to whoever
// may see the agent; allocating to the agent itself, its owner and root.
func (m *Manager) MemoryTier(ctx context.Context, caller Caller, aid uint64, req api.MemoryRequest) (*api.Memory, error) {
	e, err := m.lookup(caller, aid)
	if err != nil {
		return nil, err
	}
	if req.Tier == "" {
		if req.Alloc != 0 {
			return nil, api.Errorf(api.ErrInvalid, "alloc %d: name the tier (hbm, ram or ssd)", req.Alloc)
		}
		m.mu.Lock()
		r := *e.rec
		m.mu.Unlock()
		return m.budget.memory(r), nil
	}
	tier, err := quota.ParseTier(req.Tier)
	if err != nil {
		return nil, quotaErr(err)
	}
	if req.Alloc == 0 {
		return nil, api.Errorf(api.ErrInvalid, "alloc: must be non-zero with a tier (negative frees hbm)")
	}
	if req.Alloc < 0 && tier != quota.HBM {
		return nil, api.Errorf(api.ErrInvalid, "alloc %d: only hbm is freed through coconut; the kernel frees %s", req.Alloc, tier)
	}
	e.trans.Lock()
	defer e.trans.Unlock()
	m.mu.Lock()
	r := *e.rec
	m.mu.Unlock()
	if r.State.Terminal() {
		return nil, api.Errorf(api.ErrConflict, "agent %d is %s", aid, r.State)
	}
	cur := m.budget.memory(r)
	t := map[quota.Tier]api.MemoryTier{quota.HBM: cur.HBM, quota.RAM: cur.RAM, quota.SSD: cur.SSD}[tier]
	used, err := quota.Reserve(tier, t.Used, t.Limit, req.Alloc)
	detail := map[string]string{"tier": string(tier), "alloc": strconv.FormatInt(req.Alloc, 10),
		"used": strconv.FormatInt(t.Used, 10), "limit": strconv.FormatInt(t.Limit, 10)}
	if err != nil {
		detail["reason"] = err.Error()
		if aerr := m.audit(ctx, audit.AgentMemory(aid, string(tier), false, detail)); aerr != nil {
			return nil, aerr
		}
		return nil, quotaErr(err)
	}
	if tier != quota.HBM {
		// RAM and SSD are allocated by the kernel as the agent touches
		// them: the answer says the amount fits now, nothing is held.
		return cur, nil
	}
	if err := m.audit(ctx, audit.AgentMemory(aid, string(tier), true, detail)); err != nil {
		return nil, err
	}
	m.mu.Lock()
	e.rec.HBMUsed = used
	m.mu.Unlock()
	if err := m.persist(e); err != nil {
		return nil, api.Errorf(api.ErrInternal, "%v", err)
	}
	cur.HBM.Used = used
	return cur, nil
}

// quotaString is the audit row's compact form of a budget.
func quotaString(q manifest.Quota) string {
	var parts []string
	add := func(k string, v int64) {
		if v != 0 {
			parts = append(parts, k+"="+strconv.FormatInt(v, 10))
		}
	}
	add("cpu_weight", int64(q.CPUWeight))
	if q.CPUMax != "" {
		parts = append(parts, "cpu_max="+strings.ReplaceAll(q.CPUMax, " ", "/"))
	}
	add("memory_max", q.MemoryMax)
	add("memory_high", q.MemoryHigh)
	add("pids", int64(q.Pids))
	add("io_weight", int64(q.IOWeight))
	add("tokens", q.Tokens)
	if len(parts) == 0 {
		return "unlimited"
	}
	return strings.Join(parts, " ")
}

// runQuota is `agent run`'s budget, checked like a manifest's: no negative
// value but -1 in pids and memory_max (no limit, asked for explicitly:
// manifest.Unlimited; -1 means "remove" only in a change), cpu_max in
// cpu.max syntax. Unset fields take the defaults in planRun.
func runQuota(b *api.QuotaBudget) (manifest.Quota, manifest.MemoryTiers, error) {
	if b == nil {
		return manifest.Quota{}, manifest.MemoryTiers{}, nil
	}
	for _, f := range []struct {
		name string
		v    int64
		max  bool // -1 is `max`
	}{{"cpu_weight", int64(b.CPUWeight), false}, {"memory_max", b.MemoryMax, true}, {"memory_high", b.MemoryHigh, false},
		{"pids", int64(b.Pids), true}, {"io_weight", int64(b.IOWeight), false}, {"tokens", b.Tokens, false},
		{"hbm", b.HBM, false}, {"ram", b.RAM, false}, {"ssd", b.SSD, false}} {
		if f.v < 0 && !(f.max && f.v == manifest.Unlimited) {
			hint := ""
			if f.max {
				hint = " (-1: no limit)"
			}
			return manifest.Quota{}, manifest.MemoryTiers{}, api.Errorf(api.ErrInvalid, "quota.%s %d: must not be negative at spawn%s", f.name, f.v, hint)
		}
	}
	q := manifest.Quota{CPUWeight: b.CPUWeight, CPUMax: strings.TrimSpace(b.CPUMax), MemoryMax: b.MemoryMax,
		MemoryHigh: b.MemoryHigh, Pids: b.Pids, IOWeight: b.IOWeight, Tokens: b.Tokens}
	check := q
	check.MemoryMax, check.Pids = max(check.MemoryMax, 0), max(check.Pids, 0)
	if err := limits(check, manifest.MemoryTiers{}).Validate(); err != nil {
		return manifest.Quota{}, manifest.MemoryTiers{}, quotaErr(err)
	}
	return q, manifest.MemoryTiers{HBM: b.HBM, RAM: b.RAM, SSD: b.SSD}, nil
}
