package agent

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/state"
)

// An agent's end and a daemon restart without root: the final row, the
// last save, and which agents a new Manager adopts.

// waitReapers waits until every agent watcher of m has returned, each
// after its last save. A watcher that never returns fails the test
// instead of hanging it.
func (u *unit) waitReapers() {
	u.t.Helper()
	done := make(chan struct{})
	go func() {
		u.m.reapers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		u.t.Fatal("an agent watcher did not return in 10s")
	}
}

// waitStopped waits until agent aid's end was handled (ended closes
// stopped after the last save).
func (u *unit) waitStopped(aid uint64) {
	u.t.Helper()
	u.m.mu.Lock()
	e := u.m.agents[aid]
	u.m.mu.Unlock()
	select {
	case <-e.stopped:
	case <-time.After(10 * time.Second):
		u.t.Fatalf("agent %d's end was not handled in 10s", aid)
	}
}

// lastRow is agent aid's newest row.
func (u *unit) lastRow(aid uint64) audit.Record {
	u.t.Helper()
	rs, err := u.chain.Query(audit.Query{AID: &aid, Limit: audit.MaxLimit})
	if err != nil || len(rs) == 0 {
		u.t.Fatalf("rows of %d: %v", aid, err)
	}
	return rs[len(rs)-1]
}

// checkGone checks that agent a's cgroup was killed and removed and the
// enforcer told to forget it.
func (u *unit) checkGone(a *api.Agent) {
	u.t.Helper()
	if !u.cg.called("kill "+a.CgroupPath) || !u.cg.called("remove "+a.CgroupPath) {
		u.t.Fatalf("cgroup calls %v", u.cg.calls)
	}
	if _, err := os.Stat(a.CgroupPath); !errors.Is(err, os.ErrNotExist) {
		u.t.Fatalf("cgroup %s left: %v", a.CgroupPath, err)
	}
	u.enf.mu.Lock()
	defer u.enf.mu.Unlock()
	if !slices.Contains(u.enf.unbinds, a.AID) {
		u.t.Fatalf("agent %d not unbound (%v)", a.AID, u.enf.unbinds)
	}
}

// TestUnitEndRecorded: an agent whose program ends by itself, is killed
// from outside, or is killed over the API ends in the right state with one
// terminal row, its exit status in the record on disk once its watcher
// returned, and its cgroup gone.
func TestUnitEndRecorded(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	if sh, err = filepath.EvalSymlinks(sh); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		argv   func(u *unit) []string
		end    func(u *unit, a *api.Agent)
		state  state.State
		status int
		reason string
	}{
		{"exits", func(u *unit) []string { return []string{sh, "-c", "exit 3"} }, nil,
			state.TerminatedClean, 3, "exited with status 3"},
		{"signalled from outside", func(u *unit) []string { return []string{u.program, "60"} }, func(u *unit, a *api.Agent) {
			if err := syscall.Kill(a.PID, syscall.SIGTERM); err != nil {
				u.t.Fatal(err)
			}
		}, state.TerminatedClean, 128 + int(syscall.SIGTERM), "killed by signal 15"},
		{"killed over the API", func(u *unit) []string { return []string{u.program, "60"} }, func(u *unit, a *api.Agent) {
			k, err := u.m.Kill(context.Background(), u.caller, a.AID)
			if err != nil || k.State != string(state.TerminatedRevoked) {
				u.t.Fatalf("kill: %+v %v", k, err)
			}
		}, state.TerminatedRevoked, 128 + int(syscall.SIGKILL), "killed by uid " + strconv.Itoa(os.Getuid())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUnit(t)
			a, err := u.m.Run(context.Background(), u.caller, api.RunRequest{Command: tt.argv(u), Workdir: u.dir})
			if err != nil {
				t.Fatal(err)
			}
			if tt.end != nil {
				tt.end(u, a)
			}
			u.waitReapers()
			want := append(slices.Clone(startRows), "agent.state:"+string(tt.state))
			if got := u.rowsOf(a.AID); !slices.Equal(got, want) {
				t.Fatalf("rows %v, want %v", got, want)
			}
			last := u.lastRow(a.AID)
			if last.Detail["from"] != string(state.Active) || !strings.Contains(last.Detail["reason"], tt.reason) {
				t.Fatalf("final row %+v", last)
			}
			rec := u.record(a.AID)
			if rec.State != tt.state || rec.ExitStatus == nil || *rec.ExitStatus != tt.status || rec.EndTime.IsZero() ||
				!strings.Contains(rec.Reason, tt.reason) {
				t.Fatalf("record %s %v %v %q", rec.State, rec.ExitStatus, rec.EndTime, rec.Reason)
			}
			u.checkGone(a)
			// Killing an ended agent changes nothing and writes nothing.
			if k, err := u.m.Kill(context.Background(), u.caller, a.AID); err != nil || k.State != string(tt.state) || len(u.rowsOf(a.AID)) != len(want) {
				t.Fatalf("kill after the end: %+v %v", k, err)
			}
		})
	}
}

