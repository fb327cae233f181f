package quota

import (
	"math"
	"time"
)

// CPUSample is what the governor reads from one agent's cgroups each tick:
// cumulative counters, so that a missed tick loses no information.
type CPUSample struct {
	AID       uint64
	Weight    int     // the budget's cpu weight (0: default 100)
	UserMax   float64 // the budget's cpu_max in CPUs; 0: none
	UsageUsec uint64  // CPU time used (cpu.stat usage_usec)
	WaitUsec  uint64  // time some task waited for a CPU (cpu.pressure "some" total); 0 if unknown
	Throttled uint64  // periods in which the CPU cap stopped it (cpu.stat nr_throttled)
}

// CPUSetting is what the governor wants written for one agent.
type CPUSetting struct {
	AID uint64
	// Cap is the agent's CPU cap in CPUs for this tick, 0 for none (the
	// budget's own cpu_max, if any, applies).
	Cap float64
	// Demoted means the agent runs above its equal share while others
	// want CPU: its weight is divided by DemoteFactor so that an agent
	// under its share wins the CPU when it wakes.
	Demoted bool
}

// GovernorConfig tunes the governor. Zero fields take the defaults.
type GovernorConfig struct {
	CPUs float64 // capacity; default: the number of CPUs online
	// MinGap is the least shortfall (CPUs below its allocation while it
	// waits for a CPU) that makes an agent starved: 0.05 CPU by default,
	// or 10% of its allocation when that is more.
	MinGap float64
	// DemoteFactor divides the weight of an agent above its equal share
	// (default 16; 1 turns demotion off).
	DemoteFactor int
}

// Governor turns CPU samples into per-agent caps: the weighted max-min
// fair share of the machine, applied only while some agent is short of
// its share, and lifted as soon as no one is, so it stays work-conserving.
// It is pure: it reads no files and keeps no clock; the caller passes the
// time of each sample, which makes its decisions testable.
type Governor struct {
	cfg      GovernorConfig
	prev     map[uint64]CPUSample
	prevAt   time.Time
	prevIdle uint64
	out      map[uint64]CPUSetting
}

// NewGovernor returns a governor with cfg's defaults filled in.
func NewGovernor(cfg GovernorConfig) *Governor {
	if cfg.CPUs <= 0 {
		cfg.CPUs = float64(onlineCPUs())
	}
	if cfg.MinGap <= 0 {
		cfg.MinGap = 0.05
	}
	if cfg.DemoteFactor <= 0 {
		cfg.DemoteFactor = 16
	}
	return &Governor{cfg: cfg, prev: map[uint64]CPUSample{}, out: map[uint64]CPUSetting{}}
}

// agentRate is one agent's tick, in CPUs (CPU-seconds per second).
type agentRate struct {
	s         CPUSample
	use, wait float64
	throttled bool
	demand    float64
}

