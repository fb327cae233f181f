package supervise

import (
	"errors"
	"syscall"
)

// ECapability is the errno of a capability denial (api.ECapability; the
// number is repeated here so this package depends on nothing above it).
const ECapability = syscall.Errno(134)

var (
	// ErrInstall matches errors from installing the filter.
	ErrInstall = errors.New("install seccomp filter")
	// ErrHandoff matches errors while passing the listener between the
	// trampoline and the supervisor.
	ErrHandoff = errors.New("hand over seccomp listener")
	// ErrNotListener is returned when the descriptor received is not a
	// seccomp notification listener.
	ErrNotListener = errors.New("not a seccomp listener")
	// ErrStopped is returned by Serve after Stop.
	ErrStopped = errors.New("supervisor stopped")
	// ErrPath matches errors reading or resolving an agent's path.
	ErrPath = errors.New("resolve agent path")
)
