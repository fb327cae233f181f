package supervise

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Counters are a supervisor's running totals.
type Counters struct {
	Notifications uint64 // trapped calls received
	Allowed       uint64 // answered CONTINUE
	Denied        uint64 // answered ECAPABILITY
	Failed        uint64 // answered another errno (bad path, EFAULT…)
	Gone          uint64 // the caller went away before the answer
	Emulated      uint64 // of Allowed: performed by the supervisor itself (emulate.go)
}

// Server serves one agent's listener. One goroutine per listener: an epoll
// loop over many listeners halves throughput (kernel-notes).
type Server struct {
	listener *os.File
	fd       int
	agent    AgentInfo
	d        Decider
	measured []fileID
	mem      memCache
	root     agentRoot
	caller   int // the thread whose notification is being handled (procfs.go)
	// act is the call the supervisor performs itself for the notification
	// being handled (decide sets it, handle consumes it); creds are the
	// credentials of the threads that made such calls; fatal ends Serve
	// (emulate.go).
	act   *attrCall
	creds credCache
	fatal error

	stopR, stopW int
	stopOnce     sync.Once
	done         chan struct{}
	err          error

	seq                                  atomic.Uint64
	notes, allowed, denied, failed, gone atomic.Uint64
	emulated                             atomic.Uint64
	restart                              restarts // restart.go: one row for a call the kernel restarted
	release                              func()   // gives back the fair turn being held (AgentInfo.Turns), or nil
}

type fileID struct{ dev, ino uint64 }

// NewServer prepares to serve listener. The caller keeps ownership of the
// listener and must not close it before Serve has returned.
func NewServer(listener *os.File, agent AgentInfo, d Decider) (*Server, error) {
	if d == nil {
		return nil, errors.New("supervise: nil Decider")
	}
	s := &Server{listener: listener, fd: int(listener.Fd()), agent: agent, d: d, done: make(chan struct{}), root: agentRoot{fd: -1}}
	for _, f := range agent.Measured {
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			return nil, fmt.Errorf("stat measured file: %w", err)
		}
		s.measured = append(s.measured, fileID{st.Dev, st.Ino})
	}
	// A hint, and only a speed-up (bare round trip ≈ 27 → 19 µs here):
	// kernels before 6.6 refuse it and still deliver every notification.
	_ = syncWakeUp(s.fd)
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, fmt.Errorf("stop pipe: %w", err)
	}
	s.stopR, s.stopW = p[0], p[1]
	return s, nil
}

// Serve answers notifications until every task using the filter has gone
// (nil) or Stop is called (ErrStopped). Call it once.
func (s *Server) Serve() error {
	defer func() {
		s.mem.closeAll()
		unix.Close(s.stopR)
		if s.root.fd >= 0 {
			unix.Close(s.root.fd)
		}
		s.creds.closeAll()
	}()
	fds := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}, {Fd: int32(s.stopR), Events: unix.POLLIN}}
	var n seccompNotif
	for {
		fds[0].Revents, fds[1].Revents = 0, 0
		if _, err := unix.Poll(fds, -1); err != nil {
			if err == unix.EINTR {
				continue
			}
			return fmt.Errorf("poll listener: %w", err)
		}
		if fds[1].Revents != 0 {
			return ErrStopped
		}
		if fds[0].Revents&unix.POLLIN == 0 {
			if fds[0].Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 {
				return nil // no task uses the filter any more
			}
			continue
		}
		if err := recv(s.fd, &n); err != nil {
			switch err {
			case unix.EINTR, unix.ENOENT:
				// ENOENT: the caller was interrupted or died between poll
				// and receive; its call restarts or is gone.
				continue
			}
			return fmt.Errorf("receive notification: %w", err)
		}
		s.notes.Add(1)
		if s.agent.Turns != nil {
			// A closed gate (ErrClosed) only ends the fairness: the
			// notification received must still be answered.
			s.release, _ = s.agent.Turns.EnterFor(context.Background(), s.agent.AID, maxDecisionHold)
		}
		s.handle(&n)
		s.yieldTurn()
		if s.fatal != nil {
			return s.fatal
		}
	}
}

// Stop makes Serve return. Trapped calls then fail with ENOSYS once the
// listener is closed; until then they wait.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		unix.Write(s.stopW, []byte{0})
		unix.Close(s.stopW)
	})
}

// Counters returns the running totals.
func (s *Server) Counters() Counters {
	return Counters{s.notes.Load(), s.allowed.Load(), s.denied.Load(), s.failed.Load(), s.gone.Load(), s.emulated.Load()}
}

// Serve is NewServer and Serve in one.
func Serve(listener *os.File, agent AgentInfo, d Decider) error {
	s, err := NewServer(listener, agent, d)
	if err != nil {
		return err
	}
	return s.Serve()
}

