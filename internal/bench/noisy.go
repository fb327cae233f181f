package bench

import (
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
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
	var probe, kinds string
	cmd := &cobra.Command{
		Use:   "noisy [--iters N] [--kinds K,...]",
		Short: "Victim p99 with a flooding neighbour ÷ alone, per flood kind (denies, connects, allowed opens, forks, API calls, inference)",
		Long: "Starts a private coconutd (portable enforcer) and a victim timing N operations, alone and\n" +
			"then beside a flooder: denied opens (the supervisor), denied connects (the network guard),\n" +
			"allowed opens (the supervisor), forks (fork+exec), API calls, inference requests. The\n" +
			"victim is an agent's supervised open, except for API calls (another caller's API call) and\n" +
			"inference (another agent's inference request). Needs root.",
		Args: usage.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if iters < 100 || iters > 1_000_000 {
				return usage.Errorf("--iters 100..1000000")
			}
			sel, err := noisySelect(kinds)
			if err != nil {
				return err
			}
			if os.Geteuid() != 0 {
				return fmt.Errorf("bench noisy needs root (a private coconutd)")
			}
			res, err := benchNoisy(cmd.Context(), iters, probe, sel)
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(os.Stdout, res)
			}
			head := res["headline"].(map[string]map[string]any)
			for _, k := range sel {
				h := head[k.kind]
				fmt.Printf("%-30s victim %s p99 %.3f ms alone, %.3f ms with the flood: ratio %.2f; flooder %.1f rows/s; counters equal %v\n",
					k.kind, h["victim"], h["alone_p99_ms"], h["flood_p99_ms"], h["p99_ratio"], h["flooder_rows_per_s"], h["counters_equal"])
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&iters, "iters", 20000, "victim opens per measurement")
	cmd.Flags().StringVar(&kinds, "kinds", "", "flood kinds to run, comma-separated (default all: "+strings.Join(noisyKindNames(), ",")+")")
	cmd.Flags().StringVar(&probe, "probe", "", "coconut-enforce-probe binary (default: beside coconut, ../libexec/coconut, PATH)")
	return cmd
}

// noisyKind is one flood: the flooder's bundle and probe arguments, its
// storm policy, and which victim is timed beside it.
type noisyKind struct {
	kind, storm string
	victim      string // "open", "api" or "inference"
	caps        func(n *noisyEnv) []string
	args        func(n *noisyEnv) []string
}

// noisyEnv is what the floods and victims point at.
type noisyEnv struct {
	allowed, denied, addr string
}

const floodCount = "100000000" // ops of a flood: it runs until killed

// noisyKinds are the floods, in the order they run. The first ones have
// their storm policy off (none): they measure fairness, not the storm
// policy stopping them; connects_default_storm_policy has the host's
// default.
var noisyKinds = []noisyKind{
	{kind: "denies", storm: "none", victim: "open",
		caps: func(*noisyEnv) []string { return []string{} },
		args: func(n *noisyEnv) []string { return []string{"deny-open", "--path", n.denied, "--count", floodCount} }},
	{kind: "connects", storm: "none", victim: "open",
		caps: func(*noisyEnv) []string { return []string{} },
		args: func(n *noisyEnv) []string { return []string{"deny-connect", "--addr", n.addr, "--count", floodCount} }},
	{kind: "connects_default_storm_policy", victim: "open",
		caps: func(*noisyEnv) []string { return []string{} },
		args: func(n *noisyEnv) []string { return []string{"deny-connect", "--addr", n.addr, "--count", floodCount} }},
	{kind: "allowed_opens", storm: "none", victim: "open",
		caps: func(n *noisyEnv) []string { return []string{"fs.read:" + n.allowed} },
		args: func(n *noisyEnv) []string { return []string{"flood-open", "--path", n.allowed, "--count", floodCount} }},
	{kind: "forks", storm: "none", victim: "open",
		caps: func(*noisyEnv) []string { return []string{"fs.exec:/usr/bin/true"} },
		args: func(*noisyEnv) []string { return []string{"fork", "--path", "/usr/bin/true", "--count", floodCount} }},
	{kind: "api_calls", storm: "none", victim: "api",
		caps: func(*noisyEnv) []string { return []string{} },
		args: func(*noisyEnv) []string { return []string{"api", "--conns", "8", "--count", floodCount} }},
	{kind: "inference", storm: "none", victim: "inference",
		caps: func(*noisyEnv) []string { return []string{"inference:model=*"} },
		args: func(*noisyEnv) []string { return []string{"infer", "--conns", "16", "--count", floodCount} }},
}

