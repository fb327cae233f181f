package loadgen

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(100 - i) // 100..1, unsorted on purpose
	}
	tests := []struct {
		name string
		v    []float64
		p    float64
		want float64
	}{
		{"single value", []float64{7}, 99, 7},
		{"median of odd count", []float64{3, 1, 2}, 50, 2},
		// nearest rank: ceil(0.5*4) = 2nd smallest
		{"median of even count is the lower middle", []float64{4, 1, 3, 2}, 50, 2},
		{"p99 of 1..100", hundred, 99, 99},
		{"p100 is the max", hundred, 100, 100},
		{"p1 of 1..100", hundred, 1, 1},
		// ceil(0.99*10) = 10th: with 10 values p99 is the max
		{"p99 of ten values is the max", []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 50}, 99, 50},
		{"p90 of ten values", []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 50}, 90, 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.v, tt.p); got != tt.want {
				t.Fatalf("Percentile(%v, %v) = %v, want %v", tt.v, tt.p, got, tt.want)
			}
		})
	}
	for _, bad := range []struct {
		name string
		v    []float64
		p    float64
	}{{"empty", nil, 50}, {"p zero", []float64{1}, 0}, {"p over 100", []float64{1}, 101}} {
		t.Run(bad.name, func(t *testing.T) {
			if got := Percentile(bad.v, bad.p); !math.IsNaN(got) {
				t.Fatalf("Percentile = %v, want NaN", got)
			}
		})
	}
	t.Run("input not modified", func(t *testing.T) {
		v := []float64{3, 1, 2}
		Percentile(v, 50)
		if v[0] != 3 || v[1] != 1 || v[2] != 2 {
			t.Fatalf("input reordered: %v", v)
		}
	})
}

func TestJain(t *testing.T) {
	tests := []struct {
		name string
		x    []float64
		want float64
	}{
		{"all equal", []float64{5, 5, 5, 5}, 1},
		{"one takes all of four", []float64{9, 0, 0, 0}, 0.25},
		// (1+2+3)² / (3·(1+4+9)) = 36/42
		{"1 2 3", []float64{1, 2, 3}, 36.0 / 42},
		// (3+1)² / (2·(9+1)) = 16/20
		{"3 to 1", []float64{3, 1}, 0.8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Jain(tt.x); math.Abs(got-tt.want) > 1e-12 {
				t.Fatalf("Jain(%v) = %v, want %v", tt.x, got, tt.want)
			}
		})
	}
	for _, x := range [][]float64{nil, {0, 0}} {
		if got := Jain(x); !math.IsNaN(got) {
			t.Fatalf("Jain(%v) = %v, want NaN", x, got)
		}
	}
}

func TestMerge(t *testing.T) {
	got := Merge([]Interval{{5, 7}, {1, 3}, {2, 4}, {4, 5}, {9, 9}, {10, 12}})
	want := []Interval{{1, 7}, {10, 12}}
	if len(got) != len(want) {
		t.Fatalf("Merge = %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("Merge = %v, want %v", got, want)
		}
	}
}

func ticks(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, x := range v {
		out[i] = time.Duration(x)
	}
	return out
}

func TestMaxServiceDiff(t *testing.T) {
	tests := []struct {
		name string
		ts   []Service
		want float64
	}{
		{
			name: "alternating service never drifts more than one token",
			ts: []Service{
				{Backlog: []Interval{{0, 100}}, Tokens: ticks(10, 30, 50, 70)},
				{Backlog: []Interval{{0, 100}}, Tokens: ticks(20, 40, 60, 80)},
			},
			want: 1,
		},
		{
			// a gets 3 tokens before b's 3: D goes 1,2,3 then back to 0
			name: "a served in a burst first",
			ts: []Service{
				{Backlog: []Interval{{0, 100}}, Tokens: ticks(10, 11, 12)},
				{Backlog: []Interval{{0, 100}}, Tokens: ticks(50, 51, 52)},
			},
			want: 3,
		},
		{
			// D: +1 (a@10), 0 (b@20), -1 (b@30), -2 (b@40): max-min = 1-(-2)
			name: "difference measured over a sub-interval",
			ts: []Service{
				{Backlog: []Interval{{0, 100}}, Tokens: ticks(10)},
				{Backlog: []Interval{{0, 100}}, Tokens: ticks(20, 30, 40)},
			},
			want: 3,
		},
		{
			// Only (40,60] is common: a has 45, b has 55 in it.
			name: "only the common backlog counts",
			ts: []Service{
				{Backlog: []Interval{{0, 60}}, Tokens: ticks(10, 20, 30, 45)},
				{Backlog: []Interval{{40, 100}}, Tokens: ticks(55, 70, 80, 90)},
			},
			want: 1,
		},
		{
			name: "never backlogged together",
			ts: []Service{
				{Backlog: []Interval{{0, 10}}, Tokens: ticks(1, 2, 3)},
				{Backlog: []Interval{{10, 20}}, Tokens: ticks(11)},
			},
			want: 0,
		},
		{
			// weight 200 halves a's weighted service: 4 tokens count 2
			name: "weights scale service",
			ts: []Service{
				{Weight: 200, Backlog: []Interval{{0, 100}}, Tokens: ticks(10, 11, 12, 13)},
				{Weight: 100, Backlog: []Interval{{0, 100}}, Tokens: ticks(50, 51)},
			},
			want: 2,
		},
		{
			// both served at the same instants: no transient difference
			name: "simultaneous tokens cancel",
			ts: []Service{
				{Backlog: []Interval{{0, 100}}, Tokens: ticks(10, 20)},
				{Backlog: []Interval{{0, 100}}, Tokens: ticks(10, 20)},
			},
			want: 0,
		},
		{
			// pairs (a,b)=1, (a,c)=4, (b,c)=3
			name: "worst pair of three",
			ts: []Service{
				{Backlog: []Interval{{0, 100}}, Tokens: ticks(10, 20, 30, 40)},
				{Backlog: []Interval{{0, 100}}, Tokens: ticks(15, 25, 35)},
				{Backlog: []Interval{{0, 100}}},
			},
			want: 4,
		},
		{
			name: "token at the backlog start belongs before it",
			ts: []Service{
				{Backlog: []Interval{{10, 100}}, Tokens: ticks(10, 10, 10, 20)},
				{Backlog: []Interval{{10, 100}}, Tokens: ticks(30)},
			},
			want: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MaxServiceDiff(tt.ts); math.Abs(got-tt.want) > 1e-12 {
				t.Fatalf("MaxServiceDiff = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLengths(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	l := Lengths{Min: 16, Max: 512, Alpha: 1.1}
	if err := l.validate(); err != nil {
		t.Fatal(err)
	}
	capped := 0
	for i := 0; i < 10000; i++ {
		n := l.Draw(r)
		if n < 16 || n > 512 {
			t.Fatalf("draw %d outside [16, 512]", n)
		}
		if n == 512 {
			capped++
		}
	}
	// P(x >= 512) = (16/512)^1.1 ≈ 2.2%: a heavy tail reaches the cap.
	if capped == 0 {
		t.Fatal("no draw reached the cap: not heavy-tailed")
	}
	if got := (Lengths{Fixed: 32}).Draw(r); got != 32 {
		t.Fatalf("fixed draw = %d", got)
	}
	for _, bad := range []Lengths{{}, {Min: 0, Max: 5, Alpha: 1}, {Min: 5, Max: 4, Alpha: 1}, {Min: 1, Max: 4}} {
		if err := bad.validate(); err == nil {
			t.Fatalf("%+v validated", bad)
		}
	}
}

func TestFigureJSON(t *testing.T) {
	b, err := json.Marshal(struct{ A, B, C Figure }{Figure(math.NaN()), Figure(math.Inf(1)), 1.23456})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"A":null,"B":null,"C":1.235}` {
		t.Fatalf("got %s", b)
	}
}

func TestSummarize(t *testing.T) {
	ms := time.Millisecond
	run := Run{
		Tenants:  []Tenant{{Name: "a", Weight: 100}, {Name: "b", Weight: 100}},
		Duration: 1000 * ms, Warmup: 100 * ms,
	}
	res := Result{Run: run, Records: [][]Record{
		{
			// before the warmup: not measured, its late token still served
			{Start: 50 * ms, FirstToken: 90 * ms, End: 150 * ms, Status: 200, TokensOut: 2, TokenTimes: []time.Duration{90 * ms, 150 * ms}},
			{Start: 200 * ms, FirstToken: 210 * ms, End: 300 * ms, Status: 200, TokensOut: 2, TokenTimes: []time.Duration{210 * ms, 300 * ms}},
			{Start: 400 * ms, FirstToken: 420 * ms, End: 500 * ms, Status: 200, TokensOut: 1, TokenTimes: []time.Duration{420 * ms}},
			{Start: 600 * ms, End: 610 * ms, Status: 429, Err: "unexpected status 429"},
			{Start: 900 * ms, End: 1100 * ms, Err: "cancelled"},
		},
		{
			// non-stream: its three tokens arrive at the end
			{Start: 200 * ms, FirstToken: 700 * ms, End: 700 * ms, Status: 200, TokensOut: 3},
		},
	}}
	s := Summarize(res)
	a, b := s.Tenants[0], s.Tenants[1]
	if a.Requests != 2 || a.Failed != 1 || a.Tokens != 4 {
		t.Fatalf("a = %+v, want 2 requests, 1 failed, 4 tokens", a)
	}
	if a.TTFTP50 != 10 || a.TTFTP99 != 20 || a.E2EP50 != 100 || a.E2EP99 != 100 {
		t.Fatalf("a latencies = %+v", a)
	}
	if b.Requests != 1 || b.Tokens != 3 || b.E2EP99 != 500 {
		t.Fatalf("b = %+v", b)
	}
	// 7 tokens over the 0.9 s window
	if math.Abs(s.TokensPerSec-7/0.9) > 1e-9 || math.Abs(s.RPS-3/0.9) > 1e-9 {
		t.Fatalf("tokens/s %v rps %v", s.TokensPerSec, s.RPS)
	}
	// (4+3)² / (2·(16+9)) = 49/50
	if math.Abs(float64(s.Jain)-0.98) > 1e-12 {
		t.Fatalf("jain = %v", s.Jain)
	}
	// Common backlog (200,300]∪(400,500]∪(600,610]: a's 2 tokens in
	// (200,300] and 1 in (400,500] against none of b's (b's arrive at
	// 700): the largest difference inside one interval is 2.
	if s.MaxServiceDiff != 2 {
		t.Fatalf("max service diff = %v, want 2", s.MaxServiceDiff)
	}
}
