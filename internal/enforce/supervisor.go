package enforce

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/fairq"
	pol "github.com/coconut-os/coconut/internal/policy"
	"github.com/coconut-os/coconut/internal/supervise"
)

// ErrNotHeld means no listener was kept for an agent over a daemon restart.
var ErrNotHeld = errors.New("no supervisor listener held for the agent")

// recordWait bounds how long a supervised call waits for its audit row.
// Past it the call is refused: nothing happens unrecorded.
const recordWait = 10 * time.Second

// Supervisor is implemented by a backend that mediates the agents' opens
// and execs with the seccomp supervisor (internal/supervise).
type Supervisor interface {
	// Supervising reports whether agents spawned now get the supervisor,
	// and why not.
	Supervising() (bool, string)
	// Supervise receives agent aid's listener from conn (the trampoline's
	// supervise.Install is on the other end), hands a copy to the holder,
	// serves it and acknowledges. It returns once the trampoline may exec;
	// on error the trampoline must not, and the caller closes conn.
	Supervise(aid uint64, conn *os.File, measured []*os.File) error
	// Resume serves again the listener the holder kept for aid across a
	// daemon restart (ErrNotHeld if none).
	Resume(aid uint64) error
	// Supervised reports whether aid's files are mediated now, so that a
	// revocation takes effect on the next open.
	Supervised(aid uint64) bool
}

// Journaled is implemented by a Supervisor whose recorded notifications
// can be answered after a restart: the rows are the journal. Call it
// before Resume, while the held listener is not served.
type Journaled interface {
	// AnswerRecorded answers agent aid's pending notification id with
	// errno (0: continue) and reports whether it was still pending.
	AnswerRecorded(aid, id uint64, errno int) bool
	// StillAllowed reports whether agent aid's current bundle allows
	// access to path: a recorded allow is answered only if it still is
	// (a revocation since the row must not be undone by a CONTINUE).
	StillAllowed(aid uint64, path string, access supervise.Access) bool
}

// supervisor is the Portable backend's part that decides for the
// seccomp supervisors: every agent's current fs bundle under one RW lock.
type supervisor struct {
	p      *Portable
	holder *supervise.Holder

	mu     sync.RWMutex
	agents map[uint64]*fsAgent

	smu      sync.Mutex
	servers  map[uint64]*supervise.Server
	held     map[uint64][]*os.File // from the holder at load, until resumed
	measured map[uint64][]*os.File // kept open while the agent runs

	// turns is shared by every agent's supervisor: decisions are made
	// in turns keyed on the AID, half the CPUs' worth at once, so one
	// agent's flood of trapped calls waits for its own turns and leaves
	// the other CPUs to the agents themselves and the rest of the daemon.
	turns *fairq.Gate

	seq     atomic.Uint64 // the supervisor source's sequence numbers
	denies  atomic.Uint64
	sending atomic.Int64 // Record calls between their count and the channel
}

type fsAgent struct {
	cgroupID uint64
	caps     []capability.Cap
	memo     *memo            // decisions on caps; replaced with caps
	static   bool             // read-only opens are left to the floor
	unix     []capability.Cap // the bundle's Unix socket capabilities (AllowUnix)
	policy   *auditPolicy     // the manifest's audit policy (auditpolicy.go)
}

// memo remembers an agent's decisions on one bundle: a decision depends
// only on the path, the access and the bundle, and matching scopes costs
// more than the rest of a decision. A new bundle gets a new memo, so no
// decision on the old bundle survives set.
type memo struct {
	mu sync.Mutex
	m  map[memoKey]bool
}

type memoKey struct {
	path   string
	access supervise.Access
}

// maxMemo bounds the memo; past it, it starts over.
const maxMemo = 4096

func (m *memo) get(k memoKey) (allowed, ok bool) {
	m.mu.Lock()
	allowed, ok = m.m[k]
	m.mu.Unlock()
	return allowed, ok
}

func (m *memo) put(k memoKey, allowed bool) {
	m.mu.Lock()
	if m.m == nil || len(m.m) >= maxMemo {
		m.m = make(map[memoKey]bool)
	}
	m.m[k] = allowed
	m.mu.Unlock()
}

func newSupervisor(p *Portable, holderPath, self string) (*supervisor, error) {
	h, err := supervise.OpenHolder(holderPath, self)
	if err != nil {
		return nil, err
	}
	held, err := h.Take()
	if err != nil {
		h.Close()
		return nil, err
	}
	return &supervisor{p: p, holder: h, agents: map[uint64]*fsAgent{}, servers: map[uint64]*supervise.Server{},
		held: held, measured: map[uint64][]*os.File{}, turns: fairq.NewGate(supervisorTurns(), 1, 1)}, nil
}

