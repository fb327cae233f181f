package supervise

import (
	"os"
	"strings"
	"syscall"

	"github.com/coconut-os/coconut/internal/fairq"
)

// Access is what a call needs on one object; a call may need several bits.
type Access uint8

const (
	Read  Access = 1 << iota // fs.read
	Write                    // fs.write: create, change, remove, rename, link
	Exec                     // fs.exec
)

func (a Access) String() string {
	var s []string
	for _, x := range []struct {
		bit  Access
		name string
	}{{Read, "read"}, {Write, "write"}, {Exec, "exec"}} {
		if a&x.bit != 0 {
			s = append(s, x.name)
		}
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, "+")
}

// ParseAccess reads what Access.String writes ("read", "read+write"…);
// ok is false for anything else, "none" included.
func ParseAccess(s string) (a Access, ok bool) {
	for _, name := range strings.Split(s, "+") {
		switch name {
		case "read":
			a |= Read
		case "write":
			a |= Write
		case "exec":
			a |= Exec
		default:
			return 0, false
		}
	}
	return a, true
}

// AgentInfo is what the supervisor knows of the agent it serves.
type AgentInfo struct {
	AID uint64
	// Measured are the program and script memfds the daemon measured and
	// handed to the trampoline. They have no path a capability could name,
	// so reading and executing exactly these files (same device and inode)
	// is allowed without asking the Decider. The supervisor does not keep
	// them open; the caller does while the agent runs.
	Measured []*os.File
	// TrustHardLinks turns off the refusal of files that have several
	// names and are not owned by root (see the package comment).
	TrustHardLinks bool
	// Turns, when set, is shared by the supervisors of every agent: each
	// notification is decided under a turn of it keyed on the AID, so
	// that one agent's flood of trapped calls waits for its own turns
	// and another agent's call waits for at most one of the flooder's
	// (internal/fairq). The turn is given back before waiting for the
	// audit row, which takes no CPU.
	Turns *fairq.Gate
}

// Event is one decision, for the audit chain.
type Event struct {
	Seq     uint64 // per supervisor, from 1, counting every event
	AID     uint64
	TID     int    // calling thread, in the supervisor's pid namespace
	Syscall string // "openat", "execve"...
	Path    string // the real file decided on ("" if it has no path)
	// Cap and Object are set for calls the filter refuses whatever the
	// bundle (mount, bpf, ptrace, namespaces…): the capability such a
	// call would take ("sys.mount") and what was asked ("unshare
	// flags=0x10000000"). File events leave Cap empty; one on a file
	// without a path (a memfd, a deleted file) has the kernel's name for
	// it in Object ("/memfd:x (deleted)"), for the row only.
	Cap     string
	Object  string
	Access  Access
	Allowed bool
	Errno   syscall.Errno // what the agent got when not allowed
	// NotifID is the notification's id: kept in the row, so that a
	// daemon started after this one died answers a notification this one
	// recorded and did not answer with that row's verdict (journal.go),
	// rather than have the call restart into a second row.
	NotifID uint64
}

// Decider is what the enforcer implements: its agent's current bundle, after
// grants and revocations. Every method may be called from several
// supervisors' goroutines at once.
type Decider interface {
	// Allow reports whether agent aid may access the real file at path
	// (absolute and clean) with access. Only a true answer lets the call
	// through.
	Allow(aid uint64, path string, access Access) bool
	// AuditAllowed reports whether an allowed call must be recorded (the
	// manifest's audit policy). Denials are always recorded.
	AuditAllowed(ev Event) bool
	// Record appends ev to the audit chain. An error refuses the call with
	// ECAPABILITY: nothing happens unrecorded.
	Record(ev Event) error
}
