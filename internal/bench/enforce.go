package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/usage"
)

type benchEnforceFlags struct {
	rounds    int
	iters     int
	connIters int
	loopIters int
	afterDeny int
	burst     int
	burstOpen int
	idle      int
	settle    time.Duration
	dir       string
	coconutd  string
	probe     string
}

// benchEnforceCmd is `coconut bench enforce`: issue 3's figures, each
// beside its baseline in the same run. It starts its own coconutd so that
// "no coconut at all" is measured before that daemon exists.
func benchEnforceCmd(g *globals) *cobra.Command {
	var f benchEnforceFlags
	cmd := &cobra.Command{
		Use:   "enforce [--rounds 5] [--iters N] [--burst N] ...",
		Short: "Cost of enforcement on open() and connect() (agent, non-agent, no coconut), revoke under load, and a burst of denies reconciled with the chain (root; starts a private coconutd)",
		Args:  usage.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.rounds < 1 || f.rounds > 100 || f.iters < 100 || f.connIters < 100 || f.loopIters < 1000 ||
				f.afterDeny < 1 || f.burst < 0 || f.burstOpen < 0 || f.idle < 0 || f.idle > 64 || f.settle < time.Second {
				return usage.Errorf("--rounds 1..100, --iters and --connect-iters ≥ 100, --loop-iters ≥ 1000, --after-deny ≥ 1, --burst and --burst-open ≥ 0, --idle-agents 0..64, --settle ≥ 1s")
			}
			if os.Geteuid() != 0 {
				return errNotRoot
			}
			var err error
			for _, b := range []struct {
				p    *string
				name string
			}{{&f.coconutd, "coconutd"}, {&f.probe, "coconut-enforce-probe"}} {
				if *b.p == "" {
					if *b.p, err = findBeside(b.name); err != nil {
						return err
					}
				}
			}
			return benchEnforce(cmd.Context(), g, f)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.rounds, "rounds", 5, "rounds of each measurement (min and median reported)")
	fl.IntVar(&f.iters, "iters", 20000, "open()+close() per round")
	fl.IntVar(&f.connIters, "connect-iters", 5000, "connect()+close() per round")
	fl.IntVar(&f.loopIters, "loop-iters", 100000, "revoke: most opens in the agent's loop")
	fl.IntVar(&f.afterDeny, "after-deny", 2000, "revoke: opens the loop keeps making after its first deny")
	fl.IntVar(&f.burst, "burst", 100000, "denied connects in the burst (cgroup BPF; 0: skip)")
	fl.IntVar(&f.burstOpen, "burst-open", 2000, "denied opens in the burst (seccomp supervisor; 0: skip)")
	fl.DurationVar(&f.settle, "settle", 5*time.Minute, "longest wait for the chain to catch up with the kernel after a burst (it also stops when the chain stalls 15s)")
	fl.IntVar(&f.idle, "idle-agents", 3, "idle agents kept running while agents and non-agents are measured")
	fl.StringVar(&f.dir, "dir", os.TempDir(), "make the temporary state dir and files under this directory")
	fl.StringVar(&f.coconutd, "coconutd", "", "coconutd binary (default: beside coconut, ../libexec/coconut, PATH)")
	fl.StringVar(&f.probe, "probe", "", "coconut-enforce-probe binary (default: beside coconut, ../libexec/coconut, PATH)")
	return cmd
}

// series is one measured figure over the rounds.
type series struct {
	Name   string    `json:"name"`
	Unit   string    `json:"unit"`
	Rounds []float64 `json:"rounds"`
	Min    float64   `json:"min"`
	Median float64   `json:"median"`
}

func newSeries(name, unit string, v []float64) series {
	return series{Name: name, Unit: unit, Rounds: v, Min: baRound3(baMin(v)), Median: baRound3(baMedian(v))}
}

type enforceBench struct {
	f       benchEnforceFlags
	say     func(format string, a ...any)
	dir     string // world-readable scratch: the agents' files
	allowed string // a file every measured agent may read
	revoked string // the file the revoke loop reads; its directory's scope is revoked
	denied  string // a file no agent may read
	port    int    // a loopback listener that accepts and closes
	d       *privateDaemon
}