// Start receives an agent's listener from conn (the trampoline's Install is
// on the other end), starts serving it and acknowledges, so the trampoline
// may exec. The server owns the listener and closes it when Serve returns;
// Wait returns Serve's error.
func Start(conn *os.File, agent AgentInfo, d Decider) (*Server, error) {
	l, err := Receive(conn)
	if err != nil {
		return nil, err
	}
	s, err := NewServer(l, agent, d)
	if err != nil {
		l.Close()
		return nil, err
	}
	go func() {
		s.err = s.Serve()
		l.Close()
		close(s.done)
	}()
	if err := Ack(conn); err != nil {
		s.Stop()
		<-s.done
		return nil, err
	}
	return s, nil
}

// Wait waits for a server made by Start to finish.
func (s *Server) Wait() error {
	<-s.done
	return s.err
}

// handle answers one notification. Anything that goes wrong, a panic
// included, refuses the call: never CONTINUE without a decision.
func (s *Server) handle(n *seccompNotif) {
	s.caller = int(n.Pid)
	s.restart.begin(int(n.Pid))
	defer s.restart.end(int(n.Pid))
	errno, valid := s.verdict(n)
	act := s.act
	s.act = nil
	if !valid {
		act.close()
		s.gone.Add(1)
		s.restart.undelivered()
		return
	}
	var err error
	if act != nil && errno == 0 {
		// Allowed, recorded, and not to be continued: the supervisor
		// performs it on the object decided on and answers its result.
		// (If the caller is interrupted now, the change is made and the
		// call restarts or fails with EINTR, as after any signal.)
		result := s.perform(act)
		act.close()
		err = sendReturn(s.fd, n.ID, result)
		if err == nil {
			s.emulated.Add(1)
		}
	} else {
		act.close()
		err = send(s.fd, n.ID, errno)
	}
	if err != nil {
		s.gone.Add(1) // ENOENT: interrupted or gone since the check
		s.restart.undelivered()
		return
	}
	switch errno {
	case 0:
		s.allowed.Add(1)
	case ECapability:
		s.denied.Add(1)
	default:
		s.failed.Add(1)
	}
}

// verdict decides and records; valid is false when the notification is no
// longer pending (what was read may belong to another process by now).
func (s *Server) verdict(n *seccompNotif) (errno unix.Errno, valid bool) {
	ev := Event{AID: s.agent.AID, TID: int(n.Pid), Syscall: syscallName(n.Data.Nr), NotifID: n.ID}
	defer func() {
		if recover() != nil {
			s.act.close() // never perform what a panic interrupted
			s.act = nil
			errno, valid = ECapability, true
		}
	}()
	if cap, object, ok := refusal(&n.Data); ok {
		return s.refuse(n, &ev, cap, object)
	}
	if unixCalls[n.Data.Nr] {
		// Only a TrapUnixConnect filter hands these over (unixsock.go).
		return s.unixVerdict(n, &ev)
	}
	if _, ok := processCalls[n.Data.Nr]; ok {
		return s.processVerdict(n, &ev) // another process's resources (process.go)
	}
	errno = s.decide(n, &ev)
	if !idValid(s.fd, n.ID) {
		return 0, false
	}
	ev.Allowed, ev.Errno = errno == 0, errno
	if errno != 0 && errno != ECapability {
		return errno, true // the call fails on its own terms (ENOENT, EFAULT…)
	}
	if ev.Allowed && !s.d.AuditAllowed(ev) {
		return 0, true
	}
	if err := s.record(&ev); err != nil && ev.Allowed {
		return ECapability, true // nothing happens unrecorded
	}
	return errno, true
}

// refuse answers a call the filter refuses outright (mount, bpf, ptrace,
// namespaces…) with ECAPABILITY, and records it: every deny is a row.
// Nothing here can allow it, whatever happens.
func (s *Server) refuse(n *seccompNotif, ev *Event, cap, object string) (unix.Errno, bool) {
	ev.Syscall, ev.Cap, ev.Object, ev.Errno = refusedName(n.Data.Nr), cap, object, ECapability
	if addr := refusedTarget(&n.Data); addr != 0 {
		// Best effort, for the row only: the answer does not depend on it.
		if p, e := s.mem.readString(int(n.Pid), addr); e == 0 {
			ev.Object += " " + p
		}
	}
	if !idValid(s.fd, n.ID) {
		return 0, false
	}
	s.record(ev) // an error changes nothing: the call is refused anyway
	return ECapability, true
}

// yieldTurn gives back the fair turn, if one is held.
// maxDecisionHold bounds how long one decision keeps the shared turn: a
// decision resolves a path the agent chose and reads its memory, and a path
// on a hung network filesystem would otherwise stall every agent's
// supervised calls behind it. Past it the decision goes on without the
// turn (it is a few microseconds when nothing blocks).
const maxDecisionHold = 100 * time.Millisecond

func (s *Server) yieldTurn() {
	if s.release != nil {
		s.release()
		s.release = nil
	}
}

func (s *Server) record(ev *Event) error {
	if s.restart.recordedAlready(ev) {
		return nil
	}
	// Waiting for the row takes no CPU: let the next agent decide
	// meanwhile (a deny gathered into an aggregate waits up to 100 ms).
	s.yieldTurn()
	ev.Seq = s.seq.Add(1)
	err := s.d.Record(*ev)
	s.restart.recorded(ev, err)
	return err
}

// decide resolves the call's operands and asks the Decider; 0 is CONTINUE.
func (s *Server) decide(n *seccompNotif, ev *Event) unix.Errno {
	tid := int(n.Pid)
	ops, pass, e := operands(&n.Data, func(addr, size uint64) (openHow, unix.Errno) {
		b := make([]byte, openHowSize)
		if size < openHowSize {
			return openHow{}, unix.EINVAL
		}
		if k, err := s.mem.read(tid, b, addr); err != nil || k != len(b) {
			return openHow{}, unix.EFAULT
		}
		h, err := decodeOpenHow(b, size)
		if err != nil {
			return openHow{}, unix.EINVAL
		}
		return h, 0
	})
	if e != 0 || pass {
		return e
	}
	emulate := emulatedCalls[n.Data.Nr]
	var creds agentCreds
	if emulate {
		if e := precheck(tid, &n.Data); e != 0 {
			return e
		}
		if creds, e = s.creds.get(tid); e != 0 {
			return e
		}
		if creds.capEff != 0 {
			// Never for an agent (the trampoline drops every
			// capability); a thread holding some holds them in its own
			// user namespace, perhaps, and applying them here would use
			// them in the supervisor's.
			ev.Object = fmt.Sprintf("%s by a thread with capabilities %#x", syscallName(n.Data.Nr), creds.capEff)
			return ECapability
		}
		// The arguments first, as the kernel copies them before it walks
		// the path (ERANGE, E2BIG, EINVAL come before ENOENT).
		if s.act, e = s.readCall(n, creds); e != 0 {
			return e
		}
	} else if e := floorless(landlockABI(), &n.Data, ops); e != 0 {
		return e
	}
	if s.root.fd < 0 {
		root, e := openAgentRoot(tid)
		if e != 0 {
			return e
		}
		s.root = root
	}
	r := newResolver(tid, s.root)
	for _, op := range ops {
		var path string
		if op.addr != 0 || !op.nullOK {
			var e unix.Errno
			if path, e = s.mem.readString(tid, op.addr); e != 0 {
				return e
			}
		} else {
			op.opts.empty = true
		}
		var obj object
		fd := -1
		if emulate {
			// Walked with the caller's credentials, as the kernel walks it
			// for the agent: search permission on every directory holds.
			if e = r.preopen(op.dirfd, path, op.opts); e == 0 {
				e = s.asAgent(creds, func() (e unix.Errno) {
					obj, fd, e = r.resolveFD(op.dirfd, path, op.opts)
					return e
				})
				r.closeOpened()
			}
		} else {
			obj, fd, e = r.resolveFD(op.dirfd, path, op.opts)
		}
		if e != 0 {
			if fd >= 0 {
				unix.Close(fd) // resolved, but the thread's credentials were not restored
			}
			if e == ECapability {
				// Through another process's /proc/PID magic link
				// (resolve.go): no real path to name, so the row has
				// the agent's.
				ev.Path, ev.Access, ev.Object = "", op.access, path
			}
			return e
		}
		ev.Path, ev.Access, ev.Object = obj.path, op.access, ""
		if obj.path == "" {
			ev.Object = obj.name // for the row: no capability names it
		}
		if !s.allow(obj, op.access) {
			if fd >= 0 {
				unix.Close(fd)
			}
			return ECapability
		}
		if !emulate {
			if fd >= 0 {
				unix.Close(fd)
			}
			continue
		}
		// An emulated call has one operand, which exists (no create).
		if e := s.act.attach(fd, obj); e != 0 {
			return e
		}
		if e := emptyPathFD(tid, &n.Data, path); e != 0 {
			return e
		}
	}
	if emulate && (s.act == nil || s.act.fd < 0) {
		return ECapability // never CONTINUE an emulated call
	}
	return 0
}

func (s *Server) allow(obj object, access Access) bool {
	if !s.procVisible(obj) {
		return false // another process's /proc/PID (procfs.go)
	}
	if obj.exists && access&Write == 0 {
		for _, m := range s.measured {
			if m.dev == obj.dev && m.ino == obj.ino {
				return true
			}
		}
	}
	switch {
	case obj.path != "" && obj.links > 1 && obj.uid != 0 && obj.mode&unix.S_IFMT != unix.S_IFDIR && !s.agent.TrustHardLinks:
		// A second name for a user's file: it may be a hard link made
		// outside the agent to a file the bundle denies under its first
		// name, and a path cannot tell.
		return false
	case obj.path != "":
		return s.d.Allow(s.agent.AID, obj.path, access)
	case obj.anon:
		// Reopening a pipe or socket through /proc/PID/fd: not a file of
		// the model, and Landlock's ptrace scoping keeps other processes'
		// descriptors out of reach.
		return access&Exec == 0
	}
	return false
}
