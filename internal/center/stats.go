package center

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/agent"
	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/events"
)

// Sampling of what the pages show besides rows.
const (
	sampleEvery  = 5 * time.Second
	seriesWindow = 15 * time.Minute
	seriesLen    = int(seriesWindow / sampleEvery)
	alarmAfter   = 2 // consecutive counter samples that must disagree
)

// root is the Center's own view, for the samplers only: what a caller is
// shown is always cut down to the agents agent.Manager lets them see.
var root = agent.Caller{UID: 0}

// lastRow is an agent's most recent audit row, for the agents table.
type lastRow struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	Type   string    `json:"type"`
	Cap    string    `json:"cap"`
	Object string    `json:"object"`
	Result string    `json:"result"`
}

// sample is one agent's usage at one instant.
type sample struct {
	at      time.Time
	cpuUsec uint64
	tokens  int64
}

// agentStats is what the samplers know of one agent.
type agentStats struct {
	last    *lastRow
	denies  uint64
	samples []sample // oldest first, at most seriesLen+1
	mem     int64
	cpuPct  float64 // of one CPU, over the last interval
	tIn     int64
	tOut    int64
}

// stats follows the event stream (as root) and samples usage, so that a
// page shows the last event, deny count, CPU and tokens of every agent it
// may see without reading the chain per request.
type stats struct {
	cfg       Config
	mu        sync.Mutex
	agents    map[uint64]*agentStats
	daemonDen uint64 // denies of the daemon's own rows (aid 0): root's
	alarm     string
	disagree  int
	head      uint64
	times     []time.Time // sample instants, oldest first
}

func newStats(cfg Config) *stats { return &stats{cfg: cfg, agents: map[uint64]*agentStats{}} }

func (s *stats) of(aid uint64) *agentStats {
	a := s.agents[aid]
	if a == nil {
		a = &agentStats{}
		s.agents[aid] = a
	}
	return a
}

// run follows the chain from its start and samples until ctx ends.
func (s *stats) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.follow(ctx) }()
	s.sample()
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-t.C:
			s.sample()
		}
	}
}

// follow keeps each agent's last row and deny count from the event
// stream: every row from the chain's start, then as they are appended.
func (s *stats) follow(ctx context.Context) {
	if s.cfg.Events == nil {
		return
	}
	st, err := s.cfg.Events.Subscribe(ctx, root, 0, events.Filter{})
	if err != nil {
		s.cfg.Log.Warn("center: follow the event stream", "err", err)
		return
	}
	for ev := range st.C {
		s.note(ev.Record)
	}
	if err := st.Err(); err != nil {
		s.cfg.Log.Warn("center: event stream ended", "err", err)
	}
}

// note takes in one row.
func (s *stats) note(r audit.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.head = r.Seq
	if r.AID == 0 {
		if r.Result == audit.ResultDeny {
			s.daemonDen++
		}
		return
	}
	a := s.of(r.AID)
	a.last = &lastRow{Seq: r.Seq, Time: r.Time, Type: r.Type, Cap: r.Cap, Object: r.Object, Result: r.Result}
	if r.Result == audit.ResultDeny {
		a.denies++
	}
}

// sample reads every running agent's usage, the broker's token counts and
// the deny counters.
func (s *stats) sample() {
	now := time.Now()
	tokens := map[uint64][2]int64{}
	if s.cfg.Inference != nil {
		for _, a := range s.cfg.Inference().Agents {
			tokens[a.AID] = [2]int64{a.TokensIn, a.TokensOut}
		}
	}
	type usage struct {
		cpu uint64
		mem int64
	}
	use := map[uint64]usage{}
	for _, a := range s.cfg.Agents.List(root, false) {
		if q, err := s.cfg.Agents.Quota(root, a.AID); err == nil {
			use[a.AID] = usage{q.Usage.CPUUsec, q.Usage.MemoryCurrent}
		}
	}
	var ctr map[string]uint64
	if s.cfg.Counters != nil {
		ctr = s.cfg.Counters()
	}
	kept := keptAlarm(s.cfg.Doctor)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.times = append(s.times, now)
	if len(s.times) > seriesLen+1 {
		s.times = s.times[1:]
	}
	for aid, u := range use {
		a := s.of(aid)
		t := tokens[aid]
		a.mem, a.tIn, a.tOut = u.mem, t[0], t[1]
		if n := len(a.samples); n > 0 {
			p := a.samples[n-1]
			if dt := now.Sub(p.at).Microseconds(); dt > 0 && u.cpu >= p.cpuUsec {
				a.cpuPct = 100 * float64(u.cpu-p.cpuUsec) / float64(dt)
			}
		}
		a.samples = append(a.samples, sample{at: now, cpuUsec: u.cpu, tokens: t[0] + t[1]})
		if len(a.samples) > seriesLen+1 {
			a.samples = a.samples[1:]
		}
	}
	for aid, a := range s.agents {
		if _, ok := use[aid]; !ok {
			a.cpuPct, a.mem = 0, 0
			if t, ok := tokens[aid]; ok {
				a.tIn, a.tOut = t[0], t[1]
			}
		}
	}
	s.checkCounters(ctr)
	if s.alarm == "" {
		s.alarm = kept
	}
}

