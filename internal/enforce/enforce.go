package enforce

import (
	"errors"
	"net/netip"
	"os"

	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/launch"
	"github.com/coconut-os/coconut/internal/manifest"
)

var (
	// ErrUnavailable means a backend cannot run on this kernel.
	ErrUnavailable = errors.New("enforcer unavailable")
	// ErrBeyondCeiling means a grant exceeds what the agent's kernel floor
	// allows: a running process's Landlock domain cannot be widened.
	ErrBeyondCeiling = errors.New("beyond the agent's ceiling")
)

// Agent is what a backend needs to bind one agent.
type Agent struct {
	AID      uint64
	CgroupID uint64
	Policy   string           // agents with the same policy key share kernel rules (workload/class)
	Caps     []capability.Cap // the current bundle, ~ expanded
	Ceiling  []capability.Cap // what may ever be granted (Caps when the manifest has none)
	// Audit is the manifest's `audit:` policy for allowed uses (empty
	// levels: DefaultAudit). Denies are always recorded.
	Audit manifest.AuditPolicy
	// Static is the manifest's `enforcement: static`: read-only opens are
	// left to the floor, so the bundle's reads cannot be revoked (a
	// revocation freezes the agent instead: Supervised is false).
	Static bool
	// Programs are the paths of the measured program (and script) the
	// trampoline execs at spawn: the supervisor allows their exec by
	// identity; the bpf-lsm backend gives them an exec rule.
	Programs []string
	// Measured are the sealed memfds of the program (Exec) and script the
	// trampoline execs and the interpreter reads: they have no path, so
	// the bpf-lsm backend allows exactly these inodes to the agent's
	// cgroup. The portable backend's supervisor allows them by identity
	// from the trampoline's own descriptors and ignores this.
	Measured []MeasuredFile
}

// MeasuredFile is one of an agent's measured memfds.
type MeasuredFile struct {
	File *os.File
	Exec bool // the program: exec and map as code; the script: read
}

// Event is one deny seen in the kernel.
type Event struct {
	Source   string // "netguard", "landlock", "supervisor"
	Seq      uint64 // the source's sequence number
	CgroupID uint64
	PID      int
	Cap      string // the capability that would have allowed it, e.g. net.connect
	Object   string // what was asked: "tcp 127.0.0.1:22"
	Errno    int
	// Supervisor events only: the system call, whether it was allowed (an
	// allowed use recorded by the audit policy, not a deny), and where the
	// consumer answers once the row is written (nil error) or could not
	// be (the call is then refused). The consumer must answer every
	// event with a non-nil Reply.
	Syscall string
	Allowed bool
	NotifID uint64 // the seccomp notification, recorded in the row (supervise.Event)
	Reply   chan<- error
	// Replayed: a network guard event that was still in the pinned ring
	// when this daemon started; the daemon that died may have recorded it
	// already (it dies before acknowledging), so the consumer looks for
	// its row before appending one.
	Replayed bool
	// Ack, when set, must be called once the event's row is durable (or
	// will never be written): until then the source keeps it, and a
	// daemon started after this one died gets it again (Replayed).
	Ack func()
}

// Counters reconcile kernel denies with audit rows.
type Counters struct {
	KernelDenies uint64 // sum over the kernel sources, the supervisor's denies included
	RingbufFull  uint64 // events the kernel could not deliver (still counted in KernelDenies)
	// BySource splits KernelDenies by Event.Source ("supervisor",
	// "netguard"), so a difference with the chain names its source.
	BySource map[string]uint64
}

// Pender is implemented by a backend that can tell whether events are
// still on their way to Events (read from the kernel, not yet delivered):
// a difference between the counters while nothing is pending is not one
// in flight.
type Pender interface {
	Pending() bool
}

// Enforcer is a backend.
type Enforcer interface {
	// Name is "portable" or "bpf-lsm".
	Name() string
	// Rights lists what the kernel enforces, for the attestation.
	Rights() []string
	// Bind installs the agent's bundle; the returned floor (if any) is
	// applied by the trampoline before exec. Bind happens after the cgroup
	// exists and before the first process enters it.
	Bind(a Agent) (*launch.Floor, error)
	// Update replaces a bound agent's bundle (a grant or a revoke): when it
	// returns, no new operation is decided by the old bundle.
	Update(a Agent) error
	// Unbind forgets an agent whose cgroup is empty.
	Unbind(aid uint64) error
	// Events delivers kernel denies until Close.
	Events() <-chan Event
	// Counters reads the kernel's counters.
	Counters() (Counters, error)
	Close() error
}

// eventObject formats a network deny's object.
func netObject(proto string, addr netip.Addr, port uint16) string {
	return proto + " " + netip.AddrPortFrom(addr, port).String()
}
