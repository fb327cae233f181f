package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/enforce"
	"github.com/coconut-os/coconut/internal/launch"
	"github.com/coconut-os/coconut/internal/state"
	"github.com/coconut-os/coconut/internal/supervise"
)

// supervision is the manager's side of a supervising backend
// (enforce.Supervisor: the portable backend's seccomp user-notification
// supervisor; enforce.Journaled: its journal of answers). It starts the
// supervisor's side of each launch (start), serves an agent adopted after
// a restart again, answering what the dead daemon recorded (resume), and
// says whether a file revocation takes effect without a quarantine
// (openUnderRevoked). It keeps no state: it needs the enforcer, the
// cgroups (to freeze and thaw) and the chain (to read recorded answers),
// not the registry. With a backend that does not supervise, each step
// does nothing.
type supervision struct {
	enf     enforce.Enforcer
	cgroups Cgroups
	chain   Chain
	log     *slog.Logger
}

// start starts the seccomp supervisor's side before the trampoline
// (whose exec waits for its acknowledgement) and gives the trampoline its
// end of the socket pair as fd 7. wait returns the supervisor's result
// once launch.Start has returned. Without a supervising backend it does
// nothing.
func (s supervision) start(aid uint64, cfg *launch.Config) (wait func() error, err error) {
	sup, ok := s.enf.(enforce.Supervisor)
	if !ok {
		return func() error { return nil }, nil
	}
	if on, _ := sup.Supervising(); !on {
		return func() error { return nil }, nil
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("supervisor socket pair: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "supervise"), os.NewFile(uintptr(fds[1]), "supervise-trampoline")
	measured := []*os.File{cfg.Exec}
	if cfg.Script != nil {
		measured = append(measured, cfg.Script)
	}
	errc := make(chan error, 1)
	go func() {
		err := sup.Supervise(aid, ours, measured)
		// Closing our end tells a trampoline still waiting that no
		// supervisor will acknowledge: it does not exec.
		ours.Close()
		errc <- err
	}()
	cfg.Supervise = theirs
	return func() error {
		// Once the trampoline has its copy, ours must see EOF if it dies
		// before handing over the listener.
		theirs.Close()
		return <-errc
	}, nil
}

// resume serves again the listener the holder kept for an
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
func (s supervision) resume(r *record) error {
	sup, ok := s.enf.(enforce.Supervisor)
	if !ok {
		return nil
	}
	s.answerRecorded(r.AID)
	frozen := false
	if r.State != state.Quarantined { // a quarantined agent's calls restart when it is released
		if err := s.cgroups.Freeze(r.CgroupPath, true); err != nil {
			return fmt.Errorf("freeze to restart pending calls: %w", err)
		}
		frozen = true
	}
	err := sup.Resume(r.AID)
	if frozen {
		if ferr := s.cgroups.Freeze(r.CgroupPath, false); ferr != nil && err == nil {
			err = fmt.Errorf("thaw after restarting pending calls: %w", ferr)
		}
	}
	switch {
	case errors.Is(err, enforce.ErrNotHeld):
		if filtered, ferr := seccompFiltered(r.PID); ferr != nil || filtered {
			return fmt.Errorf("its listener was not kept (holder gone)")
		}
		s.log.Warn("adopted agent runs without the seccomp supervisor", "aid", r.AID)
		return nil
	case err != nil:
		return err
	}
	return nil
}

// answerRecorded gives every notification of agent aid that the dead
// daemon recorded (a row with its notif_id near the chain's end) and did
// not answer the recorded verdict (issue 20).
func (s supervision) answerRecorded(aid uint64) {
	j, ok := s.enf.(enforce.Journaled)
	if !ok {
		return
	}
	head, _ := s.chain.Head()
	rows, err := s.chain.Query(audit.Query{AID: &aid, AfterSeq: head - min(head, replayLookback), Type: "cap.*", Limit: audit.MaxLimit})
	if err != nil {
		s.log.Warn("read the chain for recorded notifications", "aid", aid, "err", err)
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
			s.log.Info("a call the previous daemon allowed is no longer allowed: decided again", "aid", aid, "seq", row.Seq, "object", row.Object)
			continue
		}
		// notif_ids: the calls an aggregate deny row counts (aggregate.go).
		for _, n := range strings.Split(row.Detail["notif_id"]+","+row.Detail["notif_ids"], ",") {
			id, err := strconv.ParseUint(n, 10, 64)
			if err != nil {
				continue
			}
			if j.AnswerRecorded(aid, id, row.Errno) {
				s.log.Info("answered a call the previous daemon recorded", "aid", aid, "seq", row.Seq, "type", row.Type, "object", row.Object)
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

// openUnderRevoked says why a file revocation cannot take effect by
// itself, or "" when it does. With the supervisor the next open is
// refused, but a descriptor already open (or a program already running)
// under the revoked scope keeps its access: only then is the agent
// quarantined. Without the supervisor file access cannot be cut at all.
func (s supervision) openUnderRevoked(aid uint64, path string, static bool, removed []string) string {
	if r, ok := s.enf.(interface{ RevokesDescriptors() bool }); ok && r.RevokesDescriptors() {
		return "" // bpf-lsm: file_permission cuts descriptors already open
	}
	sup, ok := s.enf.(enforce.Supervisor)
	if !ok || !sup.Supervised(aid) {
		how := "is not mediated by the supervisor and"
		if static {
			how = "is left to its Landlock floor (enforcement: static), which"
		}
		return fmt.Sprintf("revoked %s: file access of this agent %s cannot be cut while it runs; quarantined until released or killed", strings.Join(removed, " "), how)
	}
	var revoked []capability.Cap
	for _, rm := range removed {
		if c, err := capability.Parse(rm); err == nil && c.Domain == "fs" {
			revoked = append(revoked, c)
		}
	}
	open, err := openFiles(path, revoked)
	if err != nil {
		return fmt.Sprintf("revoked %s: the agent's open files could not be checked (%v); quarantined until released or killed", strings.Join(removed, " "), err)
	}
	if len(open) == 0 {
		return ""
	}
	if len(open) > 5 {
		open = append(open[:5], "…")
	}
	return fmt.Sprintf("revoked %s while the agent holds files open under it (%s): an open descriptor keeps its access; quarantined until released or killed", strings.Join(removed, " "), strings.Join(open, ", "))
}

// openFiles lists the files the processes of the cgroup at path hold open
// (descriptors, and the running program for fs.exec) that one of revoked
// matches. A process that exits while it is read is skipped; any other
// failure is an error, so the caller fails closed.
func openFiles(path string, revoked []capability.Cap) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
	if err != nil {
		return nil, fmt.Errorf("read cgroup.procs: %w", err)
	}
	var out []string
	seen := map[string]bool{}
	match := func(p string, exec bool) {
		if seen[p] || !filepath.IsAbs(p) {
			return
		}
		for _, c := range revoked {
			if (c.Verb != "exec" || exec) && c.MatchPath(p) {
				seen[p] = true
				out = append(out, p)
				return
			}
		}
	}
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("cgroup.procs: %q", f)
		}
		dir := fmt.Sprintf("/proc/%d", pid)
		if exe, err := os.Readlink(dir + "/exe"); err == nil {
			match(exe, true)
		}
		ents, err := os.ReadDir(dir + "/fd")
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list descriptors of %d: %w", pid, err)
		}
		for _, ent := range ents {
			if t, err := os.Readlink(dir + "/fd/" + ent.Name()); err == nil {
				// A deleted file keeps its old name with a suffix; it is
				// still open under that scope.
				match(strings.TrimSuffix(t, " (deleted)"), false)
			}
		}
	}
	return out, nil
}
