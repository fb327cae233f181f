package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/zeebo/blake3"

	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/checkpoint"
	"github.com/coconut-os/coconut/internal/usage"
)

type benchAuditFlags struct {
	dir       string
	appenders int
	seconds   float64
	rows      int
	runs      int
}

func benchAuditCmd(g *globals) *cobra.Command {
	var f benchAuditFlags
	cmd := &cobra.Command{
		Use:   "audit [--appenders N] [--seconds S] [--rows N] [--dir DIR]",
		Short: "Audit chain: durable append throughput and ack latency, fsync bound, verify vs raw BLAKE3, query by aid",
		Args:  usage.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.appenders < 1 || f.seconds <= 0 || f.rows < 0 || f.runs < 1 {
				return usage.Errorf("--appenders, --seconds and --runs must be positive, --rows not negative")
			}
			return benchAudit(cmd.Context(), g, f)
		},
	}
	cmd.Flags().StringVar(&f.dir, "dir", "/var/tmp", "make the temporary chains under this directory (on the disk to measure)")
	cmd.Flags().IntVar(&f.appenders, "appenders", 512, "concurrent appenders")
	cmd.Flags().Float64Var(&f.seconds, "seconds", 2, "length of each append run")
	cmd.Flags().IntVar(&f.rows, "rows", 10_000_000, "rows in the chain queried by aid (0: skip)")
	cmd.Flags().IntVar(&f.runs, "runs", 5, "runs of each measurement (min/median reported)")
	return cmd
}

// benchRecord is a ~200-byte row, the size of a typical kernel deny.
func benchRecord(i int) audit.Record {
	return audit.CapDeny(uint64(1+i%1000), "fs.read", fmt.Sprintf("/home/maya/projects/dream-team/src/module_%06d/file.py", i%1_000_000),
		134, 10000+i%5000, uint64(i), nil)
}

type appendRun struct {
	events   int
	perSec   float64
	p50, p99 float64 // ms
}

