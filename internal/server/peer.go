package server

import (
	"context"
	"errors"
	"net"
	"net/http"

	"golang.org/x/sys/unix"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/agent"
	"github.com/coconut-os/coconut/internal/cgroup"
)

type credKey struct{}

// peer is what the kernel says about the other end of a connection.
type peer struct {
	cred  *unix.Ucred
	pidfd int // -1 when the kernel has no SO_PEERPIDFD (before Linux 6.5)
}

// soPeerPidfd (Linux 6.5) returns a pidfd for the peer process, which pins
// its identity: a pid alone could be reused between connect and our read
// of /proc/PID/cgroup.
const soPeerPidfd = 77

// connContext stores the peer's credentials, read once per connection.
func (s *Server) connContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	p := &peer{pidfd: -1}
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		p.cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if n, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, soPeerPidfd); err == nil {
			p.pidfd = n
		}
	}); err != nil || cerr != nil {
		if p.pidfd >= 0 {
			unix.Close(p.pidfd)
		}
		return ctx
	}
	if p.pidfd >= 0 {
		s.pidfds.Store(c, p.pidfd)
	}
	return context.WithValue(ctx, credKey{}, p)
}

// connState closes the peer's pidfd when the connection ends.
func (s *Server) connState(c net.Conn, st http.ConnState) {
	if st != http.StateClosed && st != http.StateHijacked {
		return
	}
	if fd, ok := s.pidfds.LoadAndDelete(c); ok {
		unix.Close(fd.(int))
	}
}

// alive reports whether the process behind pidfd has not exited: after
// reading /proc/PID/cgroup, this proves the pid was not reused meanwhile.
func alive(pidfd int) bool {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n == 0
}

// caller resolves who is asking. A request without kernel credentials is
// refused: there is no anonymous caller.
func (s *Server) caller(r *http.Request) (agent.Caller, error) {
	p, ok := r.Context().Value(credKey{}).(*peer)
	if !ok {
		return agent.Caller{}, api.Errorf(api.ErrDenied, "no peer credentials on this connection")
	}
	c := agent.Caller{UID: p.cred.Uid, PID: int(p.cred.Pid)}
	rel, err := cgroup.ProcPath(c.PID)
	if err != nil || (p.pidfd >= 0 && !alive(p.pidfd)) {
		// The process is gone (its pid may already name another one) or
		// hidden: it cannot be told apart from an agent, so it gets nothing.
		return agent.Caller{}, api.Errorf(api.ErrDenied, "cannot identify the calling process %d: it has exited or its cgroup is unreadable", c.PID)
	}
	aid, err := s.tree.AIDOf(rel)
	switch {
	case err == nil:
		c.AID = aid
	case !errors.Is(err, cgroup.ErrNotAgent):
		return agent.Caller{}, err
	}
	return c, nil
}
