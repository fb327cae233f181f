package bench

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/spf13/cobra"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/client"
	"github.com/coconut-os/coconut/internal/usage"
)

// benchCenterCmd is `coconut bench center`: how fast a deny reaches an
// open Center page, and what an open page costs coconutd while rows flow.
func benchCenterCmd(g *globals) *cobra.Command {
	var o centerBenchOpts
	cmd := &cobra.Command{
		Use:   "center [--samples N] [--rate R] [--window D]",
		Short: "Deny → row shown in an open Center page (p50, p99), and coconutd's CPU with a page open against none while R rows/s flow",
		Long: "Starts a private coconutd with the Center (and the portable enforcer) in a temporary directory and\n" +
			"headless Chromium (Debian's chromium). First an agent makes N denied opens at 20 a second while the\n" +
			"audit feed is open: each row's latency is the moment the page inserted it minus the row's time (the\n" +
			"daemon stamps it when it appends the row, right after the deny). Then an agent makes R denied opens a\n" +
			"second; coconutd's CPU (utime+stime) is measured over --window without a page, with the audit feed\n" +
			"open (live, every row), and without again; the ratio is page ÷ the mean of the two without. The\n" +
			"page's responsiveness is the largest timer lag seen in it during the loaded window.",
		Args: usage.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.samples < 10 || o.rate < 1 || o.window < time.Second {
				return usage.Errorf("bench center: --samples ≥ 10, --rate ≥ 1, --window ≥ 1s")
			}
			return benchCenter(cmd.Context(), g, o)
		},
	}
	cmd.Flags().IntVar(&o.samples, "samples", 200, "denies timed one by one")
	cmd.Flags().Float64Var(&o.rate, "rate", 1000, "rows a second in the load phase")
	cmd.Flags().DurationVar(&o.window, "window", 10*time.Second, "each CPU measurement's length")
	return cmd
}

type centerBenchOpts struct {
	samples int
	rate    float64
	window  time.Duration
}

// centerBench is the --json output.
type centerBench struct {
	Headline map[string]float64 `json:"headline"`
	Latency  []float64          `json:"latency_ms"` // each timed deny, in seq order
	CPU      map[string]float64 `json:"cpu_percent"`
	Rows     map[string]float64 `json:"rows_per_s"`
	Chromium string             `json:"chromium"`
}