func benchAudit(ctx context.Context, g *globals, f benchAuditFlags) error {
	root, err := os.MkdirTemp(f.dir, "coconut-bench-audit-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	out := os.Stderr
	if g.json() {
		out = nil
	}
	say := func(format string, a ...any) {
		if out != nil {
			fmt.Fprintf(out, format+"\n", a...)
		}
	}
	rb, _ := audit.RecordBytes(func() audit.Record { r := benchRecord(123456); r.Seq = 1234567; r.Time = time.Now(); return r }())
	say("record size %d bytes; %d appenders; %d runs of %.1fs", len(rb), f.appenders, f.runs, f.seconds)

	fsyncs, err := fsyncRate(root)
	if err != nil {
		return err
	}
	say("fsync bound: %.0f/s", fsyncs)

	chainDir := filepath.Join(root, "append")
	c, err := audit.Open(chainDir, audit.Options{})
	if err != nil {
		return err
	}
	var runs []appendRun
	var acked []uint64
	for i := 0; i < f.runs; i++ {
		r, seqs, err := appendStorm(ctx, c, f.appenders, time.Duration(f.seconds*float64(time.Second)))
		if err != nil {
			c.Close()
			return err
		}
		acked = append(acked, seqs...)
		runs = append(runs, r)
		say("append run %d: %.0f events/s, ack p50 %.2f ms, p99 %.2f ms", i+1, r.perSec, r.p50, r.p99)
	}
	if err := c.Close(); err != nil {
		return err
	}
	// lost: acknowledged seqs not found when the chain is read back.
	present := map[uint64]bool{}
	vstart := time.Now()
	var vbytes int64
	vr, err := audit.VerifyFunc(chainDir, func(seq uint64, p []byte) error {
		present[seq] = true
		vbytes += int64(len(p))
		return nil
	})
	if err != nil {
		return fmt.Errorf("verify bench chain: %w", err)
	}
	_ = vstart
	lost := 0
	for _, s := range acked {
		if !present[s] {
			lost++
		}
	}
	present = nil
	// Verify throughput: min/median of runs over the same chain, on every
	// core and on one, against BLAKE3 over the same record bytes (the
	// chain's own hashing work) on one core.
	// The machine may be shared: MB per CPU-second (rusage) says what each
	// core achieves whatever the others do.
	var vRecS, vMBs, v1MBs, vCPU, v1CPU []float64
	size := dirBytes(chainDir)
	for i := 0; i < f.runs; i++ {
		t, c := time.Now(), cpuSeconds()
		if _, err := audit.Verify(chainDir); err != nil {
			return err
		}
		el := time.Since(t).Seconds()
		vCPU = append(vCPU, float64(size)/(cpuSeconds()-c)/1e6)
		vRecS = append(vRecS, float64(vr.Records)/el)
		vMBs = append(vMBs, float64(size)/el/1e6)
		t, c = time.Now(), cpuSeconds()
		if _, err := audit.VerifyParallel(chainDir, audit.ParallelOptions{Workers: 1}); err != nil {
			return err
		}
		v1MBs = append(v1MBs, float64(size)/time.Since(t).Seconds()/1e6)
		v1CPU = append(v1CPU, float64(size)/(cpuSeconds()-c)/1e6)
	}
	// What `coconut audit verify` does besides: the RFC 6962 leaf of every
	// record (SHA-256) hashed in the same workers, merged in order.
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		return err
	}
	var mMBs, m1MBs []float64
	for i := 0; i < f.runs; i++ {
		for _, w := range []int{0, 1} {
			t := time.Now()
			if _, _, _, err := checkpoint.VerifyChainWith(chainDir, pub, checkpoint.VerifyOptions{Workers: w}); err != nil {
				return err
			}
			r := float64(size) / time.Since(t).Seconds() / 1e6
			if w == 0 {
				mMBs = append(mMBs, r)
			} else {
				m1MBs = append(m1MBs, r)
			}
		}
	}
	say("verify with the Merkle leaves: %.0f MB/s on all cores, %.0f MB/s on one", baMedian(mMBs), baMedian(m1MBs))
	b3 := blake3Rate(f.runs)
	b3rec, err := blake3RecordRate(chainDir, f.runs)
	if err != nil {
		return err
	}
	cores := runtime.GOMAXPROCS(0)
	say("verify per CPU-second: %.0f MB on all cores, %.0f MB on one", baMedian(vCPU), baMedian(v1CPU))
	say("verify: %.0f records/s, %.0f MB/s on %d cores, %.0f MB/s on one; BLAKE3 of the records %.0f MB/s on one core (%.0f%% of it x cores), bulk BLAKE3 %.0f MB/s",
		baMedian(vRecS), baMedian(vMBs), cores, baMedian(v1MBs), baMedian(b3rec), 100*baMedian(vMBs)/(baMedian(b3rec)*float64(cores)), baMedian(b3))
	// Incremental: the last newRows rows after a verified seq.
	newRows := min(uint64(1_000_000), vr.Records/2)
	var incMs []float64
	if newRows > 0 {
		after := vr.Records - newRows
		var head [audit.HeadSize]byte
		if _, err := audit.VerifyParallel(chainDir, audit.ParallelOptions{NewSink: func(uint64) audit.SegmentSink { return headSink{after, &head} }}); err != nil {
			return err
		}
		for i := 0; i < f.runs; i++ {
			t := time.Now()
			if _, err := audit.VerifyParallel(chainDir, audit.ParallelOptions{After: after, AfterHead: head}); err != nil {
				return err
			}
			incMs = append(incMs, float64(time.Since(t).Microseconds())/1000)
		}
		say("incremental verify of the last %d rows: %.0f ms", newRows, baMedian(incMs))
	}

	// Disk per row, the segments plain and then compressed as coconutd
	// keeps them once sealed: reopened with a 1-byte rotation size, one
	// more row seals every segment and the compressor runs before Close.
	rows0, plainBytes := vr.Records, segBytes(chainDir)
	var compErr error
	cc, err := audit.Open(chainDir, audit.Options{SegmentBytes: 1, CompressSealed: true, OnCompressError: func(err error) { compErr = err }})
	if err != nil {
		return err
	}
	tz := time.Now()
	if _, err := cc.Append(ctx, benchRecord(0)); err != nil {
		cc.Close()
		return err
	}
	if err := cc.Close(); err != nil || compErr != nil {
		return fmt.Errorf("compress bench chain: %v %v", err, compErr)
	}
	compressS := time.Since(tz).Seconds()
	zstBytes := segBytes(chainDir)
	tz = time.Now()
	if _, err := audit.Verify(chainDir); err != nil {
		return fmt.Errorf("verify compressed bench chain: %w", err)
	}
	vZstMBs := float64(plainBytes) / time.Since(tz).Seconds() / 1e6
	perRow, perRowZst := float64(plainBytes)/float64(rows0), float64(zstBytes)/float64(rows0+1)
	say("disk: %.1f bytes/row plain, %.1f compressed (%.2fx; compressed in %.1fs); verify of the compressed chain %.0f MB/s", perRow, perRowZst, perRow/perRowZst, compressS, vZstMBs)

	var q50, q99, qFull50, qFull99, build, rebuild float64
	if f.rows > 0 {
		if q50, q99, qFull50, qFull99, build, rebuild, err = queryBench(ctx, filepath.Join(root, "query"), f.rows, say); err != nil {
			return err
		}
	}
	evs := make([]float64, len(runs))
	p99s := make([]float64, len(runs))
	p50s := make([]float64, len(runs))
	for i, r := range runs {
		evs[i], p99s[i], p50s[i] = r.perSec, r.p99, r.p50
	}
	head := map[string]float64{
		"events_per_s":           round(baMedian(evs)),
		"p99_ack_ms":             baRound3(baMedian(p99s)),
		"lost":                   float64(lost),
		"fsync_per_s":            round(fsyncs),
		"verify_mb_per_s":        round(baMedian(vMBs)),
		"verify_1core_mb_per_s":  round(baMedian(v1MBs)),
		"incremental_verify_ms":  baRound3(baMedian(incMs)),
		"blake3_mb_per_s":        round(baMedian(b3)),
		"disk_bytes_per_row":     baRound3(perRow),
		"disk_bytes_per_row_zst": baRound3(perRowZst),
	}
	res := map[string]any{
		"name": "audit", "record_bytes": len(rb), "appenders": f.appenders, "runs": f.runs, "cpus": runtime.NumCPU(),
		"events_per_s": baMinMed(evs), "p50_ack_ms": baMinMed(p50s), "p99_ack_ms": baMinMed(p99s), "acked": len(acked),
		"verify_records_per_s": baMinMed(vRecS), "verify_mb_per_s": baMinMed(vMBs), "blake3_mb_per_s": baMinMed(b3),
		"verify_1core_mb_per_s": baMinMed(v1MBs), "blake3_records_mb_per_s": baMinMed(b3rec), "verify_cores": cores,
		"verify_vs_blake3_records_x_cores": baRound3(baMedian(vMBs) / (baMedian(b3rec) * float64(cores))),
		"incremental_verify_ms":            baMinMed(incMs), "incremental_new_rows": newRows, "verify_chain_bytes": size,
		"verify_merkle_mb_per_s": baMinMed(mMBs), "verify_merkle_1core_mb_per_s": baMinMed(m1MBs),
		"verify_mb_per_cpu_s": baMinMed(vCPU), "verify_1core_mb_per_cpu_s": baMinMed(v1CPU), "verify_segments": len(segFiles(chainDir)),
		"query_rows": f.rows, "query_build_s": round(build), "query_index_rebuild_s": baRound3(rebuild),
		"query_aid_page_ms":      map[string]float64{"p50": baRound3(q50), "p99": baRound3(q99)},
		"query_aid_full_scan_ms": map[string]float64{"p50": baRound3(qFull50), "p99": baRound3(qFull99)},
		"disk_bytes_per_row":     baRound3(perRow), "disk_bytes_per_row_zst": baRound3(perRowZst), "compress_s": baRound3(compressS),
		"verify_zst_mb_per_s": round(vZstMBs),
		"headline":            head,
	}
	if g.json() {
		return printJSON(os.Stdout, res)
	}
	tw := table(os.Stdout)
	fmt.Fprintf(tw, "audit chain: %d-byte records, %d appenders, %d runs (median; min in brackets)\n", len(rb), f.appenders, f.runs)
	fmt.Fprintf(tw, "durable appends\t%.0f events/s\t[%.0f]\n", baMedian(evs), baMin(evs))
	fmt.Fprintf(tw, "time to durable ack p50 / p99\t%.2f / %.2f ms\n", baMedian(p50s), baMedian(p99s))
	fmt.Fprintf(tw, "lost (acked, not read back)\t%d of %d\n", lost, len(acked))
	fmt.Fprintf(tw, "fsync bound (4 KiB append+fsync)\t%.0f /s\n", fsyncs)
	fmt.Fprintf(tw, "verify\t%.0f records/s, %.0f MB/s\n", baMedian(vRecS), baMedian(vMBs))
	fmt.Fprintf(tw, "verify on 1 core\t%.0f MB/s\n", baMedian(v1MBs))
	fmt.Fprintf(tw, "BLAKE3 of the records, 1 core (x %d cores)\t%.0f MB/s (%.0f%%)\n", cores, baMedian(b3rec), 100*baMedian(vMBs)/(baMedian(b3rec)*float64(cores)))
	fmt.Fprintf(tw, "incremental verify, last %d rows\t%.1f ms\n", newRows, baMedian(incMs))
	fmt.Fprintf(tw, "raw BLAKE3\t%.0f MB/s\n", baMedian(b3))
	fmt.Fprintf(tw, "disk per row, plain / sealed and compressed\t%.1f / %.1f bytes (verify of the compressed chain %.0f MB/s)\n", perRow, perRowZst, vZstMBs)
	if f.rows > 0 {
		fmt.Fprintf(tw, "query by aid, %d rows (written in %.0fs, index rebuilt in %.1fs): first page p50 / p99\t%.2f / %.2f ms\n", f.rows, build, rebuild, q50, q99)
		fmt.Fprintf(tw, "query by aid, whole chain (aid near the end) p50 / p99\t%.1f / %.1f ms\n", qFull50, qFull99)
	}
	return tw.Flush()
}

