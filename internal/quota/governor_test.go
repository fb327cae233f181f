package quota

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestWaterFill(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		name           string
		capacity       float64
		demand, weight []float64
		want           []float64
	}{
		{"all greedy, equal weights", 2, []float64{inf, inf, inf, inf}, []float64{1, 1, 1, 1}, []float64{0.5, 0.5, 0.5, 0.5}},
		{"light agents satisfied, rest to the flooder", 2, []float64{inf, 0.1, 0.1, 0.1}, []float64{1, 1, 1, 1}, []float64{1.7, 0.1, 0.1, 0.1}},
		{"one-thread agents bounded by one CPU", 2, []float64{inf, 1, 1, 1}, []float64{1, 1, 1, 1}, []float64{0.5, 0.5, 0.5, 0.5}},
		{"weights 3:1", 2, []float64{inf, inf}, []float64{3, 1}, []float64{1.5, 0.5}},
		{"alone takes everything", 2, []float64{inf}, []float64{1}, []float64{2}},
		{"demand below capacity", 2, []float64{0.3, 0.4}, []float64{1, 1}, []float64{0.3, 0.4}},
		{"idle agent gets nothing", 2, []float64{0, inf}, []float64{1, 1}, []float64{0, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := waterFill(tt.capacity, tt.demand, tt.weight)
			for i := range got {
				if math.Abs(got[i]-tt.want[i]) > 1e-9 {
					t.Fatalf("waterFill = %v, want %v", got, tt.want)
				}
			}
		})
	}
}

// fakeAgent advances one agent's counters as if it ran use CPUs, waited
// wait CPUs and was throttled (or not) over each tick.
type fakeAgent struct {
	aid       uint64
	use, wait float64
	throttled bool
	s         CPUSample
}

func (a *fakeAgent) tick(dt time.Duration) CPUSample {
	a.s.AID = a.aid
	a.s.UsageUsec += uint64(a.use * float64(dt.Microseconds()))
	a.s.WaitUsec += uint64(a.wait * float64(dt.Microseconds()))
	if a.throttled {
		a.s.Throttled += 10
	}
	return a.s
}

func TestGovernorStep(t *testing.T) {
	type agent struct {
		use, wait float64
		throttled bool
	}
	tests := []struct {
		name       string
		idle       float64 // CPUs idle during the tick
		prev       []CPUSetting
		agents     []agent
		wantCap    []float64
		wantDemote []bool
	}{
		{
			name:       "8-thread flooder beside three starved one-thread agents is capped, all are",
			agents:     []agent{{use: 0.8, wait: 1.5}, {use: 0.4, wait: 0.6}, {use: 0.4, wait: 0.6}, {use: 0.4, wait: 0.6}},
			wantCap:    []float64{0.5, 0.5, 0.5, 0.5},
			wantDemote: []bool{true, false, false, false},
		},
		{
			name:       "caps stay while the capped agents are throttled",
			agents:     []agent{{use: 0.5, throttled: true}, {use: 0.5, throttled: true}, {use: 0.5, throttled: true}, {use: 0.5, throttled: true}},
			wantCap:    []float64{0.5, 0.5, 0.5, 0.5},
			wantDemote: []bool{false, false, false, false},
		},
		{
			name:       "flooder alone is uncapped (work-conserving)",
			agents:     []agent{{use: 2, throttled: true}, {}, {}, {}},
			wantCap:    []float64{0, 0, 0, 0},
			wantDemote: []bool{false, false, false, false},
		},
		{
			name:       "light agents under their share: no cap, flooder demoted",
			agents:     []agent{{use: 1.7, wait: 1}, {use: 0.09, wait: 0.01}, {use: 0.09, wait: 0.01}, {use: 0.09, wait: 0.01}},
			wantCap:    []float64{0, 0, 0, 0},
			wantDemote: []bool{true, false, false, false},
		},
		{
			name:       "one starved light agent caps the flooder to what is left",
			agents:     []agent{{use: 1.9, wait: 1}, {use: 0.05, wait: 0.3}},
			wantCap:    []float64{1.65, 0},
			wantDemote: []bool{true, false},
		},
		{
			name:       "outside load: shares of what the agents get, not of the machine",
			agents:     []agent{{use: 0.6, wait: 2}, {use: 0.1, wait: 0.9}},
			wantCap:    []float64{0.35, 0}, // 1.1 × 0.7 CPU shared; agent 1 is not short, so agent 2 stays uncapped
			wantDemote: []bool{true, false},
		},
		{
			name:       "demotion holds inside the hysteresis band",
			prev:       []CPUSetting{{AID: 1, Demoted: true}},
			agents:     []agent{{use: 1.05}, {use: 0.95}},
			wantCap:    []float64{0, 0},
			wantDemote: []bool{true, false},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewGovernor(GovernorConfig{CPUs: 2})
			fakes := make([]*fakeAgent, len(tt.agents))
			var samples []CPUSample
			for i := range tt.agents {
				fakes[i] = &fakeAgent{aid: uint64(i + 1)}
				samples = append(samples, fakes[i].tick(0))
			}
			t0 := time.Unix(1000, 0)
			idle := uint64(1e9)
			if got := g.Step(t0, idle, samples); len(got) != len(samples) || got[0].Cap != 0 {
				t.Fatalf("first step: %+v, want no caps", got)
			}
			for _, p := range tt.prev {
				g.out[p.AID] = p
			}
			samples = samples[:0]
			dt := 100 * time.Millisecond
			for i, a := range tt.agents {
				fakes[i].use, fakes[i].wait, fakes[i].throttled = a.use, a.wait, a.throttled
				samples = append(samples, fakes[i].tick(dt))
			}
			idle += uint64(tt.idle * float64(dt.Microseconds()))
			got := g.Step(t0.Add(dt), idle, samples)
			for i, s := range got {
				if s.AID != uint64(i+1) || math.Abs(s.Cap-tt.wantCap[i]) > 1e-9 || s.Demoted != tt.wantDemote[i] {
					t.Fatalf("agent %d: %+v, want cap %v demoted %v (all: %+v)", i+1, s, tt.wantCap[i], tt.wantDemote[i], got)
				}
			}
		})
	}
}

func TestGovernorForgetsAndDistrusts(t *testing.T) {
	g := NewGovernor(GovernorConfig{CPUs: 2})
	t0 := time.Unix(1000, 0)
	g.Step(t0, 0, []CPUSample{{AID: 1, UsageUsec: 1e6}, {AID: 2, UsageUsec: 1e6}})
	// Agent 1's counter went backwards: it gets no rate, hence no cap,
	// and agent 2, alone with a rate, is not capped either.
	got := g.Step(t0.Add(time.Second), 0, []CPUSample{{AID: 1, UsageUsec: 10}, {AID: 2, UsageUsec: 3e6, Throttled: 5}})
	for _, s := range got {
		if s.Cap != 0 {
			t.Fatalf("got %+v, want no caps", got)
		}
	}
	if _, ok := g.prev[3]; ok || len(g.prev) != 2 {
		t.Fatalf("prev = %v", g.prev)
	}
}

func TestQuantize(t *testing.T) {
	for _, tt := range []struct{ in, want float64 }{{0, 0}, {0.01, 0.05}, {0.5, 0.5}, {0.549, 0.5}, {1.7, 1.7}} {
		if got := quantize(tt.in); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("quantize(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestParsePressureTotal(t *testing.T) {
	tests := []struct {
		name, in string
		want     uint64
		ok       bool
	}{
		{"some", "some avg10=0.00 avg60=0.10 avg300=1.33 total=35814851\nfull avg10=0.00 avg60=0.00 avg300=0.02 total=11786377\n", 35814851, true},
		{"no total", "some avg10=0.00\n", 0, false},
		{"bad total", "some total=-1\n", 0, false},
		{"empty", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePressureTotal(tt.in, "some")
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("parsePressureTotal = %d, %v; want %d ok=%v", got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestParseStatIdle(t *testing.T) {
	tests := []struct {
		name, in string
		want     uint64
		ok       bool
	}{
		{"real", "cpu  100 0 50 7000 30 0 1 0 0 0\ncpu0 50 0 25 3500 15 0 0 0 0 0\n", 7030 * 10000, true},
		{"short", "cpu 1 2 3\n", 0, false},
		{"not a number", "cpu 1 2 3 x 5\n", 0, false},
		{"no cpu line", "intr 5\n", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatIdle(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("parseStatIdle = %d, %v; want %d ok=%v", got, err, tt.want, tt.ok)
			}
		})
	}
}

func FuzzParsePressureTotal(f *testing.F) {
	f.Add("some avg10=0.00 avg60=0.10 avg300=1.33 total=35814851\nfull avg10=0.00 avg60=0.00 avg300=0.02 total=1\n")
	f.Add("some total=")
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := parsePressureTotal(s, "some"); err == nil && !strings.Contains(s, "total=") {
			t.Fatalf("accepted %q without a total", s)
		}
	})
}

func FuzzParseStatIdle(f *testing.F) {
	f.Add("cpu  100 0 50 7000 30 0 1 0 0 0\n")
	f.Add("cpu 18446744073709551615 0 0 18446744073709551615 18446744073709551615\n")
	f.Fuzz(func(t *testing.T, s string) {
		parseStatIdle(s)
	})
}

func FuzzGovernorStep(f *testing.F) {
	f.Add(uint64(1000), uint64(5), uint64(3), uint64(900), uint64(0), int64(100))
	f.Fuzz(func(t *testing.T, u1, w1, th1, u2, idle uint64, ms int64) {
		g := NewGovernor(GovernorConfig{CPUs: 2})
		t0 := time.Unix(1000, 0)
		g.Step(t0, 1, []CPUSample{{AID: 1}, {AID: 2}})
		got := g.Step(t0.Add(time.Duration(ms)*time.Millisecond), idle, []CPUSample{{AID: 1, UsageUsec: u1, WaitUsec: w1, Throttled: th1}, {AID: 2, UsageUsec: u2}})
		for _, s := range got {
			if s.Cap < 0 || math.IsNaN(s.Cap) || math.IsInf(s.Cap, 0) || s.Cap > 2 {
				t.Fatalf("cap %v out of range", s.Cap)
			}
		}
	})
}
