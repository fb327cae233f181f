package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/cgroup"
	"github.com/coconut-os/coconut/internal/state"
)

// watchChild reaps an agent this daemon started and records its end.
func (m *Manager) watchChild(e *entry, cmd *exec.Cmd) {
	defer m.reapers.Done()
	err := cmd.Wait()
	status, reason := exitStatus(cmd, err)
	m.ended(e, &status, reason)
}

// exitStatus follows the shell's convention: the exit code, or 128+signal.
func exitStatus(cmd *exec.Cmd, err error) (int, string) {
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case !ok:
		return -1, fmt.Sprintf("wait: %v", err)
	case ws.Signaled():
		return 128 + int(ws.Signal()), fmt.Sprintf("killed by signal %d (%s)", ws.Signal(), ws.Signal())
	default:
		return ws.ExitStatus(), fmt.Sprintf("exited with status %d", ws.ExitStatus())
	}
}

// ended handles the end of an agent's main process: whatever it left in
// its cgroup is killed, and an agent nobody stopped is Terminated-clean.
func (m *Manager) ended(e *entry, status *int, reason string) {
	select {
	case <-m.stop:
		return // a daemon shutting down leaves agents to its successor
	default:
	}
	e.trans.Lock()
	defer e.trans.Unlock()
	to := state.TerminatedClean
	m.mu.Lock()
	r := *e.rec
	m.mu.Unlock()
	if oom := m.budget.oomReason(r); oom != "" { // issue 5: an OOM kill inside the agent ends it revoked
		to, reason = state.TerminatedRevoked, oom+" ("+reason+")"
	}
	m.endLocked(e, to, reason, func(r *record) {
		r.ExitStatus = status
		if r.EndTime.IsZero() {
			r.EndTime = time.Now().UTC()
		}
	})
	select {
	case <-e.stopped:
	default:
		close(e.stopped)
	}
}

// Kill ends the agent: Terminated-revoked is recorded, then every process
// in its cgroup is killed. Killing an agent that already ended is not an
// error: what the caller asked for is true, and the agent (in the state
// it ended in) is returned unchanged, with no new row.
func (m *Manager) Kill(ctx context.Context, caller Caller, aid uint64) (*api.Agent, error) {
	e, err := m.lookup(caller, aid)
	if err != nil {
		return nil, err
	}
	if caller.AID != 0 {
		return nil, api.Errorf(api.ErrDenied, "agent %d may not kill agents", caller.AID)
	}
	e.trans.Lock()
	defer e.trans.Unlock()
	m.mu.Lock()
	ended := e.rec.State.Terminal()
	m.mu.Unlock()
	if ended {
		return m.Get(caller, aid)
	}
	if err := m.transitionWith(ctx, e, state.TerminatedRevoked, fmt.Sprintf("killed by uid %d", caller.UID), callerDetail(caller), nil); err != nil {
		return nil, err
	}
	m.killGroup(e)
	return m.Get(caller, aid)
}

// killGroup kills everything in the agent's cgroup and removes it.
func (m *Manager) killGroup(e *entry) {
	m.mu.Lock()
	r := *e.rec
	m.mu.Unlock()
	path := r.CgroupPath
	defer m.budget.release(r) // issue 5: v1 groups and the SSD scratch go with the agent
	g, err := m.cfg.Cgroups.Open(path)
	if err != nil {
		m.unbind(e.rec.AID)
		return // already gone
	}
	if err := m.cfg.Cgroups.Kill(g); err != nil {
		m.log.Error("kill agent cgroup", "aid", e.rec.AID, "err", err)
		return
	}
	m.unbind(e.rec.AID) // only once the cgroup is empty: unbound means unguarded
	if err := m.cfg.Cgroups.Remove(g); err != nil {
		m.log.Warn("remove agent cgroup", "aid", e.rec.AID, "err", err)
	}
}

// revoke ends a running agent that the daemon itself decided to stop.
func (m *Manager) revoke(e *entry, reason string) {
	e.trans.Lock()
	defer e.trans.Unlock()
	m.endLocked(e, state.TerminatedRevoked, reason, nil)
}

// endLocked records the terminal state (if not already terminal) and kills
// what is left in the cgroup. The caller holds e.trans.
func (m *Manager) endLocked(e *entry, to state.State, reason string, mutate func(*record)) {
	m.mu.Lock()
	terminal := e.rec.State.Terminal()
	m.mu.Unlock()
	if !terminal {
		if err := m.transition(context.Background(), e, to, reason, mutate); err != nil {
			m.log.Error("record agent end", "aid", e.rec.AID, "err", err)
		}
	} else if mutate != nil {
		m.mu.Lock()
		mutate(e.rec)
		m.mu.Unlock()
		if err := m.persist(e); err != nil {
			m.log.Error("persist agent end", "aid", e.rec.AID, "err", err)
		}
	}
	m.killGroup(e)
	m.tenants.ended(e.rec) // inference.go: the key stops working, the broker forgets the agent
}