func benchEnforce(ctx context.Context, g *globals, f benchEnforceFlags) error {
	t0 := time.Now()
	b := &enforceBench{f: f, say: func(format string, a ...any) {
		if !g.json() {
			fmt.Fprintf(os.Stderr, "[%5.1fs] "+format+"\n", append([]any{time.Since(t0).Seconds()}, a...)...)
		}
	}}
	root, err := os.MkdirTemp(f.dir, "coconut-bench-enforce-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	if err := b.files(root); err != nil {
		return err
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	b.port = ln.Addr().(*net.TCPAddr).Port
	res, err := b.run(ctx, root)
	if b.d != nil {
		b.d.stop()
	}
	if err != nil {
		return err
	}
	return res.print(g.json())
}

// files makes the scratch files the probes open: readable by the agents'
// unprivileged user, so that only the capability model decides.
func (b *enforceBench) files(root string) error {
	b.dir = filepath.Join(root, "files")
	b.allowed = filepath.Join(b.dir, "allowed", "data.txt")
	b.revoked = filepath.Join(b.dir, "revoked", "data.txt")
	b.denied = filepath.Join(b.dir, "denied", "secret.txt")
	for _, p := range []string{root, b.dir} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return err
		}
		if err := os.Chmod(p, 0o755); err != nil {
			return err
		}
	}
	for _, p := range []string{b.allowed, b.revoked, b.denied} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte("coconut bench enforce\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (b *enforceBench) addr() string { return "127.0.0.1:" + strconv.Itoa(b.port) }

// plain runs the probe as a process outside any agent (in this command's
// cgroup) and parses its result.
func (b *enforceBench) plain(ctx context.Context, op string, args ...string) (probeResult, error) {
	cmd := exec.CommandContext(ctx, b.f.probe, append([]string{op}, args...)...)
	var stderr []byte
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = ee.Stderr
	}
	if err != nil {
		return probeResult{}, fmt.Errorf("probe %s: %w: %s", op, err, tail(stderr))
	}
	return parseProbe(out, op)
}

// agent runs the probe as an agent holding caps and parses its result.
func (b *enforceBench) agent(ctx context.Context, name string, caps []string, op string, args ...string) (uint64, probeResult, error) {
	aid, logs, err := b.d.runAgent(ctx, b.req(name, caps, append([]string{op}, args...)...), 2*time.Minute)
	if err != nil {
		return aid, probeResult{}, err
	}
	r, err := parseProbe(logs, op)
	if err != nil {
		return aid, r, fmt.Errorf("agent %s (%d): %w; log: %s", name, aid, err, tail(logs))
	}
	return aid, r, nil
}

func (b *enforceBench) req(name string, caps []string, args ...string) api.RunRequest {
	if caps == nil {
		caps = []string{}
	}
	return api.RunRequest{Name: name, Class: "bench-enforce", Workdir: "/", Caps: caps, Command: append([]string{b.f.probe}, args...)}
}

func (b *enforceBench) openArgs(path string) []string {
	return []string{"--path", path, "--iters", strconv.Itoa(b.f.iters)}
}

func (b *enforceBench) connArgs() []string {
	return []string{"--addr", b.addr(), "--iters", strconv.Itoa(b.f.connIters)}
}

// enforceResult is everything one run measured.
type enforceResult struct {
	Rounds   int                `json:"rounds"`
	CPUs     int                `json:"cpus"`
	Idle     int                `json:"idle_agents"`
	Method   string             `json:"method"`
	Series   []series           `json:"series"`
	Revoke   revokeStats        `json:"revoke"`
	Bursts   []burstStats       `json:"bursts"`
	Notes    []string           `json:"notes,omitempty"`
	Headline map[string]float64 `json:"headline"`
}