func benchCenter(ctx context.Context, g *globals, o centerBenchOpts) error {
	coconutd, err := findBeside("coconutd")
	if err != nil {
		return err
	}
	probe, err := findBeside("coconut-enforce-probe")
	if err != nil {
		return err
	}
	chrome := ""
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(n); err == nil {
			chrome = p
			break
		}
	}
	if chrome == "" {
		return fmt.Errorf("bench center needs chromium (apt-get install chromium)")
	}
	dir, err := os.MkdirTemp("", "coconut-bench-center-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	d, err := startDaemon(ctx, coconutd, dir, "--center-addr", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer d.stop()
	// The agents run the probe as an unprivileged user: it must be
	// reachable from here.
	bin := filepath.Join(dir, "coconut-enforce-probe")
	if b, err := os.ReadFile(probe); err != nil || os.WriteFile(bin, b, 0o755) != nil {
		return fmt.Errorf("copy the probe: %v", err)
	}
	// The denied file exists (a missing one is ENOENT, not a deny).
	forbidden := filepath.Join(dir, "forbidden")
	if err := os.WriteFile(forbidden, []byte("not yours\n"), 0o644); err != nil {
		return err
	}
	link, err := d.c.CenterLogin(ctx, "/audit")
	if err != nil {
		return err
	}
	origin := link.URL[:strings.Index(link.URL, "/login")]

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.WindowSize(1280, 900))
	actx, cancelA := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	if err := chromedp.Do(bctx, chromedp.Navigate(link.URL)); err != nil {
		return fmt.Errorf("chromium: %w", err)
	}
	version, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`navigator.userAgent`))
	// The login lands under the session's own path, /s/PATH/, where its
	// pages live (the cookie is scoped to it).
	session, err := chromedp.Run(bctx, chromedp.Evaluate[string](`new URL(".", location.href).pathname`))
	if err != nil || !strings.HasPrefix(session, "/s/") {
		return fmt.Errorf("the Center's login landed on %q: %v", session, err)
	}
	open := func(path string) error {
		if err := chromedp.Do(bctx, chromedp.Navigate(origin+session+strings.TrimPrefix(path, "/"))); err != nil {
			return err
		}
		return pollJS(bctx, `document.querySelector("#live.on") !== null`, 20*time.Second)
	}
	deny := func(name string, count int, rate float64) (uint64, error) {
		a, err := d.c.AgentRun(ctx, api.RunRequest{Name: name, Workdir: "/", Command: []string{bin, "deny-open",
			"--path", forbidden, "--count", strconv.Itoa(count), "--rate", strconv.FormatFloat(rate, 'f', -1, 64)}})
		if err != nil {
			return 0, err
		}
		return a.AID, nil
	}

	// 1. Latency: denies one by one into an open audit feed.
	if err := open("/audit?result=deny"); err != nil {
		return err
	}
	aid, err := deny("timed", o.samples, 20)
	if err != nil {
		return err
	}
	if _, err := d.waitEnd(ctx, aid, time.Duration(o.samples)*time.Second/5+time.Minute); err != nil {
		return err
	}
	sleepCtx(ctx, time.Second) // the last rows' frame
	lat, err := shownLatency(ctx, bctx, d.c, aid)
	if err != nil {
		return err
	}
	if len(lat) < o.samples*9/10 {
		return fmt.Errorf("only %d of %d deny rows reached the page", len(lat), o.samples)
	}

	// 2. Load: R rows a second; coconutd's CPU without a page, with the
	// live feed open, and without again.
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		return err
	}
	pid := d.cmd.Process.Pid
	total := int(o.rate*(3*o.window.Seconds()+15)) + 1000
	flood, err := deny("flood", total, o.rate)
	if err != nil {
		return err
	}
	defer d.c.Kill(context.Background(), flood)
	sleepCtx(ctx, 2*time.Second) // the flood reaches its pace
	cpuA1, rowsA1, err := cpuOver(ctx, d.c, pid, o.window)
	if err != nil {
		return err
	}
	if err := open("/audit"); err != nil {
		return err
	}
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[bool](lagProbe)); err != nil {
		return err
	}
	cpuB, rowsB, err := cpuOver(ctx, d.c, pid, o.window)
	if err != nil {
		return err
	}
	lag, err := chromedp.Run(bctx, chromedp.Evaluate[float64](`window.__lagMax`))
	if err != nil {
		return err
	}
	loaded, err := shownLatency(ctx, bctx, d.c, flood)
	if err != nil {
		return err
	}
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		return err
	}
	cpuA2, rowsA2, err := cpuOver(ctx, d.c, pid, o.window)
	if err != nil {
		return err
	}
	none := (cpuA1 + cpuA2) / 2
	res := centerBench{
		Latency:  lat,
		CPU:      map[string]float64{"no_page_1": round(cpuA1), "page": round(cpuB), "no_page_2": round(cpuA2)},
		Rows:     map[string]float64{"no_page_1": round(rowsA1), "page": round(rowsB), "no_page_2": round(rowsA2)},
		Chromium: version,
		Headline: map[string]float64{
			"deny_row_p50_ms":        round(percentile(lat, 50)),
			"deny_row_p99_ms":        round(percentile(lat, 99)),
			"loaded_deny_row_p99_ms": round(percentile(loaded, 99)),
			"cpu_ratio":              math.Round(cpuB/math.Max(none, 0.1)*100) / 100,
			"cpu_per_row_ratio":      math.Round(perRow(cpuB, rowsB)/perRow(none, (rowsA1+rowsA2)/2)*100) / 100,
			"cpu_percent_no_page":    round(none),
			"cpu_percent_page":       round(cpuB),
			"rows_per_s":             round(rowsB),
			"rows_per_s_no_page":     round((rowsA1 + rowsA2) / 2),
			"page_lag_max_ms":        round(lag),
		},
	}
	if g.json() {
		return printJSON(os.Stdout, res)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "deny → row in an open page\tp50 %.1f ms\tp99 %.1f ms\t(%d denies at 20/s)\n", res.Headline["deny_row_p50_ms"], res.Headline["deny_row_p99_ms"], len(lat))
	fmt.Fprintf(w, "  the same under load\tp99 %.1f ms\t\t(%d rows shown)\n", res.Headline["loaded_deny_row_p99_ms"], len(loaded))
	fmt.Fprintf(w, "coconutd CPU\tno page %.1f%% at %.0f rows/s\tpage open %.1f%% at %.0f rows/s\tratio %.2f, per row %.2f\n",
		none, res.Headline["rows_per_s_no_page"], cpuB, rowsB, res.Headline["cpu_ratio"], res.Headline["cpu_per_row_ratio"])
	fmt.Fprintf(w, "page timer lag, worst\t%.0f ms\n", lag)
	return w.Flush()
}

