package agent

import (
	"context"
	"path/filepath"
	"strconv"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/quota"
)

// scratchDir is where the agent's SSD tier is mounted. The state dir is
// world-traversable (0755) and scratch/ is 0711, so the agent reaches its
// own mount (0700, its user's) and cannot list the others.
func (m *Manager) scratchDir(aid uint64) string {
	return filepath.Join(m.cfg.StateDir, "scratch", strconv.FormatUint(aid, 10))
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
		return m.memory(e)
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
	cur, err := m.memory(e)
	if err != nil {
		return nil, err
	}
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

// memory reads used and limit of every tier.
func (m *Manager) memory(e *entry) (*api.Memory, error) {
	m.mu.Lock()
	r := *e.rec
	m.mu.Unlock()
	out := &api.Memory{AID: r.AID, HBM: api.MemoryTier{Used: r.HBMUsed, Limit: r.Memory.HBM}}
	out.RAM.Limit = limits(r.Quota, r.Memory).MemoryMax
	if !r.State.Terminal() {
		if u, err := m.quotaGroup(&r).Usage(); err == nil && u.MemoryCurrent >= 0 {
			out.RAM.Used = u.MemoryCurrent
		}
	}
	if r.Memory.SSD > 0 {
		out.SSD = api.MemoryTier{Limit: r.Memory.SSD}
		if !r.State.Terminal() {
			dir := m.scratchDir(r.AID)
			out.SSD.Path = dir
			if used, size, err := quota.ScratchUsage(dir); err == nil {
				out.SSD.Used, out.SSD.Limit = used, size
			}
		}
	}
	return out, nil
}
