package peer

import "errors"

var (
	// ErrNoCred means the connection carries no kernel credentials (it is
	// not a Unix socket, or reading them failed).
	ErrNoCred = errors.New("no peer credentials on this connection")
	// ErrGone means the peer process exited (its pid may already name
	// another process) or its cgroup cannot be read.
	ErrGone = errors.New("cannot identify the calling process")
	// ErrNoSocket means the kernel has no TCP socket with the connection's
	// addresses, or did not report its cgroup.
	ErrNoSocket = errors.New("cannot find the calling socket")
	// ErrNotAgent means the caller is a host process, not an agent.
	ErrNotAgent = errors.New("caller is not an agent")
	// ErrBadKey means a bearer key is missing or not in coconut's format.
	ErrBadKey = errors.New("bad inference key")
)
