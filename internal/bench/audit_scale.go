package bench

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/usage"
)

// bench audit-scale (issue 17.2): the on-disk query index at a chain of
// --rows rows. A child process appends the rows with the index on (as
// coconutd does) and reports its resident memory as the chain grows; it is
// then killed with SIGKILL, and the parent times Open after the kill, the
// index's catch-up, and a page of 100 rows by aid, type, capability,
// result and time.
func benchAuditScaleCmd(g *globals) *cobra.Command {
	var dir string
	var rows int
	cmd := &cobra.Command{
		Use:   "audit-scale [--rows N] [--dir DIR]",
		Short: "On-disk query index at scale: memory while appending, start after kill -9, query p99 per filter",
		Args:  usage.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if rows < 100_000 {
				return usage.Errorf("--rows must be at least 100000 (each of the 1000 agents needs a page of 100 rows)")
			}
			return benchAuditScale(cmd.Context(), g, dir, rows)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "/var/tmp", "make the temporary chain under this directory (on the disk to measure)")
	cmd.Flags().IntVar(&rows, "rows", 10_000_000, "rows in the chain")
	writer := &cobra.Command{
		Use: "audit-scale-writer DIR ROWS", Hidden: true, Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[1])
			if err != nil {
				return usage.Errorf("rows: %v", err)
			}
			return scaleWriter(cmd.Context(), args[0], n)
		},
	}
	cmd.AddCommand(writer)
	return cmd
}

// scaleRecord varies every indexed field: 1000 agents, 8 types, 4
// capabilities, 2 results, one second of time per 1000 rows.
func scaleRecord(i int, t0 time.Time) audit.Record {
	r := benchRecord(i)
	r.Type = []string{"fs.open", "fs.exec", "net.connect", "agent.spawn", "agent.state", "cap.grant", "infer.call", "tool.call"}[i%8]
	r.Cap = []string{"fs.read", "fs.write", "net.connect", "exec"}[i/7%4]
	r.Result = []string{audit.ResultAllow, audit.ResultDeny}[i/3%2]
	r.Time = t0.Add(time.Duration(i) * time.Millisecond)
	return r
}

var scaleT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// scaleWriter is the child: it appends rows and prints "rss ROWS ANON_KIB
// FILE_KIB" lines, then "appended ROWS SECONDS", then waits to be killed.
func scaleWriter(ctx context.Context, dir string, rows int) error {
	c, err := audit.Open(filepath.Join(dir, "chain"), audit.Options{IndexDir: filepath.Join(dir, "index")})
	if err != nil {
		return err
	}
	const batch = 4096
	rs := make([]audit.Record, 0, batch)
	t := time.Now()
	step := max(rows/10, batch)
	for i := 0; i < rows; {
		rs = rs[:0]
		for ; len(rs) < batch && i < rows; i++ {
			rs = append(rs, scaleRecord(i, scaleT0))
		}
		if _, err := c.AppendBatch(ctx, rs); err != nil {
			return err
		}
		if i%step < batch || i == rows {
			anon, file := rssParts(os.Getpid())
			fmt.Printf("rss %d %d %d %d\n", i, anon, file, c.IndexedUpTo())
		}
	}
	fmt.Printf("appended %d %.3f %d\n", rows, time.Since(t).Seconds(), c.IndexedUpTo())
	select {} // killed by the parent
}

// rssParts reads RssAnon and RssFile (KiB): the heap, and the mapped files
// (the index's bbolt mapping) the kernel can evict.
func rssParts(pid int) (anon, file int64) {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			anon, _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		}
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			file, _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		}
	}
	return
}