// TestUnitOOMEndsAgent: the kernel's OOM count in the agent's group (the
// fake cgroupfs's memory.events) ends it Terminated-revoked with the
// reason, through the quota controller's OOM watch.
func TestUnitOOMEndsAgent(t *testing.T) {
	u := newUnit(t)
	a, err := u.m.Run(context.Background(), u.caller, api.RunRequest{Command: []string{u.program, "60"}, Workdir: u.dir,
		Quota: &api.QuotaBudget{MemoryMax: 32 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	other := u.mustRun()
	if err := os.WriteFile(filepath.Join(a.CgroupPath, "memory.events"), []byte("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	u.waitStopped(a.AID) // the OOM watch revokes it; the watcher records the exit
	rec := u.record(a.AID)
	if rec.State != state.TerminatedRevoked || !strings.Contains(rec.Reason, "out of memory") || !strings.Contains(rec.Reason, "33554432") {
		t.Fatalf("record %s %q", rec.State, rec.Reason)
	}
	if last := u.lastRow(a.AID); last.Object != string(state.TerminatedRevoked) {
		t.Fatalf("final row %+v", last)
	}
	if got := u.waitState(other.AID, state.Active); got.PID != other.PID || !alive(other.PID) {
		t.Fatal("the OOM of one agent touched another")
	}
}

// TestUnitAdoptAfterRestart: a Manager opened on the same state directory
// adopts the agent whose main process is still in its cgroup (bound to
// the enforcer again, an agent.adopt row, the record marked), marks the
// one whose process ended meanwhile Terminated-clean with no exit status,
// ends one that was still being spawned, and kills a cgroup no record
// names. When the adopted agent ends, the new Manager records it.
func TestUnitAdoptAfterRestart(t *testing.T) {
	u := newUnit(t)
	live := u.mustRun("net.connect:127.0.0.1:80")
	dead := u.mustRun("net.connect:127.0.0.1:80")
	u.close()

	// While no daemon runs: dead's process ends and its cgroup empties,
	// a cgroup appears that no record names, and a record is left in
	// Spawning (a daemon that died mid-spawn).
	g, err := u.cg.Group(dead.AID)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.cg.Kill(g); err != nil {
		t.Fatal(err)
	}
	orphan := u.cg.Tree.Path(99)
	if err := os.Mkdir(orphan, 0o755); err != nil {
		t.Fatal(err)
	}
	st := store{dir: filepath.Join(u.dir, "agents")}
	if err := st.save(&record{AID: 50, Name: "half", State: state.Spawning, CgroupPath: u.cg.Tree.Path(50), Caps: []string{}}); err != nil {
		t.Fatal(err)
	}
	u.enf.mu.Lock()
	before := len(u.enf.binds)
	u.enf.mu.Unlock()

	u.open()

	a, err := u.m.Get(u.caller, live.AID)
	if err != nil {
		t.Fatal(err)
	}
	if a.State != string(state.Active) || !a.Adopted || a.PID != live.PID || !alive(a.PID) {
		t.Fatalf("live agent after restart: %+v", a)
	}
	want := append(slices.Clone(startRows), audit.TypeAgentAdopt)
	if got := u.rowsOf(live.AID); !slices.Equal(got, want) {
		t.Fatalf("live rows %v, want %v", got, want)
	}
	if r := u.lastRow(live.AID); r.Object != string(state.Active) || r.PID != live.PID {
		t.Fatalf("adopt row %+v", r)
	}
	u.enf.mu.Lock()
	var rebound []uint64
	for _, b := range u.enf.binds[before:] {
		rebound = append(rebound, b.AID)
	}
	u.enf.mu.Unlock()
	if !slices.Equal(rebound, []uint64{live.AID}) {
		t.Fatalf("bound after the restart: %v", rebound)
	}
	if rec := u.record(live.AID); !rec.Adopted || rec.State != state.Active {
		t.Fatalf("live record %+v", rec)
	}

	d, err := u.m.Get(u.caller, dead.AID)
	if err != nil {
		t.Fatal(err)
	}
	if d.State != string(state.TerminatedClean) || d.ExitStatus != nil || !strings.Contains(d.Reason, "while coconutd was not running") {
		t.Fatalf("dead agent after restart: %+v", d)
	}
	if got := u.rowsOf(dead.AID); !slices.Equal(got, append(slices.Clone(startRows), "agent.state:Terminated-clean")) {
		t.Fatalf("dead rows %v", got)
	}
	u.checkGone(d)

	half, err := u.m.Get(Caller{UID: 0}, 50)
	if err != nil {
		t.Fatal(err)
	}
	if half.State != string(state.TerminatedRevoked) || !strings.Contains(half.Reason, "being spawned") {
		t.Fatalf("half-spawned agent: %+v", half)
	}
	orphans := u.rows(audit.TypeAgentOrphan)
	if len(orphans) != 1 || orphans[0].AID != 99 || orphans[0].Object != orphan || orphans[0].Result != audit.ResultDeny {
		t.Fatalf("orphan rows %+v", orphans)
	}
	if !u.cg.called("kill "+orphan) || !u.cg.called("remove "+orphan) {
		t.Fatalf("cgroup calls %v", u.cg.calls)
	}

	// The adopted agent's end is seen through its pidfd, not as a child:
	// no exit status.
	if err := syscall.Kill(live.PID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	u.waitStopped(live.AID)
	rec := u.record(live.AID)
	if rec.State != state.TerminatedClean || rec.ExitStatus != nil || !strings.Contains(rec.Reason, "adopted agent") {
		t.Fatalf("adopted agent's end: %s %v %q", rec.State, rec.ExitStatus, rec.Reason)
	}
	if got := u.rowsOf(live.AID); !slices.Equal(got, append(want, "agent.state:Terminated-clean")) {
		t.Fatalf("live rows at the end %v", got)
	}
	// The next AID is past every recorded one, the half-spawned included.
	next := u.mustRun()
	if next.AID <= 50 {
		t.Fatalf("new agent got aid %d", next.AID)
	}
}