// supervisorTurns is how many agents' calls are decided at once: half
// the CPUs, at least one. (Each agent's supervisor is serial, so one
// waiter per key is all a Gate ever holds.)
func supervisorTurns() int { return max(1, runtime.GOMAXPROCS(0)/2) }

// set installs or replaces aid's bundle: no decision after it returns uses
// the old one.
func (s *supervisor) set(a Agent) {
	var fs, socks []capability.Cap
	for _, c := range a.Caps {
		if c.Domain == "fs" {
			fs = append(fs, c)
		}
		if c.IsUnix() {
			socks = append(socks, c)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.agents[a.AID]; cur != nil {
		cur.caps, cur.memo, cur.unix = fs, &memo{}, socks
		return
	}
	s.agents[a.AID] = &fsAgent{cgroupID: a.CgroupID, caps: fs, memo: &memo{}, static: a.Static, policy: newAuditPolicy(a.Audit), unix: socks}
}

// Allow implements supervise.Decider: the baseline, or the current bundle.
func (s *supervisor) Allow(aid uint64, path string, access supervise.Access) bool {
	if access == 0 {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	a := s.agents[aid]
	if a == nil {
		return false
	}
	// Under the read lock: set swaps caps and memo together, so a
	// remembered answer is always one on the current bundle.
	k := memoKey{path, access}
	if allowed, ok := a.memo.get(k); ok {
		return allowed
	}
	allowed := s.decide(a, path, access)
	a.memo.put(k, allowed)
	return allowed
}

// supervise.Access and policy.Access share their bits.
var _ [0]struct{} = [supervise.Read ^ supervise.Access(pol.Read) | supervise.Write ^ supervise.Access(pol.Write) |
	supervise.Exec ^ supervise.Access(pol.Exec)]struct{}{}

// decide is the policy's verdict on the agent's bundle and the baseline.
func (s *supervisor) decide(a *fsAgent, path string, access supervise.Access) bool {
	return pol.Decide(pol.Bundle{Caps: a.caps, Base: pol.System}, pol.File{Path: path, Access: pol.Access(access)}).Allow
}

// AuditAllowed implements supervise.Decider with the default policy:
// every exec and write, the first read of each path. Uses that are no
// capability's are not recorded: the measured program and script (no
// path; their digests are in the attestation) and the baseline every
// agent has (libraries, locale, /dev/null…; listed in the attestation).
func (s *supervisor) AuditAllowed(ev supervise.Event) bool {
	if ev.Path == "" || baselineOnly(ev.Path, ev.Access) {
		return false
	}
	s.mu.RLock()
	a := s.agents[ev.AID]
	s.mu.RUnlock()
	if a == nil {
		return true
	}
	return a.policy.Want(ev)
}

// baselineOnly reports whether the baseline alone allows access to path
// (an exec never: execs are the bundle's).
func baselineOnly(path string, access supervise.Access) bool {
	return pol.Decide(pol.Bundle{Base: pol.System}, pol.File{Path: path, Access: pol.Access(access)}).Allow
}

// Record implements supervise.Decider: the event goes to Events() like a
// network deny, and the call waits until its row is in the chain.
func (s *supervisor) Record(ev supervise.Event) error {
	s.mu.RLock()
	a := s.agents[ev.AID]
	s.mu.RUnlock()
	var cg uint64
	if a != nil {
		cg = a.cgroupID
	}
	reply := make(chan error, 1)
	out := Event{Source: "supervisor", Seq: s.seq.Add(1), CgroupID: cg, PID: ev.TID, Cap: "fs." + ev.Access.String(),
		Object: ev.Path, Syscall: ev.Syscall, Allowed: ev.Allowed, NotifID: ev.NotifID, Reply: reply}
	switch {
	case ev.Cap != "":
		// A call refused whatever the bundle (mount, bpf, ptrace…).
		out.Cap, out.Object = ev.Cap, ev.Object
	case ev.Path == "":
		// A file with no path (a memfd): the kernel's name for it, so
		// the row says what was refused.
		out.Object = ev.Object
	}
	if !ev.Allowed {
		out.Errno = int(ev.Errno)
	}
	// sending covers the deny from its count to the channel, so a
	// counters snapshot never takes a thread descheduled in between for
	// a deny without a row (Portable.Pending).
	s.sending.Add(1)
	err := s.p.send(out)
	if err == nil && !ev.Allowed {
		s.denies.Add(1)
	}
	s.sending.Add(-1)
	if err == nil {
		select {
		case err = <-reply:
		case <-time.After(recordWait):
			err = errors.New("audit row not written in time")
		}
	}
	if err != nil && ev.Allowed && a != nil {
		// The call is refused for want of its row; a "first" read of the
		// same path must not then pass unrecorded.
		a.policy.Unrecorded(ev)
	}
	return err
}

// Supervise implements Supervisor.
func (s *supervisor) Supervise(aid uint64, conn *os.File, measured []*os.File) error {
	l, err := supervise.Receive(conn)
	if err != nil {
		return err
	}
	keep, err := dupFiles(measured)
	if err != nil {
		l.Close()
		return err
	}
	srv, err := supervise.NewServer(l, supervise.AgentInfo{AID: aid, Measured: measured, Turns: s.turns}, s)
	if err != nil {
		l.Close()
		closeFiles(keep)
		return err
	}
	// The holder gets its copy before the agent runs: from its first
	// instruction, a daemon death does not orphan its listener.
	if err := s.holder.Put(aid, append([]*os.File{l}, measured...)...); err != nil {
		l.Close()
		closeFiles(keep)
		return fmt.Errorf("hand the listener to the holder: %w", err)
	}
	s.serve(aid, srv, l, keep)
	if err := supervise.Ack(conn); err != nil {
		s.stop(aid)
		return err
	}
	return nil
}

func (s *supervisor) serve(aid uint64, srv *supervise.Server, l *os.File, measured []*os.File) {
	s.smu.Lock()
	if old := s.servers[aid]; old != nil {
		old.Stop()
	}
	s.servers[aid] = srv
	closeFiles(s.measured[aid])
	s.measured[aid] = measured
	s.smu.Unlock()
	go func() {
		srv.Serve()
		l.Close() // only once Serve has returned: fd numbers get reused
		s.smu.Lock()
		if s.servers[aid] == srv {
			delete(s.servers, aid)
		}
		s.smu.Unlock()
	}()
}

// Resume implements Supervisor.
func (s *supervisor) Resume(aid uint64) error {
	s.smu.Lock()
	files := s.held[aid]
	delete(s.held, aid)
	s.smu.Unlock()
	if len(files) == 0 {
		return ErrNotHeld
	}
	srv, err := supervise.NewServer(files[0], supervise.AgentInfo{AID: aid, Measured: files[1:], Turns: s.turns}, s)
	if err != nil {
		closeFiles(files)
		return err
	}
	s.serve(aid, srv, files[0], files[1:])
	return nil
}

// AnswerRecorded implements Journaled: before aid's held listener is
// served again, it answers notification id, received and recorded by the
// daemon that died, with the recorded verdict (errno 0: continue).
func (s *supervisor) AnswerRecorded(aid, id uint64, errno int) bool {
	s.smu.Lock()
	files := s.held[aid]
	s.smu.Unlock()
	if len(files) == 0 {
		return false
	}
	return supervise.AnswerRecorded(files[0], id, unix.Errno(errno))
}

// StillAllowed implements Journaled: the same decision as a new call's.
func (s *supervisor) StillAllowed(aid uint64, path string, access supervise.Access) bool {
	return path != "" && s.Allow(aid, path, access)
}

// Supervised implements Supervisor. A static agent's reads are decided by
// its Landlock floor, which cannot be narrowed while it runs: its files
// are not mediated in the sense a revocation needs.
func (s *supervisor) Supervised(aid uint64) bool {
	s.mu.RLock()
	a := s.agents[aid]
	s.mu.RUnlock()
	if a != nil && a.static {
		return false
	}
	s.smu.Lock()
	defer s.smu.Unlock()
	return s.servers[aid] != nil
}

// stop ends aid's server and forgets what is kept for it.
func (s *supervisor) stop(aid uint64) {
	s.smu.Lock()
	if srv := s.servers[aid]; srv != nil {
		srv.Stop()
		delete(s.servers, aid)
	}
	closeFiles(s.measured[aid])
	delete(s.measured, aid)
	closeFiles(s.held[aid])
	delete(s.held, aid)
	s.smu.Unlock()
}

// unbind forgets an agent whose cgroup is empty.
func (s *supervisor) unbind(aid uint64) error {
	s.stop(aid)
	s.mu.Lock()
	delete(s.agents, aid)
	s.mu.Unlock()
	return s.holder.Drop(aid)
}

// close stops serving; the holder keeps every listener for the next daemon,
// and trapped calls wait for it.
func (s *supervisor) close() {
	s.smu.Lock()
	for aid, srv := range s.servers {
		srv.Stop()
		delete(s.servers, aid)
	}
	for aid, fs := range s.measured {
		closeFiles(fs)
		delete(s.measured, aid)
	}
	for aid, fs := range s.held {
		closeFiles(fs)
		delete(s.held, aid)
	}
	s.smu.Unlock()
	s.holder.Close()
}

func dupFiles(fs []*os.File) ([]*os.File, error) {
	var out []*os.File
	for _, f := range fs {
		fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			closeFiles(out)
			return nil, fmt.Errorf("keep measured file: %w", err)
		}
		out = append(out, os.NewFile(uintptr(fd), f.Name()))
	}
	return out, nil
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}
