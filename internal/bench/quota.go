package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/client"
	"github.com/coconut-os/coconut/internal/usage"
)

// benchQuota is `coconut bench quota`: the two figures of issue 5, each
// measured beside its baseline in the same run, with real agents.
func benchQuotaCmd(g *globals) *cobra.Command {
	var window time.Duration
	var units int
	cmd := &cobra.Command{
		Use:   "quota [--window 5s] [--units 150]",
		Short: "CPU share of 4 agents (one an 8-thread flooder) as Jain's index vs. no coconut; light agents' p99 under a CPU and a memory flooder",
		Args:  usage.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if window < time.Second || window > 5*time.Minute {
				return usage.Errorf("--window must be 1s..5m")
			}
			if units < 20 || units > 100000 {
				return usage.Errorf("--units must be 20..100000")
			}
			burn, err := findBurn()
			if err != nil {
				return err
			}
			b := &quotaBench{c: g.client(), burn: burn, window: window, units: units}
			return b.run(cmd.Context(), g.json())
		},
	}
	cmd.Flags().DurationVar(&window, "window", 5*time.Second, "how long CPU shares are measured")
	cmd.Flags().IntVar(&units, "units", 150, "units of work per light agent per latency phase")
	return cmd
}

// findBurn finds coconut-burn beside this binary, in ../libexec/coconut,
// or on PATH.
func findBurn() (string, error) {
	if self, err := os.Executable(); err == nil {
		dir := filepath.Dir(self)
		for _, p := range []string{filepath.Join(dir, "coconut-burn"), filepath.Join(dir, "../libexec/coconut/coconut-burn")} {
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				return filepath.Clean(p), nil
			}
		}
	}
	if p, err := exec.LookPath("coconut-burn"); err == nil {
		return filepath.Abs(p)
	}
	return "", errors.New("coconut-burn not found beside coconut, in ../libexec/coconut or on PATH (go build -o bin/ ./internal/bench/loads/coconut-burn)")
}

type quotaBench struct {
	c      *client.Client
	burn   string
	window time.Duration
	units  int
	aids   []uint64 // every agent started, killed at the end
}

func (b *quotaBench) spawn(ctx context.Context, name string, args ...string) (uint64, error) {
	return b.spawnWith(ctx, nil, name, args...)
}

// spawnWith starts an agent whose budget q is in force from its first
// instruction (nil: none).
func (b *quotaBench) spawnWith(ctx context.Context, q *api.QuotaBudget, name string, args ...string) (uint64, error) {
	a, err := b.c.AgentRun(ctx, api.RunRequest{Name: name, Class: "bench-quota", Workdir: "/", Command: append([]string{b.burn}, args...), Quota: q})
	if err != nil {
		return 0, fmt.Errorf("spawn %s: %w", name, err)
	}
	b.aids = append(b.aids, a.AID)
	return a.AID, nil
}

func (b *quotaBench) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, aid := range b.aids {
		if a, err := b.c.Agent(ctx, aid); err == nil && !strings.HasPrefix(a.State, "Terminated") {
			b.c.Kill(ctx, aid)
		}
	}
	b.aids = nil
}

func (b *quotaBench) run(ctx context.Context, asJSON bool) error {
	defer b.cleanup()
	names := []string{"flooder-8-threads", "one-thread-a", "one-thread-b", "one-thread-c"}
	threads := []string{"8", "1", "1", "1"}

	shares, err := b.shareCoconut(ctx, names, threads)
	if err != nil {
		return err
	}
	base, err := b.shareBaseline(threads)
	if err != nil {
		return err
	}
	iters, err := calibrateBurn(b.burn)
	if err != nil {
		return err
	}
	quiet, _, err := b.latency(ctx, iters, "")
	if err != nil {
		return err
	}
	cpu, _, err := b.latency(ctx, iters, "cpu")
	if err != nil {
		return err
	}
	mem, memNote, err := b.latency(ctx, iters, "mem")
	if err != nil {
		return err
	}
	head := map[string]float64{
		"jain":              round3(jain(shares)),
		"baseline_jain":     round3(jain(base)),
		"latency_ratio":     round3(cpu.p99 / quiet.p99),
		"mem_latency_ratio": round3(mem.p99 / quiet.p99),
		"light_killed":      float64(cpu.killed + mem.killed),
	}
	if asJSON {
		return printJSON(os.Stdout, map[string]any{
			"name": "quota", "agents": names, "threads": threads, "window_s": b.window.Seconds(),
			"share": shares, "baseline_share": base, "unit_iters": iters,
			"p99_us":      map[string]float64{"quiet": quiet.p99, "cpu_flooder": cpu.p99, "mem_flooder": mem.p99},
			"p50_us":      map[string]float64{"quiet": quiet.p50, "cpu_flooder": cpu.p50, "mem_flooder": mem.p50},
			"mem_flooder": memNote, "headline": head,
		})
	}
	tw := table(os.Stdout)
	fmt.Fprintf(tw, "CPU share over %v, 4 agents of equal weight on %d CPUs\tcoconut\tno coconut (one cgroup)\n", b.window, runtime.NumCPU())
	for i, n := range names {
		fmt.Fprintf(tw, "  %s\t%.3f\t%.3f\n", n, shares[i], base[i])
	}
	fmt.Fprintf(tw, "Jain's index (1 = fair)\t%.3f\t%.3f\n", head["jain"], head["baseline_jain"])
	fmt.Fprintf(tw, "light agents, one unit ≈ 2 ms CPU then 20 ms sleep\tp50\tp99\n")
	fmt.Fprintf(tw, "  no flooder\t%.0f µs\t%.0f µs\n", quiet.p50, quiet.p99)
	fmt.Fprintf(tw, "  8-thread CPU flooder\t%.0f µs\t%.0f µs\n", cpu.p50, cpu.p99)
	fmt.Fprintf(tw, "  memory flooder\t%.0f µs\t%.0f µs\n", mem.p50, mem.p99)
	fmt.Fprintf(tw, "p99 ratio, CPU flooder / memory flooder\t%.2f×\t%.2f×\n", head["latency_ratio"], head["mem_latency_ratio"])
	fmt.Fprintf(tw, "light agents killed\t%d\t\n", int(head["light_killed"]))
	fmt.Fprintf(tw, "memory flooder\t%s\t\n", memNote)
	return tw.Flush()
}

// shareCoconut runs the four spinners as agents and reads each one's CPU
// time from its cgroup over the window.
func (b *quotaBench) shareCoconut(ctx context.Context, names, threads []string) ([]float64, error) {
	defer b.cleanup()
	aids := make([]uint64, len(names))
	for i := range names {
		aid, err := b.spawn(ctx, names[i], "spin", "--threads", threads[i])
		if err != nil {
			return nil, err
		}
		aids[i] = aid
	}
	read := func() ([]float64, error) {
		out := make([]float64, len(aids))
		for i, aid := range aids {
			q, err := b.c.AgentQuota(ctx, aid, nil)
			if err != nil {
				return nil, err
			}
			out[i] = float64(q.Usage.CPUUsec)
		}
		return out, nil
	}
	time.Sleep(time.Second) // every thread started and the scheduler settled
	t0, err := read()
	if err != nil {
		return nil, err
	}
	time.Sleep(b.window)
	t1, err := read()
	if err != nil {
		return nil, err
	}
	return normalize(t0, t1), nil
}

// shareBaseline runs the same spinners as plain processes in this
// command's own cgroup, reading /proc/PID/stat.
func (b *quotaBench) shareBaseline(threads []string) ([]float64, error) {
	var cmds []*exec.Cmd
	defer func() {
		for _, c := range cmds {
			c.Process.Kill()
			c.Wait()
		}
	}()
	for _, n := range threads {
		c := exec.Command(b.burn, "spin", "--threads", n)
		if err := c.Start(); err != nil {
			return nil, fmt.Errorf("start baseline spinner: %w", err)
		}
		cmds = append(cmds, c)
	}
	read := func() ([]float64, error) {
		out := make([]float64, len(cmds))
		for i, c := range cmds {
			t, err := procCPUTicks(c.Process.Pid)
			if err != nil {
				return nil, err
			}
			out[i] = t
		}
		return out, nil
	}
	time.Sleep(time.Second)
	t0, err := read()
	if err != nil {
		return nil, err
	}
	time.Sleep(b.window)
	t1, err := read()
	if err != nil {
		return nil, err
	}
	return normalize(t0, t1), nil
}