// adoptAll runs at start: agents of a previous daemon that still run are
// watched again; the ones that ended meanwhile are recorded as ended; agent
// cgroups nobody knows are killed, since nothing may run unaccounted.
func (m *Manager) adoptAll() error {
	known := map[uint64]bool{}
	for aid, e := range m.agents {
		known[aid] = true
		if e.rec.State.Terminal() {
			continue
		}
		m.adopt(e)
	}
	live, err := m.cfg.Cgroups.List()
	if err != nil {
		return err
	}
	for _, aid := range live {
		if known[aid] {
			continue
		}
		g, err := m.cfg.Cgroups.Group(aid)
		if err != nil {
			continue
		}
		m.log.Warn("killing agent cgroup with no registry record", "aid", aid, "path", g.Path)
		_ = m.audit(context.Background(), audit.AgentOrphan(aid, g.Path, "cgroup without a registry record"))
		if err := m.cfg.Cgroups.Kill(g); err == nil {
			m.cfg.Cgroups.Remove(g)
		}
	}
	return nil
}

func (m *Manager) adopt(e *entry) {
	r := e.rec
	e.trans.Lock()
	defer e.trans.Unlock()
	if r.State == state.Spawning || r.State == state.Attested {
		m.endLocked(e, state.TerminatedRevoked, "coconutd stopped while the agent was being spawned", nil)
		return
	}
	g, err := m.cfg.Cgroups.Open(r.CgroupPath)
	if err != nil {
		m.endLocked(e, state.TerminatedClean, "ended while coconutd was not running (exit status unknown)", nil)
		return
	}
	pidfd, err := m.sameProcess(r, g)
	if err != nil {
		m.endLocked(e, state.TerminatedClean, "main process ended while coconutd was not running (exit status unknown)", nil)
		return
	}
	// The network guard's programs went with the previous daemon: bind the
	// agent again before it is trusted to run on. If that fails it must
	// not run unguarded.
	if _, err := m.bind(r); err != nil {
		unix.Close(pidfd)
		m.endLocked(e, state.TerminatedRevoked, fmt.Sprintf("could not bind to the enforcer after a daemon restart: %v", err), nil)
		return
	}
	if err := m.sup.resume(r); err != nil { // supervision.go
		unix.Close(pidfd)
		m.endLocked(e, state.TerminatedRevoked, fmt.Sprintf("could not resume its seccomp supervisor after a daemon restart: %v", err), nil)
		return
	}
	r.Adopted = true
	if err := m.audit(context.Background(), audit.AgentAdopt(r.AID, string(r.State), r.PID)); err != nil {
		m.log.Error("record adoption", "aid", r.AID, "err", err)
	}
	if err := m.store.save(r); err != nil {
		m.log.Error("persist adoption", "aid", r.AID, "err", err)
	}
	m.log.Info("adopted agent", "aid", r.AID, "name", r.Name, "pid", r.PID)
	m.wg.Add(1)
	go m.watchAdopted(e, pidfd)
}

// sameProcess opens a pidfd on the recorded main pid and checks it is the
// same process (start time) and still in the agent's cgroup, so a
// recycled pid is never mistaken for the agent.
func (m *Manager) sameProcess(r *record, g *cgroup.Group) (int, error) {
	if r.PID <= 0 {
		return -1, errors.New("no pid")
	}
	fd, err := unix.PidfdOpen(r.PID, 0)
	if err != nil {
		return -1, err
	}
	start, err := procStart(r.PID)
	if err != nil || start != r.PIDStart {
		unix.Close(fd)
		return -1, errors.New("pid recycled")
	}
	if !m.cfg.Cgroups.Holds(g, r.PID) {
		unix.Close(fd)
		return -1, errors.New("pid left the agent cgroup")
	}
	return fd, nil
}

// watchAdopted waits for an adopted (not our child) main process to end.
// Its exit status belongs to whoever reaps it, so it is recorded unknown.
func (m *Manager) watchAdopted(e *entry, pidfd int) {
	defer m.wg.Done()
	defer unix.Close(pidfd)
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		select {
		case <-m.stop:
			return
		default:
		}
		n, err := unix.Poll(fds, 500)
		if errors.Is(err, unix.EINTR) || (err == nil && n == 0) {
			continue
		}
		break
	}
	m.ended(e, nil, "main process ended (adopted agent: exit status not available to coconutd)")
}

// procStart returns a process's start time in clock ticks since boot
// (field 22 of /proc/PID/stat). With the pid it names one process for the
// life of the machine: a recycled pid has a later start time.
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: skip to
	// the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); starttime is field 22.
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}