// appendStorm runs n appenders for d and returns the rate, the ack
// latency percentiles and every acknowledged seq.
func appendStorm(ctx context.Context, c *audit.Chain, n int, d time.Duration) (appendRun, []uint64, error) {
	var mu sync.Mutex
	var lat []time.Duration
	var seqs []uint64
	var firstErr error
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var l []time.Duration
			var s []uint64
			for i := w; time.Now().Before(deadline); i += n {
				t := time.Now()
				r, err := c.Append(ctx, benchRecord(i))
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				l = append(l, time.Since(t))
				s = append(s, r.Seq)
			}
			mu.Lock()
			lat = append(lat, l...)
			seqs = append(seqs, s...)
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	el := time.Since(start)
	if firstErr != nil {
		return appendRun{}, nil, firstErr
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	return appendRun{events: len(lat), perSec: float64(len(lat)) / el.Seconds(), p50: pct(0.50), p99: pct(0.99)}, seqs, nil
}

// fsyncRate measures the disk's bound: 4 KiB appended and fsynced in a
// loop for about a second.
func fsyncRate(dir string) (float64, error) {
	f, err := os.CreateTemp(dir, "fsync")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	n := 0
	start := time.Now()
	for time.Since(start) < time.Second {
		if _, err := f.Write(buf); err != nil {
			return 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, err
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// blake3Rate is bulk BLAKE3 over 64 MiB, runs times, in MB/s.
func blake3Rate(runs int) []float64 {
	buf := make([]byte, 64<<20)
	rand.Read(buf)
	var out []float64
	for i := 0; i < runs; i++ {
		t := time.Now()
		blake3.Sum256(buf)
		out = append(out, float64(len(buf))/time.Since(t).Seconds()/1e6)
	}
	return out
}

// cpuSeconds is this process's user+system CPU time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func segFiles(dir string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	return m
}

// blake3RecordRate is BLAKE3 over the chain's own inputs (previous head
// || record bytes, one hash per record, as the chain links them) on one
// core, in MB of segment bytes per second: the baseline a verifier on one
// core cannot beat. Up to 256 MiB of records are read into memory first.
func blake3RecordRate(chainDir string, runs int) ([]float64, error) {
	var payloads [][]byte
	var size int64
	var last [audit.HeadSize]byte
	var n int
	_, err := audit.VerifyParallel(chainDir, audit.ParallelOptions{Workers: 1, NewSink: func(uint64) audit.SegmentSink {
		return collectSink{&payloads, &last, &n}
	}})
	if err != nil {
		return nil, err
	}
	for _, p := range payloads {
		size += int64(len(p) + audit.FrameOverhead)
	}
	h := blake3.New()
	var out []float64
	for i := 0; i < runs; i++ {
		t := time.Now()
		var head [audit.HeadSize]byte
		for _, p := range payloads {
			h.Reset()
			h.Write(head[:])
			h.Write(p)
			h.Sum(head[:0])
		}
		out = append(out, float64(size)/time.Since(t).Seconds()/1e6)
		if head != last {
			return nil, fmt.Errorf("BLAKE3 baseline: head differs from the chain's")
		}
	}
	return out, nil
}

type collectSink struct {
	out   *[][]byte
	last  *[audit.HeadSize]byte
	bytes *int
}

func (c collectSink) Record(_ uint64, p []byte, head [audit.HeadSize]byte) {
	if *c.bytes >= 256<<20 {
		return
	}
	*c.bytes += len(p)
	*c.out = append(*c.out, append([]byte(nil), p...))
	*c.last = head
}

type headSink struct {
	seq uint64
	out *[audit.HeadSize]byte
}

func (h headSink) Record(seq uint64, _ []byte, head [audit.HeadSize]byte) {
	if seq == h.seq {
		*h.out = head
	}
}

// queryBench fills a chain with rows records (1000 agents round-robin,
// plus one rare agent whose rows are near the end) and times a first page
// by a common aid and a whole-chain query by the rare aid.
func queryBench(ctx context.Context, dir string, rows int, say func(string, ...any)) (p50, p99, full50, full99, build, rebuild float64, err error) {
	idxDir := dir + "-index"
	c, err := audit.Open(dir, audit.Options{IndexDir: idxDir})
	if err != nil {
		return
	}
	defer func() { c.Close() }()
	t := time.Now()
	const batch = 4096
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	next := make(chan int)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs := make([]audit.Record, 0, batch)
			for start := range next {
				rs = rs[:0]
				for i := start; i < start+batch && i < rows; i++ {
					r := benchRecord(i)
					if i >= rows-10 {
						r.AID = 999_999 // the rare agent
					}
					rs = append(rs, r)
				}
				if _, err := c.AppendBatch(ctx, rs); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	var failed error
feed:
	for i := 0; i < rows; i += batch {
		select {
		case next <- i:
		case failed = <-errc: // a worker stopped: do not wait for it
			break feed
		}
		if i%(1<<20) == 0 && i > 0 {
			say("query chain: %d rows", i)
		}
	}
	close(next)
	wg.Wait()
	if failed != nil {
		err = failed
		return
	}
	select {
	case err = <-errc:
		return
	default:
	}
	build = time.Since(t).Seconds()
	// Rebuild the index from the chain alone, as Open does when it is lost.
	if err = c.Close(); err != nil {
		return
	}
	if err = os.RemoveAll(idxDir); err != nil {
		return
	}
	t = time.Now()
	if c, err = audit.Open(dir, audit.Options{IndexDir: idxDir}); err != nil {
		return
	}
	c.WaitIndexed(time.Hour) // the on-disk index is rebuilt in the background
	rebuild = time.Since(t).Seconds()
	say("query chain: %d rows written in %.1fs, index rebuilt from the chain in %.1fs", rows, build, rebuild)
	var page, full []float64
	for i := 0; i < 100; i++ {
		aid := uint64(1 + i*37%1000)
		t := time.Now()
		if _, err = c.Query(audit.Query{AID: &aid, Limit: 100}); err != nil {
			return
		}
		page = append(page, float64(time.Since(t).Microseconds())/1000)
	}
	for i := 0; i < 20; i++ {
		aid := uint64(999_999)
		t := time.Now()
		rs, qerr := c.Query(audit.Query{AID: &aid, Limit: 100})
		if qerr != nil {
			err = qerr
			return
		}
		if len(rs) != min(10, rows) {
			err = fmt.Errorf("query found %d rows of the rare agent, want %d", len(rs), min(10, rows))
			return
		}
		full = append(full, float64(time.Since(t).Microseconds())/1000)
	}
	sort.Float64s(page)
	sort.Float64s(full)
	return baMedian(page), page[int(0.99*float64(len(page)-1))], baMedian(full), full[len(full)-1], build, rebuild, nil
}

// segBytes is the size of a chain's segments, plain and compressed.
func segBytes(dir string) int64 {
	var n int64
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".seg") || strings.HasSuffix(e.Name(), ".seg.zst") {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
	}
	return n
}

func dirBytes(dir string) int64 {
	var n int64
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if fi, err := e.Info(); err == nil {
			n += fi.Size()
		}
	}
	return n
}

func baMedian(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func baMin(v []float64) float64 {
	m := v[0]
	for _, x := range v {
		m = min(m, x)
	}
	return m
}

func baMinMed(v []float64) map[string]float64 {
	return map[string]float64{"min": baRound3(baMin(v)), "median": baRound3(baMedian(v))}
}

func baRound3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }
