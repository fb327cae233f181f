package agent

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/manifest"
	"github.com/coconut-os/coconut/internal/quota"
	"github.com/coconut-os/coconut/internal/state"
)

// limits turns the recorded budget into cgroup limits. The RAM tier is the
// memory limit: the lower of memoryMax and memory.ram when both are set.
func limits(q manifest.Quota, mem manifest.MemoryTiers) quota.Limits {
	l := quota.Limits{CPUWeight: q.CPUWeight, CPUMax: q.CPUMax, MemoryMax: q.MemoryMax,
		MemoryHigh: q.MemoryHigh, Pids: q.Pids, IOWeight: q.IOWeight}
	if mem.RAM > 0 && (l.MemoryMax == 0 || mem.RAM < l.MemoryMax) {
		l.MemoryMax = mem.RAM
	}
	if l.MemoryMax > 0 && l.MemoryHigh > l.MemoryMax {
		l.MemoryHigh = 0 // a high mark above the max never triggers
	}
	return l
}

// quotaErr maps the quota package's sentinels to wire errors.
func quotaErr(err error) error {
	switch {
	case errors.Is(err, quota.ErrInvalid), errors.Is(err, quota.ErrUnsupported):
		return api.Errorf(api.ErrInvalid, "%v", err)
	case errors.Is(err, quota.ErrOverBudget), errors.Is(err, quota.ErrNoTier):
		return api.Errorf(api.ErrConflict, "%v", err)
	}
	return api.Errorf(api.ErrInternal, "%v", err)
}

// checkQuotas refuses a request whose budgets this host cannot enforce,
// before any agent of it starts.
func (m *Manager) checkQuotas(plans []*plan) error {
	for _, p := range plans {
		if err := m.quota.Check(limits(p.quota, p.memory)); err != nil {
			return quotaErr(fmt.Errorf("agent %s: %w", p.name, err))
		}
		if p.memory.SSD != 0 && (p.memory.SSD < quota.MinScratch || p.memory.SSD > quota.MaxScratch) {
			return api.Errorf(api.ErrInvalid, "agent %s: memory.ssd %d bytes: must be %d..%d", p.name, p.memory.SSD, int64(quota.MinScratch), int64(quota.MaxScratch))
		}
	}
	return nil
}

// quotaGroup is the agent's controller group (not created by this call).
func (m *Manager) quotaGroup(r *record) *quota.Group {
	return m.quota.Group(r.AID, r.CgroupPath)
}

// Quota returns the agent's budget and what its cgroups say it uses.
func (m *Manager) Quota(caller Caller, aid uint64) (*api.Quota, error) {
	e, err := m.lookup(caller, aid)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	r := *e.rec
	m.mu.Unlock()
	q := &api.Quota{AID: aid, Budget: api.QuotaBudget{
		CPUWeight: r.Quota.CPUWeight, CPUMax: r.Quota.CPUMax, MemoryMax: r.Quota.MemoryMax,
		MemoryHigh: r.Quota.MemoryHigh, Pids: r.Quota.Pids, IOWeight: r.Quota.IOWeight,
		Tokens: r.Quota.Tokens, HBM: r.Memory.HBM, RAM: r.Memory.RAM, SSD: r.Memory.SSD,
	}, Usage: api.QuotaUsage{MemoryCurrent: -1, MemoryPeak: -1, Tokens: r.TokensUsed},
		Controllers: string(m.quota.Mode()), Unenforced: m.quota.Unenforced(limits(r.Quota, r.Memory))}
	if !r.State.Terminal() {
		if u, err := m.quotaGroup(&r).Usage(); err == nil {
			q.Usage.CPUUsec, q.Usage.Pids = u.CPUUsec, u.Pids
			q.Usage.MemoryCurrent, q.Usage.MemoryPeak, q.Usage.OOMKills = u.MemoryCurrent, u.MemoryPeak, u.OOMKills
		} else {
			m.log.Warn("read agent usage", "aid", aid, "err", err)
		}
	}
	return q, nil
}

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
	if err := m.quota.Check(limits(nq, r.Memory)); err != nil {
		return nil, quotaErr(err)
	}
	if err := m.audit(ctx, audit.AgentQuota(aid, quotaString(nq), caller.UID, quotaString(r.Quota))); err != nil {
		return nil, err
	}
	g := m.quotaGroup(&r)
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
