package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/manifest"
	"github.com/coconut-os/coconut/internal/state"
	"github.com/coconut-os/coconut/internal/usage"
)

// Command is `coconut bench`, mounted by internal/cli. socket and asJSON
// are the root command's --socket and --json, read when a benchmark runs.
func Command(socket *string, asJSON *bool) *cobra.Command {
	g := &globals{socket: socket, asJSON: asJSON}
	cmd := &cobra.Command{Use: "bench NAME", Short: "Run a benchmark and print a table (--json: one object with a headline)"}
	var runs int
	var workload string
	spawn := &cobra.Command{
		Use:   "spawn [--runs N] [--manifest NAME|FILE]",
		Short: "Time from spawn to all agents Active (median, max), and daemon memory per running agent",
		Args:  usage.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runs < 1 || runs > 1000 {
				return usage.Errorf("--runs must be 1..1000")
			}
			return benchSpawn(cmd, g, workload, runs)
		},
	}
	spawn.Flags().IntVar(&runs, "runs", 10, "how many spawns")
	spawn.Flags().StringVar(&workload, "manifest", "dream-team", "signed manifest to spawn")
	cmd.AddCommand(spawn)
	cmd.AddCommand(benchQuotaCmd(g))
	cmd.AddCommand(benchAuditCmd(g))
	cmd.AddCommand(benchEnforceCmd(g))
	cmd.AddCommand(benchBrokerCmd(g))
	cmd.AddCommand(benchCenterCmd(g)) // issue 13: center.go
	cmd.AddCommand(benchNotifyCmd(g)) // issue 13
	cmd.AddCommand(benchAuditScaleCmd(g))
	cmd.AddCommand(benchNoisyCmd(g)) // issue 19
	return cmd
}

// rssKiB reads a process's resident set size.
func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		}
	}
	return 0, errors.New("no VmRSS")
}

func benchSpawn(cmd *cobra.Command, g *globals, workload string, runs int) error {
	ctx := cmd.Context()
	c := g.client()
	path, err := manifest.Find(workload)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	sig, err := os.ReadFile(path + ".sig")
	if errors.Is(err, os.ErrNotExist) {
		sig, err = signThrowaway(cmd, g, path, data)
	}
	if err != nil {
		return fmt.Errorf("%s.sig: %w (sign the manifest first: coconut manifest sign %s --key PREFIX.key)", path, err, path)
	}
	doc, err := c.Doctor(ctx)
	if err != nil {
		return err
	}
	var ms []float64
	var perAgent float64
	var rssTeam, rssEnd int64
	n := 0
	idle, err := rssKiB(doc.PID)
	if err != nil {
		return fmt.Errorf("daemon memory: %w", err)
	}
	for i := 0; i < runs; i++ {
		t0 := time.Now()
		agents, err := c.AgentSpawn(ctx, api.SpawnRequest{File: filepath.Base(path), Manifest: data, Signature: sig})
		el := time.Since(t0)
		if err != nil {
			return err
		}
		for _, a := range agents {
			if !reachedActive(state.State(a.State)) {
				return fmt.Errorf("agent %d is %s after spawn returned: %s", a.AID, a.State, a.Reason)
			}
		}
		n = len(agents)
		ms = append(ms, float64(el.Microseconds())/1000)
		if i == 0 {
			// The first team's growth over the idle daemon: later runs
			// reuse memory the runtime already holds, which hides it.
			if rssTeam, err = rssKiB(doc.PID); err == nil {
				perAgent = float64(rssTeam-idle) / float64(len(agents))
			}
		}
		for _, a := range agents {
			if _, err := c.Kill(ctx, a.AID); err != nil {
				return err
			}
		}
	}
	rssEnd, _ = rssKiB(doc.PID)
	sort.Float64s(ms)
	median := func(v []float64) float64 {
		if len(v) == 0 {
			return 0
		}
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	head := map[string]float64{
		"team_ms_median":       round(median(ms)),
		"team_ms_max":          round(ms[len(ms)-1]),
		"daemon_kib_per_agent": round(perAgent),
	}
	if g.json() {
		return printJSON(os.Stdout, map[string]any{"name": "spawn", "agents": n, "runs": runs, "team_ms": ms,
			"daemon_rss_kib": map[string]int64{"idle": idle, "first_team": rssTeam, "after_runs": rssEnd}, "headline": head})
	}
	tw := table(os.Stdout)
	fmt.Fprintf(tw, "spawn %s: %d agents, %d runs\n", workload, n, runs)
	fmt.Fprintf(tw, "to all Active, median\t%.1f ms\n", head["team_ms_median"])
	fmt.Fprintf(tw, "to all Active, min\t%.1f ms\n", ms[0])
	fmt.Fprintf(tw, "to all Active, max\t%.1f ms\n", head["team_ms_max"])
	fmt.Fprintf(tw, "daemon RSS idle / with the first team / after all runs\t%d / %d / %d KiB\n", idle, rssTeam, rssEnd)
	fmt.Fprintf(tw, "daemon RSS per running agent (first team)\t%.0f KiB\n", head["daemon_kib_per_agent"])
	return tw.Flush()
}

func round(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }
