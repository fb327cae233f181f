package bench

import (
	"context"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/bench/loadgen"
)

// TestBenchBrokerShort runs the whole benchmark with tiny durations and
// checks what --json promises: every headline figure present and finite,
// and no budget overshoot. Timing figures are not asserted.
func TestBenchBrokerShort(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the benchmark for about 10 s")
	}
	res, err := loadgen.Bench(context.Background(), loadgen.BenchConfig{
		Phase: 1500 * time.Millisecond, Warmup: 200 * time.Millisecond, Grace: 10 * time.Second,
		Decode: time.Millisecond, Flood: 8, LightRate: 20,
		OverheadN: 50, RPSClients: 8, RPSTime: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(benchBrokerJSON(res))
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Name     string         `json:"name"`
		Headline map[string]any `json:"headline"`
		Phases   []struct {
			Policy string `json:"policy"`
			Flood  bool   `json:"flood"`
		} `json:"phases"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.Name != "broker" || len(out.Phases) != 5 {
		t.Fatalf("name %q, %d phases", out.Name, len(out.Phases))
	}
	for _, k := range []string{"p99_ratio", "fifo_p99_ratio", "overhead_p99_ms", "rps", "budget_overshoot_tokens"} {
		v, ok := out.Headline[k].(float64)
		if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
			t.Errorf("headline %s = %v (%T), want a finite number", k, out.Headline[k], out.Headline[k])
		}
	}
	if v := out.Headline["budget_overshoot_tokens"]; v != 0.0 {
		t.Errorf("budget_overshoot_tokens = %v, want 0", v)
	}
	if res.Budget.OK == 0 || res.Budget.OK+res.Budget.Refused != res.Budget.Requests {
		t.Errorf("budget race: %+v", res.Budget)
	}
	if res.Budget.Granted > res.Budget.Budget {
		t.Errorf("granted %d tokens over a budget of %d", res.Budget.Granted, res.Budget.Budget)
	}
	if res.RPS <= 0 {
		t.Errorf("rps = %v", res.RPS)
	}
}