func benchAuditScale(ctx context.Context, g *globals, base string, rows int) error {
	say := func(format string, a ...any) {
		if !g.json() {
			fmt.Fprintf(os.Stderr, format+"\n", a...)
		}
	}
	root, err := os.MkdirTemp(base, "coconut-bench-audit-scale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	child := exec.CommandContext(ctx, self, "bench", "audit-scale", "audit-scale-writer", root, strconv.Itoa(rows))
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	if err != nil {
		return err
	}
	if err := child.Start(); err != nil {
		return err
	}
	defer child.Process.Kill()
	type rssAt struct{ Rows, AnonKiB, FileKiB, Indexed int64 }
	var rss []rssAt
	var appendS float64
	var indexedAtKill int64
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 5 && f[0] == "rss" {
			var p rssAt
			p.Rows, _ = strconv.ParseInt(f[1], 10, 64)
			p.AnonKiB, _ = strconv.ParseInt(f[2], 10, 64)
			p.FileKiB, _ = strconv.ParseInt(f[3], 10, 64)
			p.Indexed, _ = strconv.ParseInt(f[4], 10, 64)
			rss = append(rss, p)
			say("writer: %d rows, heap+anon %.1f MiB, mapped files %.1f MiB, indexed %d", p.Rows, float64(p.AnonKiB)/1024, float64(p.FileKiB)/1024, p.Indexed)
		}
		if len(f) == 4 && f[0] == "appended" {
			appendS, _ = strconv.ParseFloat(f[2], 64)
			indexedAtKill, _ = strconv.ParseInt(f[3], 10, 64)
			break
		}
	}
	if appendS == 0 || len(rss) == 0 {
		child.Wait()
		return fmt.Errorf("writer ended early")
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	child.Wait()
	say("writer killed with SIGKILL after %d rows in %.1fs (index had %d)", rows, appendS, indexedAtKill)

	// Baseline in the same run: the chain's own Open (it checks the last
	// segment) without the index.
	t := time.Now()
	c, err := audit.Open(filepath.Join(root, "chain"), audit.Options{})
	if err != nil {
		return err
	}
	baseS := time.Since(t).Seconds()
	if err := c.Close(); err != nil {
		return err
	}
	// The chain was closed cleanly by the baseline, but the index is as the
	// kill left it: behind, with whatever its last transaction committed.
	t = time.Now()
	c, err = audit.Open(filepath.Join(root, "chain"), audit.Options{IndexDir: filepath.Join(root, "index")})
	if err != nil {
		return err
	}
	defer c.Close()
	startS := time.Since(t).Seconds()
	indexedAtOpen := c.IndexedUpTo()
	t = time.Now()
	if !c.WaitIndexed(10 * time.Minute) {
		return fmt.Errorf("index did not catch up (at %d)", c.IndexedUpTo())
	}
	catchUpS := time.Since(t).Seconds()
	say("open after kill: %.3fs (index at %d), caught up in %.2fs", startS, indexedAtOpen, catchUpS)

	aid := func(i int) *uint64 { a := uint64(1 + i*37%1000); return &a }
	queries := map[string]func(i int) audit.Query{
		"aid":    func(i int) audit.Query { return audit.Query{AID: aid(i)} },
		"type":   func(i int) audit.Query { return audit.Query{Type: []string{"fs.exec", "tool.call"}[i%2]} },
		"type*":  func(i int) audit.Query { return audit.Query{Type: "agent.*"} },
		"cap":    func(i int) audit.Query { return audit.Query{Cap: "exec"} },
		"result": func(i int) audit.Query { return audit.Query{Result: audit.ResultAllow} },
		"time": func(i int) audit.Query {
			s := scaleT0.Add(time.Duration(rand.IntN(rows-200)) * time.Millisecond)
			return audit.Query{Since: s, Until: s.Add(time.Minute)}
		},
	}
	p99 := map[string]float64{}
	p50 := map[string]float64{}
	names := make([]string, 0, len(queries))
	for name, mk := range queries {
		names = append(names, name)
		var ms []float64
		for i := 0; i < 200; i++ {
			q := mk(i)
			q.Limit = 100
			if q.Since.IsZero() {
				// A page anywhere in the chain that still holds 100 rows of
				// the rarest filter (an agent has one row in 1000).
				if room := rows - 200_000; room > 0 {
					q.AfterSeq = uint64(rand.IntN(room))
				}
			}
			t := time.Now()
			rs, err := c.Query(q)
			if err != nil {
				return err
			}
			ms = append(ms, float64(time.Since(t).Microseconds())/1000)
			if len(rs) != 100 {
				return fmt.Errorf("query %s: %d rows, want a page of 100", name, len(rs))
			}
		}
		sort.Float64s(ms)
		p50[name], p99[name] = baRound3(baMedian(ms)), ms[int(0.99*float64(len(ms)-1))]
	}
	sort.Strings(names)
	idxBytes, chainBytes := dirBytes(filepath.Join(root, "index")), dirBytes(filepath.Join(root, "chain"))
	first, last := rss[0], rss[len(rss)-1]
	headline := map[string]any{
		"rows": rows, "events_per_s": round(float64(rows) / appendS),
		"daemon_rss_mib":     baRound3(float64(last.AnonKiB+last.FileKiB) / 1024),
		"index_rss_mib":      baRound3(float64(last.AnonKiB-first.AnonKiB) / 1024),
		"start_after_kill_s": baRound3(startS), "query_p99_ms": p99,
	}
	res := map[string]any{
		"headline":            headline,
		"rows":                rows,
		"events_per_s":        round(float64(rows) / appendS),
		"daemon_rss_mib":      baRound3(float64(last.AnonKiB+last.FileKiB) / 1024),
		"index_rss_mib":       baRound3(float64(last.AnonKiB-first.AnonKiB) / 1024),
		"anon_rss_mib":        map[string]float64{"first": baRound3(float64(first.AnonKiB) / 1024), "last": baRound3(float64(last.AnonKiB) / 1024)},
		"file_rss_mib":        baRound3(float64(last.FileKiB) / 1024),
		"rss_samples":         rss,
		"start_after_kill_s":  baRound3(startS),
		"index_catch_up_s":    baRound3(catchUpS),
		"open_no_index_s":     baRound3(baseS),
		"indexed_at_kill":     indexedAtKill,
		"query_p99_ms":        p99,
		"query_p50_ms":        p50,
		"index_bytes":         idxBytes,
		"index_bytes_per_row": baRound3(float64(idxBytes) / float64(rows)),
		"chain_bytes_per_row": baRound3(float64(chainBytes) / float64(rows)),
		"note": "index_rss_mib is the growth of the writer's anonymous memory (heap) from its first to its last sample; " +
			"the bbolt file mapping (file_rss_mib) is page cache the kernel may evict. start_after_kill_s is audit.Open after SIGKILL; " +
			"open_no_index_s is the same Open without the index, measured just before; the index then catches up in the background while queries scan the rest. Command: coconut bench audit-scale --rows N --json",
	}
	if g.json() {
		return printJSON(os.Stdout, res)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "rows\t%d (appended at %.0f rows/s with the index on)\n", rows, float64(rows)/appendS)
	fmt.Fprintf(tw, "writer anon RSS first / last sample\t%.1f / %.1f MiB (mapped files %.1f MiB)\n", float64(first.AnonKiB)/1024, float64(last.AnonKiB)/1024, float64(last.FileKiB)/1024)
	fmt.Fprintf(tw, "open after kill -9\t%.3f s, without the index %.3f s (index caught up %.2f s later)\n", startS, baseS, catchUpS)
	for _, n := range names {
		fmt.Fprintf(tw, "query %s, page of 100: p50 / p99\t%.2f / %.2f ms\n", n, p50[n], p99[n])
	}
	fmt.Fprintf(tw, "index on disk\t%.1f MiB (%.1f B/row; chain %.1f B/row)\n", float64(idxBytes)/(1<<20), float64(idxBytes)/float64(rows), float64(chainBytes)/float64(rows))
	return tw.Flush()
}