func noisyKindNames() []string {
	var out []string
	for _, k := range noisyKinds {
		out = append(out, k.kind)
	}
	return out
}

// noisySelect parses --kinds ("" is all), keeping the run order.
func noisySelect(list string) ([]noisyKind, error) {
	if list == "" {
		return noisyKinds, nil
	}
	want := map[string]bool{}
	for _, k := range strings.Split(list, ",") {
		k = strings.TrimSpace(k)
		if !slices.Contains(noisyKindNames(), k) {
			return nil, usage.Errorf("--kinds: unknown flood kind %q (want %s)", k, strings.Join(noisyKindNames(), ", "))
		}
		want[k] = true
	}
	var out []noisyKind
	for _, k := range noisyKinds {
		if want[k.kind] {
			out = append(out, k)
		}
	}
	return out, nil
}

// Victims of the API and inference kinds time fewer, slower operations.
const (
	apiVictimOps   = 2000
	inferVictimOps = 300
)

func benchNoisy(ctx context.Context, iters int, probe string, kinds []noisyKind) (map[string]any, error) {
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
	env := &noisyEnv{allowed: filepath.Join(dir, "allowed"), denied: filepath.Join(dir, "denied")}
	for _, p := range []string{env.allowed, env.denied} {
		if err := os.WriteFile(p, []byte("x\n"), 0o644); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	env.addr = ln.Addr().String()

	// probeVictim runs a victim agent and returns the p99 of its ops that
	// succeeded, and how many failed by errno (or HTTP status): a victim
	// refused beside a flood is a result, reported, not an error.
	probeVictim := func(name string, caps, args []string, op string) (float64, map[string]int, error) {
		_, logs, err := d.runAgent(ctx, api.RunRequest{Name: name, Workdir: "/", Caps: caps, Command: append([]string{probe}, args...)}, 5*time.Minute)
		if err != nil {
			return 0, nil, fmt.Errorf("victim: %v (log: %s)", err, tail(logs))
		}
		r, err := parseProbe(logs, op)
		if err != nil {
			return 0, nil, err
		}
		ms := make([]float64, 0, len(r.Dur))
		failed := map[string]int{}
		for i, dur := range r.Dur {
			if r.Errno[i] != 0 {
				failed[strconv.Itoa(r.Errno[i])]++
				continue
			}
			ms = append(ms, float64(dur)/1e6)
		}
		if len(ms) == 0 {
			return 0, nil, fmt.Errorf("victim %s: all %d ops failed: %v", name, len(r.Dur), failed)
		}
		return pctl(ms, 99), failed, nil
	}
	victims := map[string]func(name string) (float64, map[string]int, error){
		"open": func(name string) (float64, map[string]int, error) {
			return probeVictim(name, []string{"fs.read:" + env.allowed},
				[]string{"loop", "--path", env.allowed, "--iters", strconv.Itoa(iters), "--ready", "0", "--after-deny", strconv.Itoa(iters)}, "loop")
		},
		"inference": func(name string) (float64, map[string]int, error) {
			return probeVictim(name, []string{"inference:model=*"}, []string{"infer-loop", "--iters", strconv.Itoa(inferVictimOps)}, "infer-loop")
		},
		// Another caller of the API: this process (root, not an agent).
		"api": func(string) (float64, map[string]int, error) {
			ms := make([]float64, 0, apiVictimOps)
			for range apiVictimOps {
				t := time.Now()
				if _, err := d.c.Agents(ctx, false); err != nil {
					return 0, nil, fmt.Errorf("victim API call: %w", err)
				}
				ms = append(ms, float64(time.Since(t).Nanoseconds())/1e6)
			}
			return pctl(ms, 99), map[string]int{}, nil
		},
	}
	head := map[string]map[string]any{}
	for _, f := range kinds {
		name := strings.ReplaceAll(f.kind, "_", "-")
		victim := victims[f.victim]
		alone, aloneFailed, err := victim("victim-alone-" + name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.kind, err)
		}
		a, err := d.c.AgentRun(ctx, api.RunRequest{Name: "flood-" + name, Workdir: "/", Caps: f.caps(env), OnDenyStorm: f.storm,
			Command: append([]string{probe}, f.args(env)...)})
		if err != nil {
			return nil, fmt.Errorf("%s: flooder: %w", f.kind, err)
		}
		time.Sleep(time.Second) // past its first rows
		rows0, _, err := d.rowCount(ctx, a.AID, 0)
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		flood, floodFailed, err := victim("victim-flood-" + name)
		if err != nil {
			d.c.Kill(ctx, a.AID)
			return nil, fmt.Errorf("%s: %w", f.kind, err)
		}
		rows1, byType, err := d.rowCount(ctx, a.AID, rows0)
		if err != nil {
			return nil, err
		}
		span := time.Since(t0)
		fl, err := d.c.Agent(ctx, a.AID)
		if err != nil {
			return nil, err
		}
		if _, err := d.c.Kill(ctx, a.AID); err != nil {
			return nil, fmt.Errorf("kill the flooder: %w", err)
		}
		c, caught, err := d.settle(ctx, time.Minute)
		if err != nil {
			return nil, err
		}
		// Alone again, after: on a shared machine the load drifts, so the
		// baseline brackets the flood (the mean of before and after).
		after, afterFailed, err := victim("victim-after-" + name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.kind, err)
		}
		for k, v := range afterFailed {
			aloneFailed[k] += v
		}
		before := alone
		alone = (before + after) / 2
		head[f.kind] = map[string]any{
			"victim":       f.victim,
			"alone_p99_ms": round3(alone), "flood_p99_ms": round3(flood),
			"alone_before_p99_ms": round3(before), "alone_after_p99_ms": round3(after),
			"p99_ratio":            math.Round(flood/math.Max(alone, 1e-6)*100) / 100,
			"flooder_rows_per_s":   math.Round(float64(rows1-rows0)/span.Seconds()*10) / 10,
			"victim_failed":        map[string]any{"alone": aloneFailed, "flood": floodFailed},
			"flooder_rows_by_type": byType,
			"flooder_state":        fl.State, // still flooding (Active), or stopped by its storm policy
			"counters_equal":       caught && c["kernel_denies"] == c["chain_denies"],
			"kernel_denies":        c["kernel_denies"], "chain_denies": c["chain_denies"],
		}
	}
	return map[string]any{"name": "noisy", "iters": iters, "headline": head,
		"notes": "one private coconutd (portable enforcer); per flood kind, a victim timed alone, then beside a flooder agent started 1 s earlier, then alone again once the flooder was killed (alone_p99_ms: the mean of alone_before_p99_ms and alone_after_p99_ms) (its on_deny_storm none, except connects_default_storm_policy: the host's default). Victim open: an agent's allowed supervised open()+close() of a file in its bundle, p99 of --iters ops; victim api: this process (root, not an agent) timing GET /v1/agents, p99 of 2000; victim inference: an agent's sequential 1-token chat completions through the broker (simulated backend), p99 of 300. Floods: denies (denied opens), connects (denied TCP connects), allowed_opens (allowed supervised opens), forks (fork+exec+wait of /usr/bin/true), api_calls (GET /v1/agents from 8 connections), inference (1-token completions from 16 connections). victim p99 over its ops that succeeded; victim_failed: its failed ops by errno or HTTP status (alone, flood). flooder_rows_per_s: the flooder's chain rows (all types) added while the victim ran, ÷ that time (flooder_rows_by_type: those rows by type); counters_equal: kernel_denies == chain_denies after the flooder was killed. Goal (issue 19): p99_ratio ≤ 1.5, flooder_rows_per_s ≤ 10. Run: sudo coconut bench noisy --json [--kinds K,...]"}, nil
}

// rowCount counts the chain rows of one agent, and by type those past
// the first skip of them.
func (d *privateDaemon) rowCount(ctx context.Context, aid uint64, skip int) (int, map[string]int, error) {
	n, byType := 0, map[string]int{}
	q := client.AuditQuery{AID: &aid, Limit: 10000}
	for {
		page, err := d.c.AgentAuditQuery(ctx, q)
		if err != nil {
			return 0, nil, fmt.Errorf("count rows: %w", err)
		}
		for _, r := range page.Records {
			if n >= skip {
				byType[r.Type]++
			}
			n++
		}
		if page.Next == 0 || len(page.Records) == 0 {
			return n, byType, nil
		}
		q.AfterSeq = page.Next
	}
}