// Step takes every running agent's sample at time now and the machine's
// cumulative idle time (µs, 0: unknown) and returns the setting each agent
// should have. An agent seen for the first time gets no cap (there is no
// rate yet); an agent absent from samples is forgotten.
//
// The capacity shared is what the agents used plus what nobody used,
// never more than the CPUs: when processes outside coconut take part of
// the machine, the agents' fair shares are shares of what is left, and
// caps computed from the whole machine would never bind.
func (g *Governor) Step(now time.Time, idleUsec uint64, samples []CPUSample) []CPUSetting {
	dt := now.Sub(g.prevAt).Seconds()
	first := g.prevAt.IsZero() || dt <= 0
	var rates []agentRate
	next := make(map[uint64]CPUSample, len(samples))
	for _, s := range samples {
		next[s.AID] = s
		p, ok := g.prev[s.AID]
		if first || !ok || s.UsageUsec < p.UsageUsec || s.WaitUsec < p.WaitUsec || s.Throttled < p.Throttled {
			continue // new, or counters went back (a new cgroup with the same AID cannot happen, but never trust it)
		}
		r := agentRate{s: s,
			use:       float64(s.UsageUsec-p.UsageUsec) / 1e6 / dt,
			wait:      float64(s.WaitUsec-p.WaitUsec) / 1e6 / dt,
			throttled: s.Throttled > p.Throttled}
		// What it would use if nothing stood in its way: throttled means
		// more than its cap (unknown how much); otherwise what it ran plus
		// what it waited. For a many-threaded agent the wait ("some") is
		// a floor, which is fine: a short agent is found by the
		// shortfall below its allocation, not by the exact demand.
		r.demand = r.use + r.wait
		if r.throttled {
			r.demand = math.Inf(1)
		}
		if s.UserMax > 0 {
			r.demand = min(r.demand, s.UserMax)
		}
		r.demand = min(r.demand, g.cfg.CPUs)
		rates = append(rates, r)
	}
	capacity := g.cfg.CPUs
	if !first && idleUsec > 0 && g.prevIdle > 0 && idleUsec >= g.prevIdle {
		used := 0.0
		for _, r := range rates {
			used += r.use
		}
		// A little headroom (10%) lets caps grow back when the outside
		// load goes away, instead of ratcheting down with it.
		capacity = min(capacity, max(0.1, 1.1*used+float64(idleUsec-g.prevIdle)/1e6/dt))
	}
	g.prev, g.prevAt, g.prevIdle = next, now, idleUsec
	out := make(map[uint64]CPUSetting, len(samples))
	for _, s := range samples {
		out[s.AID] = CPUSetting{AID: s.AID}
	}
	if len(rates) > 1 {
		g.decide(capacity, rates, out)
	}
	g.out = out
	res := make([]CPUSetting, 0, len(samples))
	for _, s := range samples {
		res = append(res, out[s.AID])
	}
	return res
}

// DemoteFactor is the configured weight divisor for demoted agents.
func (g *Governor) DemoteFactor() int { return g.cfg.DemoteFactor }

func (g *Governor) decide(capacity float64, rates []agentRate, out map[uint64]CPUSetting) {
	demand := make([]float64, len(rates))
	weight := make([]float64, len(rates))
	for i, r := range rates {
		demand[i] = r.demand
		weight[i] = float64(weightOr100(r.s.Weight))
	}
	alloc := waterFill(capacity, demand, weight)
	// short: throttled at its cap, or waiting for a CPU while running
	// clearly below its allocation. Only another agent's shortage
	// justifies capping one: an agent alone with idle neighbours takes
	// what it can (work-conserving).
	short := make([]bool, len(rates))
	nShort := 0
	for i, r := range rates {
		gap := max(g.cfg.MinGap, 0.1*alloc[i])
		short[i] = r.throttled || alloc[i]-r.use > gap
		if short[i] {
			nShort++
		}
	}
	// Equal share among the agents that use the CPU at all, for demotion.
	var wActive float64
	active := 0
	for i, r := range rates {
		if r.use > 0.01 || r.throttled {
			wActive += weight[i]
			active++
		}
	}
	for i, r := range rates {
		set := CPUSetting{AID: r.s.AID}
		othersShort := nShort - b2i(short[i])
		if othersShort > 0 && r.demand > alloc[i]*1.02 && alloc[i] < capacity {
			set.Cap = quantize(alloc[i])
		}
		if g.cfg.DemoteFactor > 1 && active > 1 {
			equal := capacity * weight[i] / wActive
			was := g.out[r.s.AID].Demoted
			// Hysteresis: demote above 110% of the equal share, keep the
			// demotion down to 90%, so the weight does not flap.
			set.Demoted = r.use > 1.1*equal || (was && r.use > 0.9*equal)
		}
		out[r.s.AID] = set
	}
}

func weightOr100(w int) int {
	if w <= 0 {
		return 100
	}
	return w
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// capStep is the granularity of caps in CPUs. Rewriting a CFS quota
// resets the group's bandwidth timer, so a cap is only rewritten when it
// moves by a step, not on every wobble of the neighbours' usage.
const capStep = 0.05

func quantize(c float64) float64 {
	if c <= 0 {
		return 0
	}
	return max(capStep, math.Floor(c/capStep+1e-9)*capStep)
}
