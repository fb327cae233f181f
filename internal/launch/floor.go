package launch

import (
	"errors"
	"fmt"
	"os"

	"github.com/landlock-lsm/go-landlock/landlock"
	"golang.org/x/sys/unix"
)

// Floor is the agent's Landlock domain, applied by the trampoline right
// before exec and enforced by the kernel for the agent's whole life, even
// if coconutd dies. It is built from the agent's ceiling (everything it
// may ever be granted), so grants up to the ceiling need no new domain —
// a running process's domain can only ever be narrowed.
//
// Paths name files or directory trees and must exist at spawn (Landlock
// rules attach to inodes). Landlock cannot express address or glob rules:
// the floor is the coarse bound, the supervisor and cgroup BPF the exact
// one.
type Floor struct {
	Read  []string `json:"read"`
	Write []string `json:"write"` // write, truncate, create, remove, rename within
	Exec  []string `json:"exec"`
	// HandleConnect restricts TCP connect to the listed ports; false leaves
	// TCP connect to cgroup BPF (which also knows addresses).
	HandleConnect bool     `json:"handle_connect"`
	Connect       []uint16 `json:"connect,omitempty"`
	HandleBind    bool     `json:"handle_bind"`
	Bind          []uint16 `json:"bind,omitempty"`
	// TrapUnix: the network guard has no Unix socket hooks, so the
	// supervisor's filter also traps connect and send
	// (supervise.Options.TrapUnixConnect). Not a Landlock right: set by
	// the portable backend, and an agent with it is never run without
	// the supervisor.
	TrapUnix bool `json:"trap_unix,omitempty"`
	// LSMDecides: the bpf-lsm programs decide opens for read and write and
	// execs (with a row and ECAPABILITY), so the floor leaves those rights
	// unhandled: Landlock runs before bpf in the LSM list, and a floor
	// refusal there would be EACCES with no row. The floor keeps what the
	// programs do not hook: directory reads and device ioctls, and making,
	// removing, renaming, linking and truncation unless the two below say
	// the path hooks decide them on this kernel.
	LSMDecides bool `json:"lsm_decides,omitempty"`
	// LSMMakeRemove and LSMTruncate (with LSMDecides): the programs' path
	// hooks are attached on this kernel (bpflsm.Guard.Coverage), so the
	// floor leaves making and removing names (MAKE_REG, MAKE_DIR,
	// MAKE_SYM, MAKE_SOCK, MAKE_FIFO, REMOVE_FILE, REMOVE_DIR) and
	// truncation to them as well. Kept whatever these say: REFER (Landlock
	// refuses every rename or link across directories of a domain that
	// does not handle it and grant it; granted where the floor writes),
	// MAKE_CHAR and MAKE_BLOCK (never granted), directory reads and
	// device ioctls.
	LSMMakeRemove bool `json:"lsm_make_remove,omitempty"`
	LSMTruncate   bool `json:"lsm_truncate,omitempty"`
}

// lsmMakeRemove are the rights LSMMakeRemove leaves to the programs.
const lsmMakeRemove = unix.LANDLOCK_ACCESS_FS_MAKE_REG | unix.LANDLOCK_ACCESS_FS_MAKE_DIR | unix.LANDLOCK_ACCESS_FS_MAKE_SYM |
	unix.LANDLOCK_ACCESS_FS_MAKE_SOCK | unix.LANDLOCK_ACCESS_FS_MAKE_FIFO |
	unix.LANDLOCK_ACCESS_FS_REMOVE_FILE | unix.LANDLOCK_ACCESS_FS_REMOVE_DIR

// fsHandled is what the floor f handles of the file system rights.
func (f *Floor) fsHandled() uint64 {
	h := uint64(fsRead | fsWrite | unix.LANDLOCK_ACCESS_FS_EXECUTE |
		unix.LANDLOCK_ACCESS_FS_MAKE_CHAR | unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK | unix.LANDLOCK_ACCESS_FS_TRUNCATE |
		unix.LANDLOCK_ACCESS_FS_IOCTL_DEV)
	if !f.LSMDecides {
		return h
	}
	h &^= unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE | unix.LANDLOCK_ACCESS_FS_EXECUTE
	if f.LSMMakeRemove {
		h &^= lsmMakeRemove
	}
	if f.LSMTruncate {
		h &^= unix.LANDLOCK_ACCESS_FS_TRUNCATE
	}
	return h
}

// ErrNoLandlock means the kernel offers no Landlock at all: agents must
// not start (fail closed).
var ErrNoLandlock = errors.New("landlock is not available in this kernel")