// procCPUTicks is utime+stime of a process (all its threads).
func procCPUTicks(pid int) (float64, error) {
	s, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(s, ')')
	f := strings.Fields(string(s[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	k, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	return u + k, nil
}

func normalize(t0, t1 []float64) []float64 {
	out := make([]float64, len(t0))
	total := 0.0
	for i := range t0 {
		out[i] = t1[i] - t0[i]
		total += out[i]
	}
	for i := range out {
		if total > 0 {
			out[i] = round3(out[i] / total)
		}
	}
	return out
}

// jain is Jain's fairness index: (Σx)² / (n·Σx²), 1 when all are equal.
func jain(x []float64) float64 {
	var s, s2 float64
	for _, v := range x {
		s += v
		s2 += v * v
	}
	if s2 == 0 {
		return 0
	}
	return s * s / (float64(len(x)) * s2)
}

func calibrateBurn(burn string) (int, error) {
	out, err := exec.Command(burn, "calibrate", "--work", "2ms").Output()
	if err != nil {
		return 0, fmt.Errorf("calibrate coconut-burn: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || n < 1 {
		return 0, fmt.Errorf("calibrate coconut-burn: %q", out)
	}
	return n, nil
}

type latencies struct {
	p50, p99 float64
	killed   int
}

// latency runs three light agents (a fixed unit of work, then sleep) beside
// flooder "" (none), "cpu" (8 spinning threads) or "mem" (grows past a
// 512 MiB memory max until the kernel OOM-kills it inside its cgroup,
// then is spawned again).
func (b *quotaBench) latency(ctx context.Context, iters int, flooder string) (latencies, string, error) {
	defer b.cleanup()
	var res latencies
	var flood uint64
	var err error
	spawnMem := func() (uint64, error) {
		// The limit is part of the spawn: set after it, the flooder
		// would already have grown past it.
		return b.spawnWith(ctx, &api.QuotaBudget{MemoryMax: 512 << 20}, "mem-flooder", "mem", "--step", "32M", "--max", "2G")
	}
	switch flooder {
	case "cpu":
		flood, err = b.spawn(ctx, "cpu-flooder", "spin", "--threads", "8")
	case "mem":
		flood, err = spawnMem()
	}
	if err != nil {
		return res, "", err
	}
	time.Sleep(300 * time.Millisecond)
	var light []uint64
	for i := 0; i < 3; i++ {
		aid, err := b.spawn(ctx, fmt.Sprintf("light-%d", i), "unit", "--iters", strconv.Itoa(iters),
			"--sleep", "20ms", "--count", strconv.Itoa(b.units))
		if err != nil {
			return res, "", err
		}
		light = append(light, aid)
	}
	ooms, respawns := 0, 0
	var all []float64
	for _, aid := range light {
		for {
			a, err := b.c.Agent(ctx, aid)
			if err != nil {
				return res, "", err
			}
			if strings.HasPrefix(a.State, "Terminated") {
				if a.State != "Terminated-clean" {
					res.killed++
					break
				}
				var buf bytes.Buffer
				if err := b.c.Logs(ctx, aid, &buf); err != nil {
					return res, "", err
				}
				var out struct {
					Lat []float64 `json:"lat_us"`
				}
				if err := json.Unmarshal(bytes.TrimSpace(buf.Bytes()), &out); err != nil {
					return res, "", fmt.Errorf("agent %d output %q: %w", aid, buf.String(), err)
				}
				all = append(all, out.Lat...)
				break
			}
			if flooder == "mem" && flood != 0 {
				if f, err := b.c.Agent(ctx, flood); err == nil && strings.HasPrefix(f.State, "Terminated") {
					if strings.Contains(f.Reason, "out of memory") {
						ooms++
					}
					respawns++
					if flood, err = spawnMem(); err != nil {
						return res, "", err
					}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if len(all) == 0 {
		return res, "", errors.New("no light agent finished")
	}
	sort.Float64s(all)
	res.p50 = all[len(all)/2]
	res.p99 = all[int(math.Ceil(0.99*float64(len(all))))-1]
	note := ""
	if flooder == "mem" {
		note = fmt.Sprintf("512 MiB max, grew toward 2 GiB: OOM-killed inside its cgroup %d time(s), respawned %d", ooms, respawns)
	}
	return res, note, nil
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }
