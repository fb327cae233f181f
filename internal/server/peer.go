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

// connContext stores the peer's credentials, read once per connection.
func connContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return ctx
	}
	return context.WithValue(ctx, credKey{}, cred)
}

// caller resolves who is asking. A request without kernel credentials is
// refused: there is no anonymous caller.
func (s *Server) caller(r *http.Request) (agent.Caller, error) {
	cred, ok := r.Context().Value(credKey{}).(*unix.Ucred)
	if !ok {
		return agent.Caller{}, api.Errorf(api.ErrDenied, "no peer credentials on this connection")
	}
	c := agent.Caller{UID: cred.Uid, PID: int(cred.Pid)}
	rel, err := cgroup.ProcPath(c.PID)
	if err != nil {
		// The process is gone or hidden: it cannot be told apart from an
		// agent, so it gets nothing.
		return agent.Caller{}, api.Errorf(api.ErrDenied, "cannot read the cgroup of pid %d: %v", c.PID, err)
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