const (
	fsRead  = unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_READ_DIR
	fsExec  = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_READ_DIR
	fsWrite = unix.LANDLOCK_ACCESS_FS_WRITE_FILE | unix.LANDLOCK_ACCESS_FS_TRUNCATE |
		unix.LANDLOCK_ACCESS_FS_MAKE_REG | unix.LANDLOCK_ACCESS_FS_MAKE_DIR | unix.LANDLOCK_ACCESS_FS_MAKE_SYM |
		unix.LANDLOCK_ACCESS_FS_MAKE_SOCK | unix.LANDLOCK_ACCESS_FS_MAKE_FIFO |
		unix.LANDLOCK_ACCESS_FS_REMOVE_FILE | unix.LANDLOCK_ACCESS_FS_REMOVE_DIR | unix.LANDLOCK_ACCESS_FS_REFER
	// Rights that make sense on a file (the others are directory-only).
	fsFileOnly = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE |
		unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_TRUNCATE | unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
)

// restrictSelfLogNewExecOn asks the kernel to log denials after the exec
// too (by default a domain's denials are logged only before it).
const restrictSelfLogNewExecOn = 1 << 1

// LandlockABI returns the kernel's Landlock ABI version (0: none).
func LandlockABI() int {
	v, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if errno != 0 {
		return 0
	}
	return int(v)
}

// FloorRights lists what the running kernel enforces of a floor, for the
// attestation: best effort below ABI 7 silently drops rights the kernel
// does not know, so the record says which ones held.
func FloorRights() []string {
	abi := LandlockABI()
	var out []string
	add := func(min int, names ...string) {
		if abi >= min {
			out = append(out, names...)
		}
	}
	add(1, "fs.read", "fs.write", "fs.exec", "fs.make", "fs.remove")
	add(2, "fs.refer")
	add(3, "fs.truncate")
	add(4, "net.tcp.connect", "net.tcp.bind")
	add(5, "fs.ioctl_dev")
	add(6, "scope.signal", "scope.abstract_unix_socket")
	add(7, "audit.log_new_exec")
	return out
}

// applyFloor restricts the calling thread (the one that will exec): a
// Landlock domain applied per thread is what the exec'd image inherits.
func applyFloor(f *Floor) error {
	if LandlockABI() < 1 {
		return ErrNoLandlock
	}
	fsHandled := f.fsHandled()
	handled := []any{landlock.AccessFSSet(fsHandled)}
	var net landlock.AccessNetSet
	if f.HandleConnect {
		net |= unix.LANDLOCK_ACCESS_NET_CONNECT_TCP
	}
	if f.HandleBind {
		net |= unix.LANDLOCK_ACCESS_NET_BIND_TCP
	}
	if net != 0 {
		handled = append(handled, net)
	}
	handled = append(handled, landlock.ScopedSet(unix.LANDLOCK_SCOPE_SIGNAL|unix.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET))
	cfg, err := landlock.NewConfig(handled...)
	if err != nil {
		return fmt.Errorf("landlock config: %w", err)
	}
	var rules []landlock.Rule
	for _, set := range []struct {
		paths  []string
		access uint64
	}{{f.Read, fsRead}, {f.Write, fsWrite | fsRead}, {f.Exec, fsExec}} {
		for _, p := range set.paths {
			st, err := os.Stat(p)
			if err != nil {
				return fmt.Errorf("landlock rule %s: %w", p, err)
			}
			access := set.access & fsHandled
			if !st.IsDir() {
				access &= fsFileOnly
			}
			if access == 0 {
				continue // nothing of it is the floor's to decide
			}
			rules = append(rules, landlock.PathAccess(landlock.AccessFSSet(access), p))
		}
	}
	for _, p := range f.Connect {
		rules = append(rules, landlock.ConnectTCP(p))
	}
	for _, p := range f.Bind {
		rules = append(rules, landlock.BindTCP(p))
	}
	fd, flags, err := cfg.BestEffort().NewRulesetFD(rules...)
	if err != nil {
		return fmt.Errorf("landlock ruleset: %w", err)
	}
	defer unix.Close(fd)
	if LandlockABI() >= 7 {
		flags |= restrictSelfLogNewExecOn
	}
	if _, _, errno := unix.Syscall(unix.SYS_LANDLOCK_RESTRICT_SELF, uintptr(fd), uintptr(flags), 0); errno != 0 {
		return fmt.Errorf("landlock restrict self: %w", errno)
	}
	return nil
}