func (b *enforceBench) run(ctx context.Context, root string) (*enforceResult, error) {
	f := b.f
	res := &enforceResult{Rounds: f.rounds, CPUs: runtime.NumCPU(), Idle: f.idle,
		Method: "no coconut: measured before this bench's private coconutd (--enforcer portable, temporary state dir) started and again after it stopped; " +
			"other coconutd instances on the host attach their programs to their own agents' cgroups only. non-agent: the same probe process outside any agent while the daemon runs with idle agents; " +
			"agent: the probe as an agent holding fs.read on the file and net.connect to the port; static agent: the same from a signed manifest with enforcement: static (reads left to the Landlock floor). Raw syscalls; connect closes with SO_LINGER 0. Ratios are of medians."}
	var noOpen, noConn, noOpenAfter []float64
	b.say("no coconut: open()+close() ×%d and connect()+close() ×%d, %d rounds", f.iters, f.connIters, f.rounds)
	for i := 0; i < f.rounds; i++ {
		r, err := b.plain(ctx, "open", b.openArgs(b.allowed)...)
		if err != nil {
			return nil, err
		}
		noOpen = append(noOpen, r.NsPerOp)
		if r, err = b.plain(ctx, "connect", b.connArgs()...); err != nil {
			return nil, err
		}
		noConn = append(noConn, r.NsPerOp)
	}

	b.say("starting a private coconutd (portable enforcer) in %s", root)
	var err error
	if b.d, err = startDaemon(ctx, f.coconutd, filepath.Join(root, "daemon")); err != nil {
		return nil, err
	}
	openCaps := []string{"fs.read:" + filepath.Dir(b.allowed) + "/**"}
	connCaps := []string{"net.connect:" + b.addr()}
	for i := 0; i < f.idle; i++ {
		a, err := b.d.c.AgentRun(ctx, b.req("idle-"+strconv.Itoa(i), append(append([]string{}, openCaps...), connCaps...), "idle"))
		if err != nil {
			return nil, fmt.Errorf("idle agent: %w", err)
		}
		if a.State != "Active" {
			return nil, fmt.Errorf("idle agent %d is %s", a.AID, a.State)
		}
	}
	static, err := b.prepareStatic(ctx, root)
	if err != nil {
		return nil, err
	}
	var naOpen, agOpen, stOpen, naConn, agConn []float64
	b.say("with coconut: %d idle agents; non-agent and agent, %d rounds", f.idle, f.rounds)
	for i := 0; i < f.rounds; i++ {
		r, err := b.plain(ctx, "open", b.openArgs(b.allowed)...)
		if err != nil {
			return nil, err
		}
		naOpen = append(naOpen, r.NsPerOp)
		if _, r, err = b.agent(ctx, "open-"+strconv.Itoa(i), openCaps, "open", b.openArgs(b.allowed)...); err != nil {
			return nil, err
		}
		agOpen = append(agOpen, r.NsPerOp)
		ns, err := static.run(ctx, b.d)
		if err != nil {
			return nil, err
		}
		stOpen = append(stOpen, ns)
		if r, err = b.plain(ctx, "connect", b.connArgs()...); err != nil {
			return nil, err
		}
		naConn = append(naConn, r.NsPerOp)
		if _, r, err = b.agent(ctx, "connect-"+strconv.Itoa(i), connCaps, "connect", b.connArgs()...); err != nil {
			return nil, err
		}
		agConn = append(agConn, r.NsPerOp)
	}
	b.say("open ns/op median: no coconut %.0f, non-agent %.0f, agent %.0f, static agent %.0f", baMedian(noOpen), baMedian(naOpen), baMedian(agOpen), baMedian(stOpen))

	b.say("revoke under a loop of up to %d opens", f.loopIters)
	if res.Revoke, err = b.revoke(ctx); err != nil {
		return nil, err
	}
	if f.burst > 0 {
		b.say("burst: %d denied connects", f.burst)
		bs, err := b.burstRun(ctx, "connect", f.burst)
		if err != nil {
			return nil, err
		}
		res.Bursts = append(res.Bursts, bs)
	}
	if f.burstOpen > 0 {
		b.say("burst: %d denied opens", f.burstOpen)
		bs, err := b.burstRun(ctx, "open", f.burstOpen)
		if err != nil {
			return nil, err
		}
		res.Bursts = append(res.Bursts, bs)
	}
	b.d.stop()
	b.d = nil

	b.say("no coconut again (drift check)")
	for i := 0; i < f.rounds; i++ {
		r, err := b.plain(ctx, "open", b.openArgs(b.allowed)...)
		if err != nil {
			return nil, err
		}
		noOpenAfter = append(noOpenAfter, r.NsPerOp)
	}
	res.Series = []series{
		newSeries("open+close, no coconut", "ns/op", noOpen),
		newSeries("open+close, non-agent process", "ns/op", naOpen),
		newSeries("open+close, agent", "ns/op", agOpen),
		newSeries("open+close, agent with enforcement: static", "ns/op", stOpen),
		newSeries("open+close, no coconut, after the daemon stopped", "ns/op", noOpenAfter),
		newSeries("connect+close, no coconut", "ns/op", noConn),
		newSeries("connect+close, non-agent process", "ns/op", naConn),
		newSeries("connect+close, agent", "ns/op", agConn),
	}
	a, na, ag := baMedian(noOpen), baMedian(naOpen), baMedian(agOpen)
	h := map[string]float64{
		"nonagent_open_ratio":         baRound3(na / a),
		"agent_open_ratio":            baRound3(ag / a),
		"agent_open_ns_added":         round(ag - a),
		"agent_static_open_ratio":     baRound3(baMedian(stOpen) / a),
		"connect_ratio":               baRound3(baMedian(agConn) / baMedian(noConn)),
		"nonagent_connect_ratio":      baRound3(baMedian(naConn) / baMedian(noConn)),
		"ops_after_revoke":            float64(res.Revoke.OpsAfterRevoke),
		"revoke_call_us":              res.Revoke.CallUs,
		"revoke_return_to_deny_us":    res.Revoke.ReturnToFirstDenyUs,
		"revoke_ops_succeeded_before": float64(res.Revoke.SucceededBefore + res.Revoke.SucceededDuring),
	}
	for _, bs := range res.Bursts {
		p := "burst_" + bs.Kind + "_"
		h[p+"denied"] = float64(bs.Denied)
		h[p+"kernel_denies"] = float64(bs.KernelDenies)
		h[p+"chain_rows"] = float64(bs.ChainRows)
		h[p+"chain_denies"] = float64(bs.ChainDenies)
		h[p+"ringbuf_full"] = float64(bs.RingbufFull)
		h[p+"chain_rows_per_s"] = bs.ChainRowsPerS
		if bs.RingbufFull > 0 {
			res.Notes = append(res.Notes, fmt.Sprintf("RING BUFFER OVERFLOWED during the %s burst: %d events lost to ringbuf_full", bs.Kind, bs.RingbufFull))
		}
		if !bs.CaughtUp {
			res.Notes = append(res.Notes, fmt.Sprintf("the chain had not caught up with the kernel %.0f s after the %s burst ended (--settle %v, or stalled 15 s)", bs.SettleMs/1000, bs.Kind, b.f.settle))
		}
		if !bs.Equal {
			res.Notes = append(res.Notes, fmt.Sprintf("MISMATCH in the %s burst: %d of %d ops refused with ECAPABILITY, kernel denies %d, chain counter %d, chain rows %d",
				bs.Kind, bs.Denied, bs.Ops, bs.KernelDenies, bs.ChainDenies, bs.ChainRows))
		}
	}
	if res.Revoke.Quarantined != "" {
		res.Notes = append(res.Notes, "the revoke quarantined the loop agent (a descriptor was open under the scope): "+res.Revoke.Quarantined)
	}
	res.Headline = h
	return res, nil
}

