package netguard

import "errors"

// Sentinel errors; errors returned by this package wrap one of them.
var (
	// ErrNotCgroup2: the path given to Load is not a cgroup2 directory.
	ErrNotCgroup2 = errors.New("not a cgroup2 directory")
	// ErrLoad: the kernel refused a program or a map.
	ErrLoad = errors.New("load netguard programs")
	// ErrAttach: a program could not be attached, or was not attached after.
	ErrAttach = errors.New("attach netguard programs")
	// ErrClosed: the Guard was closed.
	ErrClosed = errors.New("netguard closed")
	// ErrUnsupportedCap: a net capability this package cannot enforce.
	ErrUnsupportedCap = errors.New("unsupported net capability")
	// ErrTooManyRanges: a rule needs more port ranges than the kernel entry holds.
	ErrTooManyRanges = errors.New("too many port ranges")
	// ErrTooManyRules: a policy needs more entries than one policy may use.
	ErrTooManyRules = errors.New("too many rules")
	// ErrUnknownPolicy: Bind named a policy never set with SetPolicy.
	ErrUnknownPolicy = errors.New("unknown policy")
	// ErrPolicyInUse: RemovePolicy on a policy a cgroup is bound to.
	ErrPolicyInUse = errors.New("policy in use")
	// ErrNotBound: Unbind of a cgroup that is not bound.
	ErrNotBound = errors.New("cgroup not bound")
	// ErrMapUpdate: a kernel map update failed; the message says what state
	// the policy was left in (always one that denies more, never less).
	ErrMapUpdate = errors.New("update kernel map")
	// ErrMalformedEvent: a ring buffer record that does not decode.
	ErrMalformedEvent = errors.New("malformed event")
	// ErrPin: the guard's bpffs pins could not be made, opened or reused.
	ErrPin = errors.New("netguard pins")
	// ErrUnixHooks: the kernel refused the Unix socket programs
	// (cgroup/connect_unix and sendmsg_unix need Linux 6.7). It comes
	// wrapped with ErrLoad or ErrAttach: the guard did not load, since
	// agents that may connect any Unix socket can be handed any fd
	// (Options.AllowNoUnixHooks loads the rest for a caller that checks
	// Unix addresses itself).
	ErrUnixHooks = errors.New("unix socket hooks (cgroup/connect_unix, sendmsg_unix: Linux >= 6.7) unavailable")
)
