package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/coconut-os/coconut/internal/cgroup"
)

// Cred is what the kernel says about the process at the other end of a
// Unix connection, read once when it was accepted.
type Cred struct {
	UID, GID uint32
	PID      int
	pidfd    int // -1 when the kernel has no SO_PEERPIDFD (before Linux 6.5)
}

// Identity is a resolved caller.
type Identity struct {
	UID uint32
	PID int
	AID uint64 // 0: a host process
}

type credKey struct{}

// soPeerPidfd (Linux 6.5) returns a pidfd for the peer process, which pins
// its identity: a pid alone could be reused between connect and our read
// of /proc/PID/cgroup.
const soPeerPidfd = 77

// Tracker reads peer credentials when a connection is accepted and closes
// the pidfd it holds when the connection ends. Plug ConnContext and
// ConnState into an http.Server; the zero value is ready.
type Tracker struct {
	pidfds sync.Map // net.Conn → the peer's pidfd
}

// ConnContext stores the peer's credentials in ctx. A connection whose
// credentials cannot be read gets none, and every call on it is refused.
func (t *Tracker) ConnContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	p := &Cred{pidfd: -1}
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		var uc *unix.Ucred
		uc, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if cerr == nil {
			p.UID, p.GID, p.PID = uc.Uid, uc.Gid, int(uc.Pid)
		}
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
		t.pidfds.Store(c, p.pidfd)
	}
	return context.WithValue(ctx, credKey{}, p)
}

// ConnState closes the peer's pidfd when the connection ends.
func (t *Tracker) ConnState(c net.Conn, st http.ConnState) {
	if st != http.StateClosed && st != http.StateHijacked {
		return
	}
	if fd, ok := t.pidfds.LoadAndDelete(c); ok {
		unix.Close(fd.(int))
	}
}

// FromContext returns the credentials ConnContext stored.
func FromContext(ctx context.Context) (*Cred, bool) {
	p, ok := ctx.Value(credKey{}).(*Cred)
	return p, ok
}

// alive reports whether the process behind pidfd has not exited: after
// reading /proc/PID/cgroup, this proves the pid was not reused meanwhile.
func alive(pidfd int) bool {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		// Even with a zero timeout, poll fails with EINTR when a signal
		// is pending once it found nothing ready, and Go's runtime
		// signals its own threads (preemption): that says nothing about
		// the peer, so ask again.
		if err == unix.EINTR {
			continue
		}
		return err == nil && n == 0
	}
}

// Unix resolves the caller of a request on a Unix socket served with a
// Tracker: its uid and pid, and the agent whose cgroup (in tree) holds it.
// A host process gets AID 0 and no error; a caller that cannot be
// identified gets an error and nothing else.
func Unix(ctx context.Context, tree *cgroup.Tree) (Identity, error) {
	p, ok := FromContext(ctx)
	if !ok {
		return Identity{}, ErrNoCred
	}
	id := Identity{UID: p.UID, PID: p.PID}
	rel, err := cgroup.ProcPath(id.PID)
	if err != nil || (p.pidfd >= 0 && !alive(p.pidfd)) {
		// The process is gone (its pid may already name another one) or
		// hidden: it cannot be told apart from an agent, so it gets nothing.
		return Identity{}, fmt.Errorf("%w %d: it has exited or its cgroup is unreadable", ErrGone, id.PID)
	}
	aid, err := tree.AIDOf(rel)
	switch {
	case err == nil:
		id.AID = aid
	case !errors.Is(err, cgroup.ErrNotAgent):
		return Identity{}, err
	}
	return id, nil
}