// revoke runs an agent that loops opens of a file it may read, revokes
// that scope once the loop is under way, and places every op against the
// moment the call returned.
func (b *enforceBench) revoke(ctx context.Context) (revokeStats, error) {
	scope := "fs.read:" + filepath.Dir(b.revoked) + "/**"
	ready := min(2000, b.f.loopIters/4)
	a, err := b.d.c.AgentRun(ctx, b.req("revoke-loop", []string{scope}, "loop", "--path", b.revoked,
		"--iters", strconv.Itoa(b.f.loopIters), "--ready", strconv.Itoa(ready), "--after-deny", strconv.Itoa(b.f.afterDeny)))
	if err != nil {
		return revokeStats{}, fmt.Errorf("run revoke loop: %w", err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		logs, err := b.d.logs(ctx, a.AID)
		if err != nil {
			return revokeStats{}, err
		}
		if hasReady(logs) {
			break
		}
		if time.Now().After(deadline) {
			b.d.c.Kill(context.Background(), a.AID)
			return revokeStats{}, fmt.Errorf("revoke loop agent %d never printed ready; log: %s", a.AID, tail(logs))
		}
		if err := sleepCtx(ctx, 2*time.Millisecond); err != nil {
			return revokeStats{}, err
		}
	}
	rs := monoNow()
	_, rerr := b.d.c.AgentCapRevoke(ctx, a.AID, []string{scope})
	rr := monoNow()
	quarantined := ""
	if rerr != nil {
		if !errors.Is(rerr, api.ErrConflict) {
			b.d.c.Kill(context.Background(), a.AID)
			return revokeStats{}, fmt.Errorf("revoke: %w", rerr)
		}
		// A descriptor was open under the scope at that instant: the
		// agent is frozen. Let it finish its loop (each later open is
		// refused) so the figures are complete.
		quarantined = oneLine(rerr)
		if _, err := b.d.c.Release(ctx, a.AID); err != nil {
			return revokeStats{}, fmt.Errorf("release the quarantined loop agent: %w", err)
		}
	}
	end, err := b.d.waitEnd(ctx, a.AID, 2*time.Minute)
	if err != nil {
		return revokeStats{}, err
	}
	logs, err := b.d.logs(ctx, a.AID)
	if err != nil {
		return revokeStats{}, err
	}
	if end.State != "Terminated-clean" {
		return revokeStats{}, fmt.Errorf("revoke loop agent %d ended %s: %s; log: %s", a.AID, end.State, end.Reason, tail(logs))
	}
	r, err := parseProbe(logs, "loop")
	if err != nil {
		return revokeStats{}, fmt.Errorf("revoke loop agent %d: %w", a.AID, err)
	}
	st, err := analyzeRevoke(r.ops(), rs, rr)
	if err != nil {
		return st, fmt.Errorf("revoke loop agent %d: %w", a.AID, err)
	}
	st.Quarantined = quarantined
	return st, nil
}

func monoNow() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// burstStats is one burst of denies and what each counter saw of it.
type burstStats struct {
	Kind         string         `json:"kind"` // connect (cgroup BPF) or open (supervisor)
	Ops          int            `json:"ops"`
	Denied       int            `json:"denied"` // ECAPABILITY as the probe saw it
	Errnos       map[string]int `json:"errnos"`
	NsPerOp      float64        `json:"ns_per_op"`
	KernelDenies uint64         `json:"kernel_denies"` // doctor's counter, delta
	ChainDenies  uint64         `json:"chain_denies"`  // doctor's counter, delta
	RingbufFull  uint64         `json:"ringbuf_full"`  // doctor's counter, delta
	ChainRows    int            `json:"chain_rows"`    // cap.deny rows of the agent, counted in the chain
	Restarted    uint64         `json:"restarted"`     // kernel denies beyond the probe's: restarted calls
	CaughtUp     bool           `json:"caught_up"`     // the chain reached the kernel's count before --settle ran out
	SettleMs     float64        `json:"settle_ms"`     // from the agent's end until the chain caught up
	// ChainRowsPerS is deny rows written per second from the burst's
	// start until the chain caught up: the chain's drain rate.
	ChainRowsPerS float64 `json:"chain_rows_per_s"`
	Equal         bool    `json:"equal"`
}

func (b *enforceBench) burstRun(ctx context.Context, kind string, n int) (burstStats, error) {
	bs := burstStats{Kind: kind, Ops: n}
	before, caught, err := b.d.settle(ctx, b.f.settle)
	if err != nil {
		return bs, err
	}
	if !caught {
		return bs, fmt.Errorf("before the %s burst: the chain has not caught up with the kernel (%v) after %v; the figures would mix bursts", kind, before, b.f.settle)
	}
	args := []string{"deny-connect", "--addr", b.addr()}
	if kind == "open" {
		args = []string{"deny-open", "--path", b.denied}
	}
	// The agent holds nothing that covers the target: every op is denied.
	start := time.Now()
	aid, r, err := b.agent(ctx, "burst-"+kind, nil, args[0], append(args[1:], "--count", strconv.Itoa(n))...)
	if err != nil {
		return bs, err
	}
	t := time.Now()
	after, caught, err := b.d.settle(ctx, b.f.settle)
	if err != nil {
		return bs, err
	}
	bs.CaughtUp = caught
	el := time.Since(t)
	bs.SettleMs = round(float64(el.Microseconds()) / 1000)
	bs.ChainRowsPerS = round(float64(after["chain_denies"]-before["chain_denies"]) / time.Since(start).Seconds())
	if bs.ChainRows, err = b.d.chainDenyRows(ctx, aid); err != nil {
		return bs, err
	}
	bs.Denied = r.Errnos[strconv.Itoa(int(api.ECapability))]
	bs.Errnos, bs.NsPerOp = r.Errnos, round(r.NsPerOp)
	bs.KernelDenies = after["kernel_denies"] - before["kernel_denies"]
	bs.ChainDenies = after["chain_denies"] - before["chain_denies"]
	bs.RingbufFull = after["ringbuf_full"] - before["ringbuf_full"]
	// A call interrupted by a signal while the supervisor answers it is
	// restarted and asks again: two kernel denies (and two rows) for one
	// op the probe counted. So the kernel may count more than the probe,
	// never fewer; the kernel and the chain must agree exactly.
	if bs.KernelDenies > uint64(bs.Denied) {
		bs.Restarted = bs.KernelDenies - uint64(bs.Denied)
	}
	bs.Equal = bs.CaughtUp && bs.Denied == n && bs.KernelDenies >= uint64(bs.Denied) && bs.KernelDenies == bs.ChainDenies &&
		bs.ChainDenies == uint64(bs.ChainRows) && bs.RingbufFull == 0
	return bs, nil
}

func (r *enforceResult) print(asJSON bool) error {
	if asJSON {
		return printJSON(os.Stdout, map[string]any{"name": "enforce", "rounds": r.Rounds, "cpus": r.CPUs, "idle_agents": r.Idle,
			"method": r.Method, "series": r.Series, "revoke": r.Revoke, "bursts": r.Bursts, "notes": r.Notes, "headline": r.Headline})
	}
	h := r.Headline
	tw := table(os.Stdout)
	fmt.Fprintf(tw, "enforce: %d rounds, %d CPUs, %d idle agents, portable enforcer\tmin\tmedian\n", r.Rounds, r.CPUs, r.Idle)
	for _, s := range r.Series {
		fmt.Fprintf(tw, "%s\t%.0f %s\t%.0f %s\n", s.Name, s.Min, s.Unit, s.Median, s.Unit)
	}
	fmt.Fprintf(tw, "open: non-agent / no coconut (goal ≤ 1.02)\t\t%.3f×\n", h["nonagent_open_ratio"])
	fmt.Fprintf(tw, "open: agent / no coconut (goal < 4)\t\t%.2f× (+%.0f ns)\n", h["agent_open_ratio"], h["agent_open_ns_added"])
	fmt.Fprintf(tw, "open: agent with enforcement: static / no coconut\t\t%.2f×\n", h["agent_static_open_ratio"])
	fmt.Fprintf(tw, "connect: agent / no coconut (goal ≤ 1.3)\t\t%.3f×\n", h["connect_ratio"])
	v := r.Revoke
	fmt.Fprintf(tw, "revoke under a loop of opens: %d ops, %d succeeded before the call, %d while it ran\t\t\n", v.Ops, v.SucceededBefore, v.SucceededDuring)
	fmt.Fprintf(tw, "  ops started after the call returned that succeeded (must be 0)\t\t%d\n", v.OpsAfterRevoke)
	fmt.Fprintf(tw, "  call start → return\t\t%.1f µs\n", v.CallUs)
	fmt.Fprintf(tw, "  call return → first denied op done (negative: denied before the return)\t\t%.1f µs\n", v.ReturnToFirstDenyUs)
	for _, bs := range r.Bursts {
		via := "cgroup BPF"
		if bs.Kind == "open" {
			via = "seccomp supervisor"
		}
		fmt.Fprintf(tw, "burst of %d denied %ss (%s, %.0f ns/op)\t\t\n", bs.Ops, bs.Kind, via, bs.NsPerOp)
		fmt.Fprintf(tw, "  ops refused with ECAPABILITY / kernel denies / chain counter / chain rows\t\t%d / %d / %d / %d\n", bs.Denied, bs.KernelDenies, bs.ChainDenies, bs.ChainRows)
		if bs.Restarted > 0 {
			fmt.Fprintf(tw, "  calls restarted after a signal and denied again (each its own kernel deny and row)\t\t%d\n", bs.Restarted)
		}
		fmt.Fprintf(tw, "  ring buffer full (must be 0)\t\t%d\n", bs.RingbufFull)
		caught := "caught up with the kernel"
		if !bs.CaughtUp {
			caught = "had NOT caught up with the kernel"
		}
		fmt.Fprintf(tw, "  chain %s %.1f s after the agent ended; %.0f deny rows/s from the burst's start\t\t\n", caught, bs.SettleMs/1000, bs.ChainRowsPerS)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range r.Notes {
		fmt.Printf("NOTE: %s\n", n)
	}
	fmt.Printf("method: %s\n", r.Method)
	return nil
}
