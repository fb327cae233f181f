package bench

import (
	"fmt"
	"math"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/coconut-os/coconut/internal/bench/loadgen"
	"github.com/coconut-os/coconut/internal/usage"
)

// benchBrokerCmd is `coconut bench broker`: issue 6's figures, measured
// in-process against a broker on loopback. It needs neither root nor a
// running coconutd.
func benchBrokerCmd(g *globals) *cobra.Command {
	var c loadgen.BenchConfig
	cmd := &cobra.Command{
		Use:   "broker [--url URL --key KEY] [--phase 10s] [--slots 8]",
		Short: "Inference broker: light tenants' p99 under a flooder (VTC vs FIFO), overhead, requests/s, budget race",
		Args:  usage.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if c.Phase < time.Second || c.Phase > 10*time.Minute {
				return usage.Errorf("--phase must be 1s..10m")
			}
			if c.Slots < 1 || c.Slots > 1024 || c.Flood < 1 || c.Flood > 4096 || !(c.LightRate > 0) || c.LightRate > 1000 {
				return usage.Errorf("--slots 1..1024, --flood 1..4096, --light-rate in (0, 1000]")
			}
			if c.Prefill < 0 || c.Decode < 0 || c.OverheadN < 1 || c.RPSClients < 1 || c.RPSTime <= 0 {
				return usage.Errorf("--prefill, --decode not negative; --overhead-requests, --rps-clients, --rps-time positive")
			}
			if c.Key != "" && c.URL == "" {
				return usage.Errorf("--key needs --url")
			}
			c.Warmup = min(time.Second, c.Phase/5)
			if !g.json() {
				c.Progress = os.Stderr
			}
			res, err := loadgen.Bench(cmd.Context(), c)
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(os.Stdout, benchBrokerJSON(res))
			}
			return printBenchBroker(res)
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.URL, "url", "", "OpenAI-compatible backend, as in OPENAI_BASE_URL (e.g. http://127.0.0.1:8000/v1; default: the simulated backend)")
	f.StringVar(&c.Key, "key", "", "API key for --url")
	f.StringVar(&c.Model, "model", "sim", "model name sent in requests")
	f.IntVar(&c.Slots, "slots", 8, "backend concurrency (in-flight requests)")
	f.IntVar(&c.Headroom, "headroom", 0, "slots kept for tenants below their fair share in the headroom-on phases (0: the broker's default)")
	f.DurationVar(&c.Prefill, "prefill", 20*time.Microsecond, "simulated prefill time per input token")
	f.DurationVar(&c.Decode, "decode", 3*time.Millisecond, "simulated decode time per output token")
	f.DurationVar(&c.Phase, "phase", 10*time.Second, "length of each of the five fairness phases")
	f.IntVar(&c.Flood, "flood", 32, "the flooder's outstanding requests")
	f.Float64Var(&c.LightRate, "light-rate", 8, "each light tenant's Poisson arrival rate (requests/s)")
	f.IntVar(&c.OverheadN, "overhead-requests", 2000, "sequential requests each way for the overhead")
	f.IntVar(&c.RPSClients, "rps-clients", 64, "concurrent clients for requests/s")
	f.DurationVar(&c.RPSTime, "rps-time", 3*time.Second, "length of the requests/s run")
	f.Uint64Var(&c.Seed, "seed", 1, "workload random seed")
	return cmd
}

// benchBrokerJSON rounds the headline so it reads as figures, not noise.
func benchBrokerJSON(res loadgen.BenchResult) map[string]any {
	head := map[string]float64{}
	for k, v := range res.Headline {
		head[k] = math.Round(v*1000) / 1000
	}
	return map[string]any{"name": "broker", "backend": res.Backend, "slots": res.Slots, "phases": res.Phases,
		"overhead": res.Overhead, "rps": math.Round(res.RPS), "rps_direct": math.Round(res.RPSDirect), "budget": res.Budget,
		"audit_rows_counted": res.Audited, "notes": res.Notes, "headline": head}
}

func printBenchBroker(res loadgen.BenchResult) error {
	tw := table(os.Stdout)
	fmt.Fprintf(tw, "broker bench: backend %s, %d slots; 1 flooder (closed loop, heavy-tailed outputs) + 3 light tenants (Poisson, fixed size)\n", res.Backend, res.Slots)
	for _, p := range res.Phases {
		flood := "no flooder"
		if p.Flood {
			flood = "flooder"
		}
		knob := ""
		if p.Policy != "fifo" {
			knob = ", headroom off"
			if p.Headroom {
				knob = ", headroom on"
			}
		}
		fmt.Fprintf(tw, "\n%s, %s%s\tok\tfail\tTTFT p50\tTTFT p99\te2e p50\te2e p99\ttokens\ttok/s\n", p.Policy, flood, knob)
		for _, t := range p.Tenants {
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\t%s\t%s\t%s\t%d\t%.0f\n", t.Name, t.Requests, t.Failed,
				msf(t.TTFTP50), msf(t.TTFTP99), msf(t.E2EP50), msf(t.E2EP99), t.Tokens, t.TokensPerSec)
		}
		fmt.Fprintf(tw, "  light, pooled\t\t\t%s\t%s\t%s\t%s\t\t\n", msf(p.Light.TTFTP50), msf(p.Light.TTFTP99), msf(p.Light.E2EP50), msf(p.Light.E2EP99))
		fmt.Fprintf(tw, "  total %.0f tok/s, %.1f req/s; Jain's index over tokens served %.3f; max service difference between backlogged tenants %.0f tokens\n",
			p.TokensPerSec, p.RPS, float64(p.Jain), p.MaxServiceDiff)
	}
	h := res.Headline
	o := res.Overhead
	fmt.Fprintf(tw, "\nheadline\n")
	fmt.Fprintf(tw, "  p99 ratio, default policy (light p99 e2e with flooder ÷ without; goal ≤ 1.5)\t%.2f×\n", h["p99_ratio"])
	fmt.Fprintf(tw, "  p99 ratio, FIFO\t%.2f×\n", h["fifo_p99_ratio"])
	fmt.Fprintf(tw, "  p99 ratio, default policy without headroom\t%.2f×\n", h["no_headroom_p99_ratio"])
	fmt.Fprintf(tw, "  throughput with headroom ÷ without, under the flood\t%.3f\n", h["headroom_throughput_ratio"])
	fmt.Fprintf(tw, "  added latency through the broker, p99 (goal ≤ 1 ms)\t%+.3f ms\n", h["overhead_p99_ms"])
	fmt.Fprintf(tw, "    direct p50 / p99, via broker p50 / p99, %d sequential requests each\t%s / %s, %s / %s\n",
		o.Requests, msf(o.DirectP50), msf(o.DirectP99), msf(o.BrokerP50), msf(o.BrokerP99))
	fmt.Fprintf(tw, "  requests/s through the broker, no service time (goal ≥ 5000)\t%.0f\n", h["rps"])
	fmt.Fprintf(tw, "    same load on the backend alone\t%.0f\n", res.RPSDirect)
	b := res.Budget
	fmt.Fprintf(tw, "  budget overshoot, tokens (must be 0)\t%d\n", b.Overshoot)
	fmt.Fprintf(tw, "    %d concurrent requests, budget %d tokens: ok / refused (429) / granted tokens\t%d / %d / %d\n",
		b.Requests, b.Budget, b.OK, b.Refused, b.Granted)
	fmt.Fprintf(tw, "\nnotes\n")
	for _, n := range res.Notes {
		fmt.Fprintf(tw, "  %s\n", n)
	}
	return tw.Flush()
}

func msf(f loadgen.Figure) string {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return fmt.Sprintf("%.1f ms", v)
}