// keptAlarm reads the doctor report's counters_alarm, the daemon's kept
// record of kernel and chain deny counts that differed. It goes through
// the JSON form so that a daemon without that record simply has none.
func keptAlarm(doctor func() api.Doctor) string {
	if doctor == nil {
		return ""
	}
	b, err := json.Marshal(doctor())
	if err != nil {
		return ""
	}
	var d struct {
		Alarms []struct {
			Source        string    `json:"source"`
			Difference    int64     `json:"difference"`
			MaxDifference int64     `json:"max_difference"`
			KernelDenies  uint64    `json:"kernel_denies"`
			ChainDenies   uint64    `json:"chain_denies"`
			LastSeen      time.Time `json:"last_seen"`
			Now           bool      `json:"now"`
		} `json:"counters_alarm"`
	}
	if json.Unmarshal(b, &d) != nil || len(d.Alarms) == 0 {
		return ""
	}
	var parts []string
	for _, a := range d.Alarms {
		when := "now"
		if !a.Now {
			when = "last seen " + a.LastSeen.Local().Format("2006-01-02 15:04")
		}
		parts = append(parts, fmt.Sprintf("%s: kernel %d, chain %d (off by %d, at most %d; %s)", a.Source, a.KernelDenies, a.ChainDenies, a.Difference, a.MaxDifference, when))
	}
	return "Deny counters and audit rows have disagreed — " + strings.Join(parts, "; ") + ". Run `coconut doctor`."
}

// checkCounters raises the alarm when the kernel's deny count and the
// chain's disagree on consecutive samples (a deny is counted by the kernel
// a moment before its row is written, so one sample may differ). The
// caller holds s.mu.
func (s *stats) checkCounters(ctr map[string]uint64) {
	k, kok := ctr["kernel_denies"]
	c, cok := ctr["chain_denies"]
	if !kok || !cok || k == c {
		s.disagree, s.alarm = 0, ""
		return
	}
	s.disagree++
	if s.disagree >= alarmAfter {
		s.alarm = alarmText(k, c)
	}
}

// agentView is one line of the agents table.
type agentView struct {
	AID       uint64   `json:"aid"`
	Name      string   `json:"name"`
	Class     string   `json:"class"`
	State     string   `json:"state"`
	User      string   `json:"user"`
	Workload  string   `json:"workload,omitempty"`
	CPU       float64  `json:"cpu"`    // percent of one CPU
	Memory    int64    `json:"memory"` // bytes, -1 unknown
	TokensIn  int64    `json:"tokens_in"`
	TokensOut int64    `json:"tokens_out"`
	Denies    uint64   `json:"denies"`
	Last      *lastRow `json:"last,omitempty"`
}

// summary is the top bar.
type summary struct {
	Active  int      `json:"active"`
	Agents  int      `json:"agents"`
	Tokens  int64    `json:"tokens"`
	Cost    *float64 `json:"cost,omitempty"` // nil without [broker] price_per_1k_tokens
	Price   float64  `json:"price_per_1k_tokens,omitempty"`
	Denies  uint64   `json:"denies"`
	Alarm   string   `json:"alarm,omitempty"`
	Head    uint64   `json:"head"`
	User    string   `json:"user"`
	UID     uint32   `json:"uid"`
	Sampled int64    `json:"sampled_every_ms"`
}

