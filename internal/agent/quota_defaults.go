package agent

import (
	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/config"
	"github.com/coconut-os/coconut/internal/manifest"
	"github.com/coconut-os/coconut/internal/quota"
)

// withDefaults is the budget an agent starts with: what it sets itself,
// the host's defaults (coconut.toml [quota.defaults], Config.QuotaDefaults)
// for what it leaves unset, and no limit where it wrote `max` (Unlimited),
// which only then stays unlimited. The memory default applies only to an
// agent that names no memory bound at all (memoryMax, memoryHigh or the
// RAM tier): one it names is its own choice. On a host with no usable
// controller nothing can be enforced, and a default is no reason to refuse
// every spawn: the defaults are left out there, and doctor says so.
func (m *Manager) withDefaults(q manifest.Quota, mem manifest.MemoryTiers) manifest.Quota {
	d := m.cfg.QuotaDefaults
	if m.quota.Mode() == quota.ModeNone {
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

// QuotaDefaults is doctor's view of the defaults.
func (m *Manager) QuotaDefaults() *api.QuotaDefaults {
	d := m.cfg.QuotaDefaults
	out := &api.QuotaDefaults{Pids: d.Pids, MemoryMax: d.MemoryMax, Memory: d.Memory, CPUWeight: d.CPUWeight,
		Enforced: m.quota.Mode() != quota.ModeNone}
	if !out.Enforced {
		out.Why = m.quota.Why()
	}
	return out
}
