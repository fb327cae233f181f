package launch

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/coconut-os/coconut/internal/supervise"
)

// Main runs the trampoline when this process was started as one and never
// returns then; otherwise it returns at once. Call it first in main (and in
// TestMain of tests that start agents).
func Main() {
	if len(os.Args) > 0 && os.Args[0] == supervise.HolderArg0 {
		// The listener holder (supervise.Hold) is this binary too: the
		// daemon starts it with its listening socket at fd 3.
		supervise.Hold(3)
	}
	if len(os.Args) == 0 || os.Args[0] != Arg0 {
		return
	}
	// Everything below must happen on the thread that execs: no_new_privs,
	// the bounding set and capabilities are per thread.
	runtime.LockOSThread()
	err := trampoline()
	status := os.NewFile(fdStatus, "status")
	fmt.Fprintf(status, "%v", err)
	os.Exit(127)
}

// Secure bits (linux/securebits.h): root gains no capabilities at exec, and
// that cannot be undone.
const (
	secbitNoRoot         = 1 << 0
	secbitNoRootLocked   = 1 << 1
	secbitKeepCapsLocked = 1 << 5
	secbitNoAmbientRaise = 1 << 6
	secbitNoAmbientLock  = 1 << 7
)

func trampoline() error {
	var spec Spec
	f := os.NewFile(fdSpec, "spec")
	b, err := io.ReadAll(io.LimitReader(f, 4<<20))
	f.Close()
	if err != nil {
		return fmt.Errorf("read spec: %w", err)
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		return fmt.Errorf("decode spec: %w", err)
	}
	if len(spec.Argv) == 0 {
		return fmt.Errorf("empty argv")
	}
	if err := joinCgroups(spec.CgroupProcs); err != nil {
		return err
	}
	if !spec.HasScript {
		syscall.Close(fdScript)
	}

	if err := dropBounding(); err != nil {
		return err
	}
	bits := secbitNoRoot | secbitNoRootLocked | secbitKeepCapsLocked | secbitNoAmbientRaise | secbitNoAmbientLock
	if err := unix.Prctl(unix.PR_SET_SECUREBITS, uintptr(bits), 0, 0, 0); err != nil {
		return fmt.Errorf("set securebits: %w", err)
	}
	groups := make([]int, len(spec.Groups))
	for i, g := range spec.Groups {
		groups[i] = int(g)
	}
	// The syscall package applies these to every thread of the process.
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setresgid(int(spec.GID), int(spec.GID), int(spec.GID)); err != nil {
		return fmt.Errorf("setgid %d: %w", spec.GID, err)
	}
	if err := syscall.Setresuid(int(spec.UID), int(spec.UID), int(spec.UID)); err != nil {
		return fmt.Errorf("setuid %d: %w", spec.UID, err)
	}
	// A non-root uid lost its capabilities with setuid; root keeps them
	// until here.
	var none [2]unix.CapUserData
	if err := unix.Capset(&unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}, &none[0]); err != nil {
		return fmt.Errorf("drop capabilities: %w", err)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	if spec.Dir != "" {
		if err := syscall.Chdir(spec.Dir); err != nil {
			return fmt.Errorf("working directory %s: %w", spec.Dir, err)
		}
	}
	if spec.Floor != nil {
		// Last, after chdir: the domain binds the agent from its first
		// instruction, and nothing the trampoline still does needs it.
		if err := applyFloor(spec.Floor); err != nil {
			return err
		}
	}
	trapUnix := spec.Floor != nil && spec.Floor.TrapUnix
	if trapUnix && !spec.Supervised {
		// No one would check its Unix connects: never exec (fail closed).
		return fmt.Errorf("the Unix socket fallback needs the seccomp supervisor, and none serves this agent")
	}
	// Everything but what the agent is meant to hold is closed by the
	// exec (fds.go). Before the filter, which might trap the call.
	if err := closeAtExec(agentFDs(spec)); err != nil {
		return err
	}
	if spec.Supervised {
		// After the floor and immediately before exec: the filter traps
		// the exec itself, which the supervisor answers. If the handover
		// fails, the thread may already be filtered: never exec then.
		c := os.NewFile(fdSuper, "supervise")
		err := supervise.Install(c, supervise.Options{Static: spec.Static, TrapUnixConnect: trapUnix})
		c.Close()
		if err != nil {
			return err
		}
	} else if spec.Floor != nil {
		// An enforced agent no supervisor serves still gets the plain
		// filter: mount, bpf, ptrace, user namespaces and raw sockets
		// stay refused; files are the floor's.
		if err := supervise.InstallPlain(supervise.Options{}); err != nil {
			return err
		}
	}
	return execveat(fdExec, spec.Argv, spec.Env)
}

// joinCgroups moves this process (all its threads) into each v1 group.
// It runs first, as root, before anything of the agent's: a group that
// cannot be joined fails the spawn rather than leaving the agent unlimited.
func joinCgroups(procs []string) error {
	pid := []byte(strconv.Itoa(os.Getpid()))
	for _, p := range procs {
		if !filepath.IsAbs(p) || filepath.Base(p) != "cgroup.procs" {
			return fmt.Errorf("join cgroup %q: not a cgroup.procs path", p)
		}
		if err := os.WriteFile(p, pid, 0); err != nil {
			return fmt.Errorf("join cgroup %s: %w", filepath.Dir(p), err)
		}
	}
	return nil
}

// dropBounding empties the capability bounding set of this thread, so
// nothing the agent execs can ever regain a capability.
func dropBounding() error {
	last := unix.CAP_LAST_CAP
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			last = n
		}
	}
	for c := 0; c <= last; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("drop bounding capability %d: %w", c, err)
		}
	}
	return nil
}

// execveat runs the program behind fd with AT_EMPTY_PATH: fexecve(3).
func execveat(fd int, argv, env []string) error {
	argvp, err := syscall.SlicePtrFromStrings(argv)
	if err != nil {
		return err
	}
	envp, err := syscall.SlicePtrFromStrings(env)
	if err != nil {
		return err
	}
	empty, _ := syscall.BytePtrFromString("")
	_, _, errno := syscall.RawSyscall6(unix.SYS_EXECVEAT, uintptr(fd),
		uintptr(unsafe.Pointer(empty)),
		uintptr(unsafe.Pointer(&argvp[0])),
		uintptr(unsafe.Pointer(&envp[0])),
		uintptr(unix.AT_EMPTY_PATH), 0)
	return fmt.Errorf("exec %s: %w", argv[0], errno)
}