// view returns the agents caller may see (ended ones too with all) and
// the top bar over them.
func (s *stats) view(c agent.Caller, all bool) ([]agentView, summary) {
	list := s.cfg.Agents.List(c, all)
	out := make([]agentView, 0, len(list))
	sum := summary{Sampled: sampleEvery.Milliseconds(), UID: c.UID}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range list {
		v := agentView{AID: a.AID, Name: a.Name, Class: a.Class, State: a.State, User: a.User, Workload: a.Workload, Memory: -1}
		if st := s.agents[a.AID]; st != nil {
			v.CPU, v.TokensIn, v.TokensOut, v.Denies, v.Last = st.cpuPct, st.tIn, st.tOut, st.denies, st.last
			if st.mem >= 0 && len(st.samples) > 0 {
				v.Memory = st.mem
			}
		}
		out = append(out, v)
	}
	// The top bar counts every agent the caller may see, ended ones too.
	for _, a := range s.cfg.Agents.List(c, true) {
		if !isTerminal(a.State) {
			sum.Agents++
			if a.State == "Active" {
				sum.Active++
			}
		}
		if st := s.agents[a.AID]; st != nil {
			sum.Tokens += st.tIn + st.tOut
			sum.Denies += st.denies
		}
	}
	if c.UID == 0 && c.AID == 0 {
		sum.Denies += s.daemonDen
		sum.Alarm = s.alarm
	} else if s.alarm != "" {
		sum.Alarm = s.alarm // the machine's enforcement is everyone's business
	}
	if p := s.cfg.PricePer1K; p > 0 {
		cost := float64(sum.Tokens) / 1000 * p
		sum.Cost, sum.Price = &cost, p
	}
	sum.Head = s.head
	return out, sum
}

func isTerminal(state string) bool {
	return state == "Terminated-clean" || state == "Terminated-revoked"
}

// series is the plots' data: per agent the caller may see, tokens per
// minute and CPU percent at each sample instant of the last 15 minutes.
type series struct {
	Times  []int64       `json:"t"` // unix ms
	Agents []seriesAgent `json:"agents"`
	Step   int64         `json:"step_ms"`
	Now    int64         `json:"now"`
}

type seriesAgent struct {
	AID    uint64    `json:"aid"`
	Name   string    `json:"name"`
	Class  string    `json:"class"`
	Tokens []float64 `json:"tokens_per_min"` // aligned with Times; -1 where there is no sample
	CPU    []float64 `json:"cpu"`            // percent of one CPU; -1 likewise
}

func (s *stats) series(c agent.Caller) series {
	list := s.cfg.Agents.List(c, true)
	s.mu.Lock()
	defer s.mu.Unlock()
	out := series{Step: sampleEvery.Milliseconds(), Now: time.Now().UnixMilli(), Agents: []seriesAgent{}}
	if len(s.times) < 2 {
		return out
	}
	times := s.times[1:]
	for _, t := range times {
		out.Times = append(out.Times, t.UnixMilli())
	}
	for _, a := range list {
		st := s.agents[a.AID]
		if st == nil || len(st.samples) < 2 {
			continue
		}
		sa := seriesAgent{AID: a.AID, Name: a.Name, Class: a.Class, Tokens: make([]float64, len(times)), CPU: make([]float64, len(times))}
		for i := range times { // -1: no sample there (the agent did not exist yet, or had ended)
			sa.Tokens[i], sa.CPU[i] = -1, -1
		}
		// Align the agent's samples to the instants: each sample pair
		// lands on the instant of its later sample.
		idx := map[int64]int{}
		for i, t := range times {
			idx[t.UnixNano()] = i
		}
		for j := 1; j < len(st.samples); j++ {
			p, q := st.samples[j-1], st.samples[j]
			i, ok := idx[q.at.UnixNano()]
			dt := q.at.Sub(p.at)
			if !ok || dt <= 0 {
				continue
			}
			sa.Tokens[i], sa.CPU[i] = 0, 0
			if q.tokens >= p.tokens { // the broker's counters start again with the daemon
				sa.Tokens[i] = float64(q.tokens-p.tokens) / dt.Minutes()
			}
			if q.cpuUsec >= p.cpuUsec {
				sa.CPU[i] = 100 * float64(q.cpuUsec-p.cpuUsec) / float64(dt.Microseconds())
			}
		}
		out.Agents = append(out.Agents, sa)
	}
	return out
}

// alarmText is the top bar's alarm: off-by-N between the kernel's denies
// and the chain's rows is a release blocker, so it is shown to everyone.
func alarmText(kernel, chain uint64) string {
	return fmt.Sprintf("Deny counters disagree: the kernel counted %d denies, the audit chain holds %d rows for them. Run `coconut doctor`.", kernel, chain)
}
