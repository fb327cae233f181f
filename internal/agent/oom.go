package agent

import (
	"fmt"
	"time"

	"github.com/coconut-os/coconut/internal/quota"
)

// oomPoll is how often running agents' OOM counters are read. An OOM kill
// of the main process is seen at once by the reaper; this catches the
// kills of other processes of the agent (v1 has no memory.oom.group).
const oomPoll = 250 * time.Millisecond

// oomReason says why the agent must end if the kernel OOM-killed anything
// inside its cgroup, or "" if it did not.
func (m *Manager) oomReason(e *entry) string {
	m.mu.Lock()
	r := *e.rec
	m.mu.Unlock()
	n, err := m.quotaGroup(&r).OOMKills()
	if err != nil || n == 0 {
		return ""
	}
	return fmt.Sprintf("out of memory: the kernel OOM-killed %d process(es) inside the agent's cgroup at its memory limit of %d bytes",
		n, limits(r.Quota, r.Memory).MemoryMax)
}

// watchOOM ends (Terminated-revoked, with the reason) every agent the
// kernel OOM-killed a process of. Only that agent's cgroup is touched.
func (m *Manager) watchOOM() {
	defer m.wg.Done()
	if m.quota.Mode() == quota.ModeNone {
		return
	}
	t := time.NewTicker(oomPoll)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		m.mu.Lock()
		var running []*entry
		for _, e := range m.agents {
			if !e.rec.State.Terminal() && e.rec.PID > 0 {
				running = append(running, e)
			}
		}
		m.mu.Unlock()
		for _, e := range running {
			if reason := m.oomReason(e); reason != "" {
				m.revoke(e, reason)
			}
		}
	}
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
