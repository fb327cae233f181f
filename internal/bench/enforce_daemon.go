package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/client"
	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/cgroup"
	"github.com/coconut-os/coconut/internal/orphan"
)

// privateDaemon is a coconutd the enforce bench starts for itself in a
// temporary state dir, so that "no coconut at all" is measured before it
// exists and nothing of the host's own daemon is touched.
type privateDaemon struct {
	cmd        *exec.Cmd
	done       chan struct{} // closed when cmd has exited
	dir        string
	log        string
	c          *client.Client
	cgroupRoot string
}

// findBeside finds a Coconut binary beside this executable, in
// ../libexec/coconut, or on PATH.
func findBeside(name string) (string, error) {
	if self, err := os.Executable(); err == nil {
		dir := filepath.Dir(self)
		for _, p := range []string{filepath.Join(dir, name), filepath.Join(dir, "../libexec/coconut", name)} {
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				return filepath.Clean(p), nil
			}
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return filepath.Abs(p)
	}
	return "", fmt.Errorf("%s not found beside coconut, in ../libexec/coconut or on PATH (make build, or pass its path)", name)
}

// startDaemon runs coconutd with the portable enforcer, its state and
// socket under dir, and extra flags, and waits until it answers.
func startDaemon(ctx context.Context, coconutd, dir string, extra ...string) (*privateDaemon, error) {
	d := &privateDaemon{dir: dir, log: filepath.Join(dir, "coconutd.log")}
	// Agents reach the broker's socket in here: traversable, not listable
	// by others (the daemon makes its state dir private itself).
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(d.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	sock, state := filepath.Join(dir, "coconut.sock"), filepath.Join(dir, "state")
	// Where the daemon will make its subtree (below its cgroup, which is
	// ours), so that stop removes it even if the daemon never answers.
	if mount, err := cgroup.UnifiedMount(); err == nil {
		if own, err := cgroup.ProcPath(0); err == nil {
			d.cgroupRoot = filepath.Join(mount, own, cgroup.SubtreeName(state))
		}
	}
	d.cmd = exec.Command(coconutd, append([]string{"--state-dir", state, "--socket", sock,
		"--config", "/dev/null", "--enforcer", "portable"}, extra...)...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start coconutd: %w", err)
	}
	d.done = make(chan struct{})
	go func() { d.cmd.Wait(); close(d.done) }()
	d.c = client.New(sock)
	deadline := time.Now().Add(20 * time.Second)
	for {
		doc, err := d.c.Doctor(ctx)
		if err == nil {
			if doc.CgroupRoot != "" {
				d.cgroupRoot = doc.CgroupRoot
			}
			if doc.Enforcer != "portable" {
				d.stop()
				return nil, fmt.Errorf("private coconutd runs the %s enforcer, not portable", doc.Enforcer)
			}
			return d, nil
		}
		select {
		case <-d.done:
			d.stop()
			return nil, fmt.Errorf("private coconutd exited: %s", d.logTail())
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			d.stop()
			return nil, fmt.Errorf("private coconutd did not come up: %w (log: %s)", err, d.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (d *privateDaemon) logTail() string {
	b, _ := os.ReadFile(d.log)
	s := strings.TrimSpace(string(b))
	if len(s) > 600 {
		s = "…" + s[len(s)-600:]
	}
	return s
}

// stop ends the daemon, then the agents that outlive it by design, and
// removes its cgroup subtree.
func (d *privateDaemon) stop() {
	if d.cmd != nil && d.cmd.Process != nil {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(15 * time.Second):
			d.cmd.Process.Kill()
			<-d.done
		}
		d.cmd = nil
	}
	if d.cgroupRoot == "" {
		return
	}
	// The agents outlive the daemon by design and its network guard stays
	// pinned: end and remove all of it, as coconutd --uninstall
	// --kill-agents does, so the bench leaves nothing behind.
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := orphan.UninstallKillingAgents(filepath.Join(d.dir, "state"), quiet); err != nil {
		fmt.Fprintf(os.Stderr, "bench enforce: remove the private daemon's agents, pins and cgroups: %v\n", err)
	}
	d.cgroupRoot = ""
}

// runAgent starts one agent and waits for it to end; it returns the
// agent's log (its stdout and stderr). An agent that does not end cleanly
// is an error that quotes its log.
func (d *privateDaemon) runAgent(ctx context.Context, req api.RunRequest, timeout time.Duration) (uint64, []byte, error) {
	a, err := d.c.AgentRun(ctx, req)
	if err != nil {
		return 0, nil, fmt.Errorf("run agent %s: %w", req.Name, err)
	}
	end, err := d.waitEnd(ctx, a.AID, timeout)
	if err != nil {
		return a.AID, nil, err
	}
	logs, err := d.logs(ctx, a.AID)
	if err != nil {
		return a.AID, nil, err
	}
	if end.State != "Terminated-clean" {
		return a.AID, logs, fmt.Errorf("agent %s (%d) ended %s: %s; log: %s", req.Name, a.AID, end.State, end.Reason, tail(logs))
	}
	return a.AID, logs, nil
}

func (d *privateDaemon) waitEnd(ctx context.Context, aid uint64, timeout time.Duration) (*api.Agent, error) {
	deadline := time.Now().Add(timeout)
	for {
		a, err := d.c.Agent(ctx, aid)
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(a.State, "Terminated") {
			return a, nil
		}
		if time.Now().After(deadline) {
			d.c.Kill(context.Background(), aid)
			return nil, fmt.Errorf("agent %s (%d) still %s after %v: killed", a.Name, aid, a.State, timeout)
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

func (d *privateDaemon) logs(ctx context.Context, aid uint64) ([]byte, error) {
	var b strings.Builder
	if err := d.c.Logs(ctx, aid, &b); err != nil {
		return nil, fmt.Errorf("agent %d log: %w", aid, err)
	}
	return []byte(b.String()), nil
}

// counters reads doctor's deny counters.
func (d *privateDaemon) counters(ctx context.Context) (map[string]uint64, error) {
	doc, err := d.c.Doctor(ctx)
	if err != nil {
		return nil, err
	}
	for _, k := range []string{"kernel_denies", "chain_denies", "ringbuf_full"} {
		if _, ok := doc.Counters[k]; !ok {
			return nil, fmt.Errorf("doctor has no counters.%s", k)
		}
	}
	return doc.Counters, nil
}

// stallAfter is how long the chain counter may stand still, behind the
// kernel's, before settle stops waiting for it.
const stallAfter = 15 * time.Second

// settle waits until the chain has caught up with the kernel (the two
// deny counters equal and unchanged for a moment). It keeps waiting while
// the chain makes progress, up to limit, and returns the last reading
// either way with caught=false when it gave up: a mismatch is a result to
// report, not an error.
func (d *privateDaemon) settle(ctx context.Context, limit time.Duration) (last map[string]uint64, caught bool, err error) {
	deadline := time.Now().Add(limit)
	moved := time.Now()
	stable := 0
	for {
		c, err := d.counters(ctx)
		if err != nil {
			return nil, false, err
		}
		if last == nil || c["chain_denies"] != last["chain_denies"] {
			moved = time.Now()
		}
		same := last != nil && c["kernel_denies"] == last["kernel_denies"] && c["chain_denies"] == last["chain_denies"]
		if same && c["kernel_denies"] == c["chain_denies"] {
			stable++
		} else {
			stable = 0
		}
		last = c
		if stable >= 3 {
			return last, true, nil
		}
		if time.Now().After(deadline) || time.Since(moved) > stallAfter {
			return last, false, nil
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return nil, false, err
		}
	}
}

// chainDenyRows counts the denies the cap.deny rows of one agent stand for
// in the chain itself: an aggregate row (issue 19) counts Detail["count"].
func (d *privateDaemon) chainDenyRows(ctx context.Context, aid uint64) (int, error) {
	n := 0
	q := client.AuditQuery{AID: &aid, Type: audit.TypeCapDeny, Result: audit.ResultDeny, Limit: 10000}
	for {
		page, err := d.c.AgentAuditQuery(ctx, q)
		if err != nil {
			return 0, fmt.Errorf("count deny rows: %w", err)
		}
		for _, r := range page.Records {
			n += denyRowCount(r.Detail)
		}
		if page.Next == 0 || len(page.Records) == 0 {
			return n, nil
		}
		q.AfterSeq = page.Next
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func tail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 400 {
		s = "…" + s[len(s)-400:]
	}
	return strings.ReplaceAll(s, "\n", "; ")
}

var errNotRoot = errors.New("coconut bench enforce needs root: it starts a private coconutd with real cgroups and agents")

// denyRowCount is how many denies a deny row counts: an aggregate row's
// Detail["count"], or 1 (audit.DenyCount, on the API's row).
func denyRowCount(detail map[string]string) int {
	if n, err := strconv.Atoi(detail["count"]); err == nil && n > 0 {
		return n
	}
	return 1
}