// perRow is CPU percent per row a second: when the machine cannot keep
// the asked rate, the two sides of the ratio are compared per row.
func perRow(cpu, rows float64) float64 { return cpu / math.Max(rows, 1) }

// lagProbe records the page's worst timer lag: how late a 50 ms interval
// fires is how long the page was too busy to respond.
const lagProbe = `(() => { window.__lagMax = 0; let last = performance.now();
  setInterval(() => { const n = performance.now(); window.__lagMax = Math.max(window.__lagMax, n - last - 50); last = n; }, 50); return true; })()`

// shownLatency pairs the page's insertion times (window.__coconutShown,
// ms since the epoch) with the rows' times from the chain.
func shownLatency(ctx, bctx context.Context, c *client.Client, aid uint64) ([]float64, error) {
	shown, err := chromedp.Run(bctx, chromedp.Evaluate[map[string]float64](`window.__coconutShown || {}`))
	if err != nil {
		return nil, err
	}
	var out []float64
	q := client.AuditQuery{AID: &aid, Result: "deny", Limit: 10000}
	for {
		page, err := c.AgentAuditQuery(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, r := range page.Records {
			if t, ok := shown[strconv.FormatUint(r.Seq, 10)]; ok {
				out = append(out, t-float64(r.Time.UnixNano())/1e6)
			}
		}
		if page.Next == 0 {
			break
		}
		q.AfterSeq = page.Next
	}
	return out, nil
}

// cpuOver measures pid's CPU (all threads, % of one CPU) and the chain's
// rows per second over d.
func cpuOver(ctx context.Context, c *client.Client, pid int, d time.Duration) (float64, float64, error) {
	doc0, err := c.Doctor(ctx)
	if err != nil {
		return 0, 0, err
	}
	t0, c0, err := procCPU(pid)
	if err != nil {
		return 0, 0, err
	}
	if err := sleepCtx(ctx, d); err != nil {
		return 0, 0, err
	}
	t1, c1, err := procCPU(pid)
	if err != nil {
		return 0, 0, err
	}
	doc1, err := c.Doctor(ctx)
	if err != nil {
		return 0, 0, err
	}
	el := t1.Sub(t0).Seconds()
	return 100 * (c1 - c0) / el, float64(doc1.ChainHead-doc0.ChainHead) / el, nil
}

// procCPU reads utime+stime of pid in seconds.
func procCPU(pid int) (time.Time, float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return time.Time{}, 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return time.Now(), (ut + st) / 100, nil // USER_HZ is 100 on Linux
}

func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// pollJS waits for a JavaScript predicate in the page.
func pollJS(ctx context.Context, js string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+js+")")); err == nil && ok {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("page: %s not within %v", js, d)
}
