package quota

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"
)

// governTick is how often the CPU governor samples agents: short enough
// that a flooder is capped within a tenth of a second, long enough that
// the rates it reads are not noise.
const governTick = 100 * time.Millisecond

// oomPoll is how often running agents' OOM counters are read. An OOM kill
// of the main process is seen at once by the reaper; this catches the
// kills of other processes of the agent (v1 has no memory.oom.group).
const oomPoll = 250 * time.Millisecond

// Governed is one running agent as the governor and the OOM watch see it:
// its controller group and the limits its budget asks for.
type Governed struct {
	AID    uint64
	Group  *Group
	Limits Limits
}

// written is what the governor last wrote for an agent, so it rewrites
// the cgroup only on a change (rewriting a CFS quota resets its timer).
type written struct {
	lim Limits
	set CPUSetting
}

// RunGovernor runs the fair-share governor (Governor) until stop is
// closed: every tick it samples each running agent's CPU use, wait and
// throttling, and caps the agents above their weighted fair share while
// another agent is short of its own, lifting the caps when no one is.
// cpu.shares alone cannot do it: the kernel splits a group's shares
// across CPUs by where its threads are, so an 8-thread agent outweighs a
// 1-thread one. agents lists the running agents at each tick.
// COCONUT_GOVERNOR=off turns it off (for measuring without it), and
// COCONUT_GOVERNOR_DEMOTE sets GovernorConfig.DemoteFactor.
func (c *Controller) RunGovernor(stop <-chan struct{}, agents func() []Governed, log *slog.Logger) {
	if c.Mode() == ModeNone || os.Getenv("COCONUT_GOVERNOR") == "off" {
		return
	}
	cfg := GovernorConfig{}
	if f, err := strconv.Atoi(os.Getenv("COCONUT_GOVERNOR_DEMOTE")); err == nil {
		cfg.DemoteFactor = f
	}
	gov := NewGovernor(cfg)
	last := map[uint64]written{}
	t := time.NewTicker(governTick)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		running := agents()
		var samples []CPUSample
		byAID := map[uint64]Governed{}
		for _, a := range running {
			s, err := a.Group.CPUSample()
			if err != nil {
				continue // ending, or not started yet: no rate this tick
			}
			s.Weight = a.Limits.CPUWeight
			if a.Limits.CPUMax != "" {
				if q, p, err := ParseCPUMax(a.Limits.CPUMax); err == nil && q >= 0 {
					s.UserMax = float64(q) / float64(p)
				}
			}
			samples = append(samples, s)
			byAID[a.AID] = a
		}
		idle, err := IdleUsec()
		if err != nil {
			idle = 0 // unknown: share the whole machine
		}
		sets := gov.Step(time.Now(), idle, samples)
		seen := map[uint64]bool{}
		for i, set := range sets {
			aid := samples[i].AID
			seen[aid] = true
			a := byAID[aid]
			w := written{lim: a.Limits, set: set}
			prev, ok := last[aid]
			if !ok && set == (CPUSetting{AID: aid}) {
				last[aid] = w // spawn applied the budget: nothing to undo
				continue
			}
			if ok && prev == w {
				continue
			}
			if err := a.Group.SetCPU(w.lim, set, gov.DemoteFactor()); err != nil {
				log.Debug("governor: set cpu", "aid", aid, "err", err)
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

// OOMReason says why an agent must end if the kernel OOM-killed anything
// inside its group, or "" if it did not.
func OOMReason(g *Group, l Limits) string {
	n, err := g.OOMKills()
	if err != nil || n == 0 {
		return ""
	}
	return fmt.Sprintf("out of memory: the kernel OOM-killed %d process(es) inside the agent's cgroup at its memory limit of %d bytes",
		n, l.MemoryMax)
}

// WatchOOM calls end (with OOMReason) for every running agent the kernel
// OOM-killed a process of, until stop is closed. Only that agent is
// ended; end is called again at the next poll if the agent still runs.
func (c *Controller) WatchOOM(stop <-chan struct{}, agents func() []Governed, end func(aid uint64, reason string)) {
	if c.Mode() == ModeNone {
		return
	}
	t := time.NewTicker(oomPoll)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		for _, a := range agents() {
			if reason := OOMReason(a.Group, a.Limits); reason != "" {
				end(a.AID, reason)
			}
		}
	}
}
