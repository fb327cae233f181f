package agent

import (
	"fmt"

	"github.com/coconut-os/coconut/internal/quota"
	"github.com/coconut-os/coconut/internal/state"
)

// oomReason says why the agent must end if the kernel OOM-killed anything
// inside its cgroup, or "" if it did not (quota.OOMReason).
func (m *Manager) oomReason(e *entry) string {
	m.mu.Lock()
	r := *e.rec
	m.mu.Unlock()
	return quota.OOMReason(m.quotaGroup(&r), limits(r.Quota, r.Memory))
}

// watchOOM ends (Terminated-revoked, with the reason) every agent the
// kernel OOM-killed a process of (quota.Controller.WatchOOM). Only that
// agent's cgroup is touched.
func (m *Manager) watchOOM() {
	defer m.wg.Done()
	m.quota.WatchOOM(m.stop, func() []quota.Governed {
		return m.governed(func(st state.State) bool { return !st.Terminal() })
	}, func(aid uint64, reason string) {
		m.mu.Lock()
		e := m.agents[aid]
		m.mu.Unlock()
		if e != nil {
			m.revoke(e, reason)
		}
	})
}

// governCPU runs the fair-share governor over the running agents
// (quota.Controller.RunGovernor, issue 5).
func (m *Manager) governCPU() {
	defer m.wg.Done()
	m.quota.RunGovernor(m.stop, func() []quota.Governed {
		return m.governed(state.State.Running)
	}, m.log)
}

// governed lists the agents whose main process has started and whose
// state passes keep, with their controller groups and limits.
func (m *Manager) governed(keep func(state.State) bool) []quota.Governed {
	m.mu.Lock()
	var recs []record
	for _, e := range m.agents {
		if keep(e.rec.State) && e.rec.PID > 0 {
			recs = append(recs, *e.rec)
		}
	}
	m.mu.Unlock()
	out := make([]quota.Governed, len(recs))
	for i := range recs {
		r := &recs[i]
		out[i] = quota.Governed{AID: r.AID, Group: m.quotaGroup(r), Limits: limits(r.Quota, r.Memory)}
	}
	return out
}

// releaseQuota removes what the quota controller made for the agent: its
// v1 groups and its SSD scratch area. It runs once the cgroup is empty.
func (m *Manager) releaseQuota(e *entry) {
	m.mu.Lock()
	r := *e.rec
	m.mu.Unlock()
	if err := m.quotaGroup(&r).Remove(); err != nil {
		m.log.Warn("remove agent quota groups", "aid", r.AID, "err", err)
	}
	if r.Memory.SSD > 0 {
		if err := quota.RemoveScratch(m.scratchDir(r.AID)); err != nil {
			m.log.Warn("remove agent scratch", "aid", r.AID, "err", err)
		}
	}
}

// prepareQuota applies the agent's limits and makes its SSD scratch area,
// before its first process exists.
func (m *Manager) prepareQuota(r *record) error {
	if err := m.quotaGroup(r).Apply(limits(r.Quota, r.Memory)); err != nil {
		return quotaErr(fmt.Errorf("agent %s: %w", r.Name, err))
	}
	if r.Memory.SSD > 0 {
		if err := quota.CreateScratch(m.scratchDir(r.AID), r.Memory.SSD, r.UID, r.GID); err != nil {
			return quotaErr(fmt.Errorf("agent %s: ssd tier: %w", r.Name, err))
		}
	}
	return nil
}
