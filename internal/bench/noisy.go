package bench

import (
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/client"
	"github.com/coconut-os/coconut/internal/usage"
)

// benchNoisyCmd is `coconut bench noisy` (issue 19): a victim agent's
// supervised open p99 with a flooding neighbour ÷ the same p99 alone,
// measured in the same run on one private coconutd, per flood kind, with
// the rows a second the flooder added to the chain and whether kernel and
// chain deny counters agree afterwards.
func benchNoisyCmd(g *globals) *cobra.Command {
	var iters int
	var probe string
	cmd := &cobra.Command{
		Use:   "noisy [--iters N]",
		Short: "Victim p99 with a flooding neighbour ÷ alone, per flood kind (denies, connects)",
		Long: "Starts a private coconutd (portable enforcer) and a victim agent timing N allowed\n" +
			"supervised opens, alone and then beside a flooder: denied opens (the supervisor) or\n" +
			"denied connects (the network guard). Needs root.",
		Args: usage.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if iters < 100 || iters > 1_000_000 {
				return usage.Errorf("--iters 100..1000000")
			}
			if os.Geteuid() != 0 {
				return fmt.Errorf("bench noisy needs root (a private coconutd)")
			}
			res, err := benchNoisy(cmd.Context(), iters, probe)
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(os.Stdout, res)
			}
			for kind, h := range res["headline"].(map[string]map[string]any) {
				fmt.Printf("%-9s victim open p99 %.3f ms alone, %.3f ms with the flood: ratio %.2f; flooder %.1f rows/s; counters equal %v\n",
					kind, h["alone_p99_ms"], h["flood_p99_ms"], h["p99_ratio"], h["flooder_rows_per_s"], h["counters_equal"])
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&iters, "iters", 20000, "victim opens per measurement")
	cmd.Flags().StringVar(&probe, "probe", "", "coconut-enforce-probe binary (default: beside coconut, ../libexec/coconut, PATH)")
	return cmd
}

func benchNoisy(ctx context.Context, iters int, probe string) (map[string]any, error) {
	coconutd, err := findBeside("coconutd")
	if err != nil {
		return nil, err
	}
	if probe == "" {
		if probe, err = findBeside("coconut-enforce-probe"); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "coconut-bench-noisy-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	d, err := startDaemon(ctx, coconutd, filepath.Join(dir, "daemon"))
	if err != nil {
		return nil, err
	}
	defer d.stop()
	allowed, denied := filepath.Join(dir, "allowed"), filepath.Join(dir, "denied")
	for _, p := range []string{allowed, denied} {
		if err := os.WriteFile(p, []byte("x\n"), 0o644); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	addr := ln.Addr().String()

	victim := func(name string) (float64, error) {
		_, logs, err := d.runAgent(ctx, api.RunRequest{Name: name, Workdir: "/", Caps: []string{"fs.read:" + allowed},
			Command: []string{probe, "loop", "--path", allowed, "--iters", strconv.Itoa(iters), "--ready", "0", "--after-deny", strconv.Itoa(iters)}}, 5*time.Minute)
		if err != nil {
			return 0, fmt.Errorf("victim: %v (log: %s)", err, tail(logs))
		}
		r, err := parseProbe(logs, "loop")
		if err != nil {
			return 0, err
		}
		ms := make([]float64, 0, len(r.Dur))
		for i, dur := range r.Dur {
			if r.Errno[i] != 0 {
				return 0, fmt.Errorf("victim: an allowed open failed with errno %d", r.Errno[i])
			}
			ms = append(ms, float64(dur)/1e6)
		}
		return pctl(ms, 99), nil
	}
	floods := []struct {
		kind, storm string
		args        []string
	}{
		{"denies", "none", []string{"deny-open", "--path", denied, "--count", "100000000"}},
		{"connects", "none", []string{"deny-connect", "--addr", addr, "--count", "100000000"}},
		// The same flood under the host's default on_deny_storm (throttle).
		{"connects_default_storm_policy", "", []string{"deny-connect", "--addr", addr, "--count", "100000000"}},
	}
	head := map[string]map[string]any{}
	for _, f := range floods {
		name := strings.ReplaceAll(f.kind, "_", "-")
		alone, err := victim("victim-alone-" + name)
		if err != nil {
			return nil, err
		}
		// The first floods have their storm policy off: they measure
		// fairness, not the storm policy stopping them; the last one has
		// the host's default.
		a, err := d.c.AgentRun(ctx, api.RunRequest{Name: "flood-" + name, Workdir: "/", Caps: []string{}, OnDenyStorm: f.storm,
			Command: append([]string{probe}, f.args...)})
		if err != nil {
			return nil, fmt.Errorf("flooder: %w", err)
		}
		time.Sleep(time.Second) // past its first rows
		rows0, err := d.rowCount(ctx, a.AID)
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		flood, err := victim("victim-flood-" + name)
		if err != nil {
			return nil, err
		}
		rows1, err := d.rowCount(ctx, a.AID)
		if err != nil {
			return nil, err
		}
		span := time.Since(t0)
		if _, err := d.c.Kill(ctx, a.AID); err != nil {
			return nil, fmt.Errorf("kill the flooder: %w", err)
		}
		c, caught, err := d.settle(ctx, time.Minute)
		if err != nil {
			return nil, err
		}
		head[f.kind] = map[string]any{
			"alone_p99_ms": round3(alone), "flood_p99_ms": round3(flood),
			"p99_ratio":          math.Round(flood/math.Max(alone, 1e-6)*100) / 100,
			"flooder_rows_per_s": math.Round(float64(rows1-rows0)/span.Seconds()*10) / 10,
			"counters_equal":     caught && c["kernel_denies"] == c["chain_denies"],
			"kernel_denies":      c["kernel_denies"], "chain_denies": c["chain_denies"],
		}
	}
	return map[string]any{"name": "noisy", "iters": iters, "headline": head,
		"notes": "one private coconutd (portable enforcer); victim: one thread timing allowed supervised open()+close() of a file in its bundle, p99 of --iters ops, alone then beside a flooder started 1 s earlier (its on_deny_storm none, except connects_default_storm_policy: the host's default); flooder_rows_per_s: the flooder's chain rows (all types) added while the victim ran, ÷ that time; counters_equal: kernel_denies == chain_denies after the flooder was killed. Goal (issue 19): p99_ratio ≤ 1.5, flooder_rows_per_s ≤ 10. Run: sudo coconut bench noisy --json"}, nil
}

// rowCount counts the chain rows of one agent.
func (d *privateDaemon) rowCount(ctx context.Context, aid uint64) (int, error) {
	n := 0
	q := client.AuditQuery{AID: &aid, Limit: 10000}
	for {
		page, err := d.c.AgentAuditQuery(ctx, q)
		if err != nil {
			return 0, fmt.Errorf("count rows: %w", err)
		}
		n += len(page.Records)
		if page.Next == 0 || len(page.Records) == 0 {
			return n, nil
		}
		q.AfterSeq = page.Next
	}
}
