package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/config"
	"github.com/coconut-os/coconut/internal/manifest"
	"github.com/coconut-os/coconut/internal/quota"
	"github.com/coconut-os/coconut/internal/state"
)

// budget is the agents' resource budgets on this host (issue 5): it owns
// the quota controller (cgroup limits and usage, the OOM watch, the CPU
// governor), the directory the SSD tiers are mounted under, and the
// host's defaults for what an agent leaves unset (coconut.toml
// [quota.defaults], Config.QuotaDefaults). It works on records the
// manager hands it and never on the registry: the manager decides which
// agents, when, and what a change is recorded as.
type budget struct {
	ctl      *quota.Controller
	scratch  string // STATE/scratch: one mount per agent with an SSD tier
	defaults config.Defaults
	log      *slog.Logger
}

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

// group is the agent's controller group (not created by this call).
func (b *budget) group(r *record) *quota.Group {
	return b.ctl.Group(r.AID, r.CgroupPath)
}

// scratchDir is where the agent's SSD tier is mounted. The state dir is
// world-traversable (0755) and scratch/ is 0711, so the agent reaches its
// own mount (0700, its user's) and cannot list the others.
func (b *budget) scratchDir(aid uint64) string {
	return filepath.Join(b.scratch, strconv.FormatUint(aid, 10))
}

// check refuses a request whose budgets this host cannot enforce, before
// any agent of it starts.
func (b *budget) check(plans []*plan) error {
	for _, p := range plans {
		if err := b.ctl.Check(limits(p.quota, p.memory)); err != nil {
			return quotaErr(fmt.Errorf("agent %s: %w", p.name, err))
		}
		if p.memory.SSD != 0 && (p.memory.SSD < quota.MinScratch || p.memory.SSD > quota.MaxScratch) {
			return api.Errorf(api.ErrInvalid, "agent %s: memory.ssd %d bytes: must be %d..%d", p.name, p.memory.SSD, int64(quota.MinScratch), int64(quota.MaxScratch))
		}
	}
	return nil
}

// prepare applies the agent's limits and makes its SSD scratch area,
// before its first process exists.
func (b *budget) prepare(r *record) error {
	if err := b.group(r).Apply(limits(r.Quota, r.Memory)); err != nil {
		return quotaErr(fmt.Errorf("agent %s: %w", r.Name, err))
	}
	if r.Memory.SSD > 0 {
		if err := quota.CreateScratch(b.scratchDir(r.AID), r.Memory.SSD, r.UID, r.GID); err != nil {
			return quotaErr(fmt.Errorf("agent %s: ssd tier: %w", r.Name, err))
		}
	}
	return nil
}

// release removes what the quota controller made for the agent: its v1
// groups and its SSD scratch area. It runs once the cgroup is empty.
func (b *budget) release(r record) {
	if err := b.group(&r).Remove(); err != nil {
		b.log.Warn("remove agent quota groups", "aid", r.AID, "err", err)
	}
	if r.Memory.SSD > 0 {
		if err := quota.RemoveScratch(b.scratchDir(r.AID)); err != nil {
			b.log.Warn("remove agent scratch", "aid", r.AID, "err", err)
		}
	}
}

// oomReason says why the agent must end if the kernel OOM-killed anything
// inside its cgroup, or "" if it did not (quota.OOMReason).
func (b *budget) oomReason(r record) string {
	return quota.OOMReason(b.group(&r), limits(r.Quota, r.Memory))
}

// watchOOM ends (end: Terminated-revoked, with the reason) every agent the
// kernel OOM-killed a process of (quota.Controller.WatchOOM), among the
// agents not ended that agents lists. Only that agent's cgroup is touched.
func (b *budget) watchOOM(stop <-chan struct{}, agents func(keep func(state.State) bool) []record, end func(aid uint64, reason string)) {
	b.ctl.WatchOOM(stop, func() []quota.Governed {
		return b.governed(agents(func(st state.State) bool { return !st.Terminal() }))
	}, end)
}

// governCPU runs the fair-share governor over the running agents
// (quota.Controller.RunGovernor, issue 5).
func (b *budget) governCPU(stop <-chan struct{}, agents func(keep func(state.State) bool) []record) {
	b.ctl.RunGovernor(stop, func() []quota.Governed {
		return b.governed(agents(state.State.Running))
	}, b.log)
}

