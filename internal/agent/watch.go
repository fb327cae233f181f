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

	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/cgroup"
	"github.com/coconut-os/coconut/internal/enforce"
	"github.com/coconut-os/coconut/internal/state"
	"github.com/coconut-os/coconut/internal/supervise"
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
	if err := m.resumeSupervisor(r); err != nil {
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

// resumeSupervisor serves again the listener the holder kept for an
// adopted agent. A call the dead daemon had received but not answered
// would wait forever: if its row is in the chain it gets that row's
// verdict (answerRecorded), otherwise freezing and thawing the cgroup
// interrupts it, and it restarts and is trapped again, now answered. The
// freeze comes before serving: a call this daemon received and recorded
// while the freeze interrupts it would restart into a second row. An
// agent filtered with no listener left would get ENOSYS from every
// mediated call: it is ended rather than left crippled (and it cannot be
// left unfiltered). An agent started without the supervisor (an older
// daemon, or the supervisor turned off) keeps running on its floor.
func (m *Manager) resumeSupervisor(r *record) error {
	sup, ok := m.cfg.Enforce.(enforce.Supervisor)
	if !ok {
		return nil
	}
	m.answerRecorded(r.AID)
	frozen := false
	if r.State != state.Quarantined { // a quarantined agent's calls restart when it is released
		if err := m.cfg.Cgroups.Freeze(r.CgroupPath, true); err != nil {
			return fmt.Errorf("freeze to restart pending calls: %w", err)
		}
		frozen = true
	}
	err := sup.Resume(r.AID)
	if frozen {
		if ferr := m.cfg.Cgroups.Freeze(r.CgroupPath, false); ferr != nil && err == nil {
			err = fmt.Errorf("thaw after restarting pending calls: %w", ferr)
		}
	}
	switch {
	case errors.Is(err, enforce.ErrNotHeld):
		if filtered, ferr := seccompFiltered(r.PID); ferr != nil || filtered {
			return fmt.Errorf("its listener was not kept (holder gone)")
		}
		m.log.Warn("adopted agent runs without the seccomp supervisor", "aid", r.AID)
		return nil
	case err != nil:
		return err
	}
	return nil
}

// answerRecorded gives every notification of agent aid that the dead
// daemon recorded (a row with its notif_id near the chain's end) and did
// not answer the recorded verdict (issue 20).
func (m *Manager) answerRecorded(aid uint64) {
	j, ok := m.cfg.Enforce.(enforce.Journaled)
	if !ok {
		return
	}
	head, _ := m.cfg.Chain.Head()
	rows, err := m.cfg.Chain.Query(audit.Query{AID: &aid, AfterSeq: head - min(head, replayLookback), Type: "cap.*", Limit: audit.MaxLimit})
	if err != nil {
		m.log.Warn("read the chain for recorded notifications", "aid", aid, "err", err)
		return
	}
	for _, row := range rows {
		if row.Detail["source"] != "supervisor" {
			continue
		}
		if row.Errno == 0 && !supervise.Continuable(row.Detail["syscall"]) {
			continue // restarted and decided again (supervise.Continuable)
		}
		if row.Errno == 0 && !stillAllowed(j, aid, row) {
			// Revoked since the row: no CONTINUE; the call restarts
			// (the freeze below) and is decided on the current bundle.
			m.log.Info("a call the previous daemon allowed is no longer allowed: decided again", "aid", aid, "seq", row.Seq, "object", row.Object)
			continue
		}
		// notif_ids: the calls an aggregate deny row counts (aggregate.go).
		for _, s := range strings.Split(row.Detail["notif_id"]+","+row.Detail["notif_ids"], ",") {
			id, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				continue
			}
			if j.AnswerRecorded(aid, id, row.Errno) {
				m.log.Info("answered a call the previous daemon recorded", "aid", aid, "seq", row.Seq, "type", row.Type, "object", row.Object)
			}
		}
	}
}

// stillAllowed asks the current policy about a recorded allow: its row's
// object is the real path and its capability the access ("fs.read+write").
// Anything that cannot be read back is not allowed.
func stillAllowed(j enforce.Journaled, aid uint64, row audit.Record) bool {
	verbs, ok := strings.CutPrefix(row.Cap, "fs.")
	if !ok || row.Object == "" {
		return false
	}
	access, ok := supervise.ParseAccess(verbs)
	return ok && j.StillAllowed(aid, row.Object, access)
}

// seccompFiltered reads the Seccomp line of /proc/PID/status (2: filter).
func seccompFiltered(pid int) (bool, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Seccomp:"); ok {
			return strings.TrimSpace(v) == "2", nil
		}
	}
	return false, errors.New("no Seccomp line")
}
