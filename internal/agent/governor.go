package agent

import (
	"os"
	"strconv"
	"time"

	"github.com/coconut-os/coconut/internal/quota"
)

// governTick is how often the CPU governor samples agents: short enough
// that a flooder is capped within a tenth of a second, long enough that
// the rates it reads are not noise.
const governTick = 100 * time.Millisecond

// written is what the governor last wrote for an agent, so it rewrites
// the cgroup only on a change (rewriting a CFS quota resets its timer).
type written struct {
	lim quota.Limits
	set quota.CPUSetting
}

// governCPU runs the fair-share governor (package quota, Governor): every
// tick it samples each running agent's CPU use, wait and throttling, and
// caps the agents above their weighted fair share while another agent is
// short of its own, lifting the caps when no one is. cpu.shares alone
// cannot do it: the kernel splits a group's shares across CPUs by where
// its threads are, so an 8-thread agent outweighs a 1-thread one.
// COCONUT_GOVERNOR=off turns it off (for measuring without it).
func (m *Manager) governCPU() {
	defer m.wg.Done()
	if m.quota.Mode() == quota.ModeNone || os.Getenv("COCONUT_GOVERNOR") == "off" {
		return
	}
	cfg := quota.GovernorConfig{}
	if f, err := strconv.Atoi(os.Getenv("COCONUT_GOVERNOR_DEMOTE")); err == nil {
		cfg.DemoteFactor = f
	}
	gov := quota.NewGovernor(cfg)
	last := map[uint64]written{}
	t := time.NewTicker(governTick)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		m.mu.Lock()
		var recs []record
		for _, e := range m.agents {
			if e.rec.State.Running() && e.rec.PID > 0 {
				recs = append(recs, *e.rec)
			}
		}
		m.mu.Unlock()
		var samples []quota.CPUSample
		lims := map[uint64]quota.Limits{}
		for i := range recs {
			r := &recs[i]
			s, err := m.quotaGroup(r).CPUSample()
			if err != nil {
				continue // ending, or not started yet: no rate this tick
			}
			l := limits(r.Quota, r.Memory)
			s.Weight = l.CPUWeight
			if l.CPUMax != "" {
				if q, p, err := quota.ParseCPUMax(l.CPUMax); err == nil && q >= 0 {
					s.UserMax = float64(q) / float64(p)
				}
			}
			samples = append(samples, s)
			lims[r.AID] = l
		}
		idle, err := quota.IdleUsec()
		if err != nil {
			idle = 0 // unknown: share the whole machine
		}
		sets := gov.Step(time.Now(), idle, samples)
		seen := map[uint64]bool{}
		for i, set := range sets {
			aid := samples[i].AID
			seen[aid] = true
			w := written{lim: lims[aid], set: set}
			prev, ok := last[aid]
			if !ok && set == (quota.CPUSetting{AID: aid}) {
				last[aid] = w // spawn applied the budget: nothing to undo
				continue
			}
			if ok && prev == w {
				continue
			}
			r := recordFor(recs, aid)
			if err := m.quotaGroup(r).SetCPU(w.lim, set, gov.DemoteFactor()); err != nil {
				m.log.Debug("governor: set cpu", "aid", aid, "err", err)
				continue
			}
			last[aid] = w
		}
		for aid := range last {
			if !seen[aid] {
				delete(last, aid)
			}
		}
	}
}

func recordFor(recs []record, aid uint64) *record {
	for i := range recs {
		if recs[i].AID == aid {
			return &recs[i]
		}
	}
	return nil
}