// governed gives each record its controller group and limits.
func (b *budget) governed(recs []record) []quota.Governed {
	out := make([]quota.Governed, len(recs))
	for i := range recs {
		r := &recs[i]
		out[i] = quota.Governed{AID: r.AID, Group: b.group(r), Limits: limits(r.Quota, r.Memory)}
	}
	return out
}

// withDefaults is the budget an agent starts with: what it sets itself,
// the host's defaults for what it leaves unset, and no limit where it
// wrote `max` (Unlimited), which only then stays unlimited. The memory
// default applies only to an agent that names no memory bound at all
// (memoryMax, memoryHigh or the RAM tier): one it names is its own
// choice. On a host with no usable controller nothing can be enforced,
// and a default is no reason to refuse every spawn: the defaults are left
// out there, and doctor says so.
func (b *budget) withDefaults(q manifest.Quota, mem manifest.MemoryTiers) manifest.Quota {
	d := b.defaults
	if b.ctl.Mode() == quota.ModeNone {
		d.Pids, d.MemoryMax, d.CPUWeight = 0, 0, 0
	}
	return applyDefaults(q, mem, d)
}

func applyDefaults(q manifest.Quota, mem manifest.MemoryTiers, d config.Defaults) manifest.Quota {
	switch q.Pids {
	case manifest.Unlimited:
		q.Pids = 0
	case 0:
		q.Pids = d.Pids
	}
	switch {
	case q.MemoryMax == manifest.Unlimited:
		q.MemoryMax = 0
	case q.MemoryMax == 0 && q.MemoryHigh == 0 && mem.RAM == 0:
		q.MemoryMax = d.MemoryMax
	}
	if q.CPUWeight == 0 {
		q.CPUWeight = d.CPUWeight
	}
	return q
}

// doctor is doctor's view of the defaults.
func (b *budget) doctor() *api.QuotaDefaults {
	d := b.defaults
	out := &api.QuotaDefaults{Pids: d.Pids, MemoryMax: d.MemoryMax, Memory: d.Memory, CPUWeight: d.CPUWeight,
		Enforced: b.ctl.Mode() != quota.ModeNone}
	if !out.Enforced {
		out.Why = b.ctl.Why()
	}
	return out
}

// quota is agent_quota's answer for r: its budget and what its cgroups
// say it uses.
func (b *budget) quota(r record) *api.Quota {
	q := &api.Quota{AID: r.AID, Budget: api.QuotaBudget{
		CPUWeight: r.Quota.CPUWeight, CPUMax: r.Quota.CPUMax, MemoryMax: r.Quota.MemoryMax,
		MemoryHigh: r.Quota.MemoryHigh, Pids: r.Quota.Pids, IOWeight: r.Quota.IOWeight,
		Tokens: r.Quota.Tokens, HBM: r.Memory.HBM, RAM: r.Memory.RAM, SSD: r.Memory.SSD,
	}, Usage: api.QuotaUsage{MemoryCurrent: -1, MemoryPeak: -1, Tokens: r.TokensUsed},
		Controllers: string(b.ctl.Mode()), Unenforced: b.ctl.Unenforced(limits(r.Quota, r.Memory))}
	if !r.State.Terminal() {
		if u, err := b.group(&r).Usage(); err == nil {
			q.Usage.CPUUsec, q.Usage.Pids = u.CPUUsec, u.Pids
			q.Usage.MemoryCurrent, q.Usage.MemoryPeak, q.Usage.OOMKills = u.MemoryCurrent, u.MemoryPeak, u.OOMKills
		} else {
			b.log.Warn("read agent usage", "aid", r.AID, "err", err)
		}
	}
	return q
}

// memory reads used and limit of every tier of r.
func (b *budget) memory(r record) *api.Memory {
	out := &api.Memory{AID: r.AID, HBM: api.MemoryTier{Used: r.HBMUsed, Limit: r.Memory.HBM}}
	out.RAM.Limit = limits(r.Quota, r.Memory).MemoryMax
	if !r.State.Terminal() {
		if u, err := b.group(&r).Usage(); err == nil && u.MemoryCurrent >= 0 {
			out.RAM.Used = u.MemoryCurrent
		}
	}
	if r.Memory.SSD > 0 {
		out.SSD = api.MemoryTier{Limit: r.Memory.SSD}
		if !r.State.Terminal() {
			dir := b.scratchDir(r.AID)
			out.SSD.Path = dir
			if used, size, err := quota.ScratchUsage(dir); err == nil {
				out.SSD.Used, out.SSD.Limit = used, size
			}
		}
	}
	return out
}
