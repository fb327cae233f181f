package supervise

import (
	"encoding/binary"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

// runFilter interprets the subset of classic BPF the filter uses over a
// seccomp_data, so every verdict is checked without loading it.
func runFilter(prog []unix.SockFilter, d seccompData) (uint32, error) {
	var buf [64]byte
	binary.LittleEndian.PutUint32(buf[0:], uint32(d.Nr))
	binary.LittleEndian.PutUint32(buf[4:], d.Arch)
	binary.LittleEndian.PutUint64(buf[8:], d.IP)
	for i, a := range d.Args {
		binary.LittleEndian.PutUint64(buf[16+8*i:], a)
	}
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case ldAbsW:
			if in.K+4 > uint32(len(buf)) || in.K%4 != 0 {
				return 0, fmt.Errorf("pc %d: load at %d", pc, in.K)
			}
			acc = binary.LittleEndian.Uint32(buf[in.K:])
		case andK:
			acc &= in.K
		case jeqK, jgeK, jsetK:
			var ok bool
			switch in.Code {
			case jeqK:
				ok = acc == in.K
			case jgeK:
				ok = acc >= in.K
			default:
				ok = acc&in.K != 0
			}
			if ok {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case ja:
			pc += int(in.K)
		case retK:
			return in.K, nil
		default:
			return 0, fmt.Errorf("pc %d: opcode %#x", pc, in.Code)
		}
	}
	return 0, fmt.Errorf("fell off the end")
}

func sys(nr int, args ...uint64) seccompData {
	d := seccompData{Nr: int32(nr), Arch: auditArchX8664}
	copy(d.Args[:], args)
	return d
}

// refusedVerdicts lists calls refused whatever the bundle: the filter
// hands them to the supervisor, which refuses and records them.
var refusedVerdicts = []struct {
	name string
	data seccompData
}{
	{"mount", sys(unix.SYS_MOUNT)},
	{"bpf", sys(unix.SYS_BPF)},
	{"finit_module", sys(unix.SYS_FINIT_MODULE)},
	{"kexec_file_load", sys(unix.SYS_KEXEC_FILE_LOAD)},
	{"ptrace attach", sys(unix.SYS_PTRACE, unix.PTRACE_ATTACH)},
	{"ptrace seize", sys(unix.SYS_PTRACE, unix.PTRACE_SEIZE)},
	{"ptrace traceme", sys(unix.SYS_PTRACE, unix.PTRACE_TRACEME)},
	{"io_uring_setup", sys(unix.SYS_IO_URING_SETUP)},
	{"io_uring_enter", sys(unix.SYS_IO_URING_ENTER)},
	{"open_tree", sys(unix.SYS_OPEN_TREE)},
	{"setns", sys(unix.SYS_SETNS)},
	{"unshare newuser", sys(unix.SYS_UNSHARE, unix.CLONE_NEWUSER)},
	{"unshare newtime", sys(unix.SYS_UNSHARE, unix.CLONE_NEWTIME)},
	{"clone newuser", sys(unix.SYS_CLONE, unix.CLONE_NEWUSER|uint64(unix.SIGCHLD))},
	{"clone newnet high bits", sys(unix.SYS_CLONE, 0xffffffff00000000|unix.CLONE_NEWNET)},
	{"socket inet raw", sys(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_RAW|unix.SOCK_NONBLOCK)},
	{"socket inet6 raw", sys(unix.SYS_SOCKET, unix.AF_INET6, unix.SOCK_RAW)},
	{"socket packet", sys(unix.SYS_SOCKET, unix.AF_PACKET, unix.SOCK_DGRAM)},
	{"socket inet sock_packet", sys(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_PACKET)},
	{"netlink audit", sys(unix.SYS_SOCKET, unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_AUDIT)},
	{"netlink uevent", sys(unix.SYS_SOCKET, unix.AF_NETLINK, unix.SOCK_DGRAM, unix.NETLINK_KOBJECT_UEVENT)},
	{"personality no-aslr", sys(unix.SYS_PERSONALITY, 0x0040000 /* ADDR_NO_RANDOMIZE */)},
	{"socket vsock", sys(unix.SYS_SOCKET, unix.AF_VSOCK, unix.SOCK_STREAM)},
	{"socket alg", sys(unix.SYS_SOCKET, unix.AF_ALG, unix.SOCK_SEQPACKET)},
	{"socket tipc", sys(unix.SYS_SOCKET, unix.AF_TIPC, unix.SOCK_RDM)},
	{"socket rds", sys(unix.SYS_SOCKET, unix.AF_RDS, unix.SOCK_SEQPACKET)},
	{"socket bluetooth", sys(unix.SYS_SOCKET, unix.AF_BLUETOOTH, unix.SOCK_STREAM)},
	{"socket unspec", sys(unix.SYS_SOCKET, unix.AF_UNSPEC, unix.SOCK_STREAM)},
	{"socket family high bits", sys(unix.SYS_SOCKET, 0xffffffff00000000|unix.AF_VSOCK, unix.SOCK_STREAM)},
	{"socketpair tipc", sys(unix.SYS_SOCKETPAIR, unix.AF_TIPC, unix.SOCK_SEQPACKET)},
	{"seccomp new listener", sys(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, seccompNewListener)},
	{"seccomp new listener and tsync", sys(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, seccompNewListener|1)},
	{"ioctl setflags", sys(unix.SYS_IOCTL, 3, unix.FS_IOC_SETFLAGS)},
	{"ioctl setflags32", sys(unix.SYS_IOCTL, 3, fsIOC32SetFlags)},
	{"ioctl fssetxattr", sys(unix.SYS_IOCTL, 3, fsIOCFSSetXattr)},
	{"ioctl enable verity", sys(unix.SYS_IOCTL, 3, unix.FS_IOC_ENABLE_VERITY)},
	{"ioctl setversion", sys(unix.SYS_IOCTL, 3, fsIOCSetVersion)},
	{"ioctl tiocsti", sys(unix.SYS_IOCTL, 0, unix.TIOCSTI)},
	{"ioctl tioclinux high bits", sys(unix.SYS_IOCTL, 0, 0xffffffff00000000|unix.TIOCLINUX)},
}

// argAllowed are argument-checked calls the filter lets through, with a
// listener or without.
var argAllowed = []struct {
	name string
	data seccompData
}{
	{"socket inet6 stream", sys(unix.SYS_SOCKET, unix.AF_INET6, unix.SOCK_STREAM)},
	{"socket inet6 dgram", sys(unix.SYS_SOCKET, unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK)},
	{"socketpair unix", sys(unix.SYS_SOCKETPAIR, unix.AF_UNIX, unix.SOCK_STREAM)},
	{"seccomp filter", sys(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0)},
	{"seccomp tsync", sys(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 1)},
	{"seccomp get action", sys(unix.SYS_SECCOMP, unix.SECCOMP_GET_ACTION_AVAIL, 0)},
	{"ioctl tcgets", sys(unix.SYS_IOCTL, 0, unix.TCGETS)},
	{"ioctl fionread", sys(unix.SYS_IOCTL, 3, unix.SIOCINQ)},
	{"ioctl getflags", sys(unix.SYS_IOCTL, 3, unix.FS_IOC_GETFLAGS)},
}

// TestFilterArgAllowed: the argument-checked calls' allowed forms pass
// with no notification, with a listener and without.
func TestFilterArgAllowed(t *testing.T) {
	for _, o := range []Options{{}, {NoListener: true}, {Static: true}} {
		prog := Program(o)
		for _, tt := range argAllowed {
			if got, err := runFilter(prog, tt.data); err != nil || got != retAllow {
				t.Errorf("%+v %s: verdict %#x (%v), want allow", o, tt.name, got, err)
			}
		}
	}
}

func TestFilterVerdicts(t *testing.T) {
	prog := Program(Options{})
	if len(prog) > unix.BPF_MAXINSNS {
		t.Fatalf("program has %d instructions", len(prog))
	}
	tests := []struct {
		name string
		data seccompData
		want uint32
	}{
		{"read allowed", sys(unix.SYS_READ), retAllow},
		{"getpid allowed", sys(unix.SYS_GETPID), retAllow},
		{"openat notified", sys(unix.SYS_OPENAT), retNotify},
		{"open notified", sys(unix.SYS_OPEN), retNotify},
		{"openat2 notified", sys(unix.SYS_OPENAT2), retNotify},
		{"execve notified", sys(unix.SYS_EXECVE), retNotify},
		{"execveat notified", sys(unix.SYS_EXECVEAT), retNotify},
		{"renameat2 notified", sys(unix.SYS_RENAMEAT2), retNotify},
		{"linkat notified", sys(unix.SYS_LINKAT), retNotify},
		{"fchmodat2 notified", sys(unix.SYS_FCHMODAT2), retNotify},
		{"unshare files allowed", sys(unix.SYS_UNSHARE, unix.CLONE_FILES), retAllow},
		{"clone thread allowed", sys(unix.SYS_CLONE, unix.CLONE_VM|unix.CLONE_THREAD|unix.CLONE_SIGHAND), retAllow},
		{"clone fork allowed", sys(unix.SYS_CLONE, uint64(unix.SIGCHLD)), retAllow},
		{"clone3 nosys", sys(unix.SYS_CLONE3), retNosys},
		{"socket inet stream allowed", sys(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC), retAllow},
		{"socket unix allowed", sys(unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_DGRAM), retAllow},
		{"netlink route allowed", sys(unix.SYS_SOCKET, unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE), retAllow},
		{"personality query allowed", sys(unix.SYS_PERSONALITY, 0xffffffff), retAllow},
		{"personality linux allowed", sys(unix.SYS_PERSONALITY, 0), retAllow},
		{"x32 open nosys", sys(x32SyscallBit | unix.SYS_OPEN), retNosys},
		{"x32 read nosys", sys(x32SyscallBit | unix.SYS_READ), retNosys},
		{"i386 killed", seccompData{Nr: 5, Arch: 0x40000003}, retKill},
		{"unknown arch killed", seccompData{Nr: unix.SYS_READ, Arch: 0}, retKill},
	}
	for _, tt := range refusedVerdicts {
		tests = append(tests, struct {
			name string
			data seccompData
			want uint32
		}{tt.name + " to the supervisor", tt.data, retNotify})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runFilter(prog, tt.data)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("verdict %#x, want %#x", got, tt.want)
			}
		})
	}
}

// TestFilterNoListener: without a supervisor the filter refuses outright
// what it would hand over, and lets through what is allowed.
func TestFilterNoListener(t *testing.T) {
	prog := Program(Options{NoListener: true})
	for _, tt := range refusedVerdicts {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := runFilter(prog, tt.data); err != nil || got != retDeny {
				t.Errorf("verdict %#x (%v), want ECAPABILITY", got, err)
			}
		})
	}
	t.Run("clone fork", func(t *testing.T) {
		if got, _ := runFilter(prog, sys(unix.SYS_CLONE, uint64(unix.SIGCHLD))); got != retAllow {
			t.Errorf("verdict %#x", got)
		}
	})
	// What a supervisor would decide is the floor's: a notification with
	// no listener would fail every open with ENOSYS.
	for _, nr := range []int{unix.SYS_OPENAT, unix.SYS_EXECVE, unix.SYS_RENAMEAT2, unix.SYS_UNLINKAT} {
		t.Run(fmt.Sprintf("syscall %d left to the floor", nr), func(t *testing.T) {
			if got, err := runFilter(prog, sys(nr, 0, 0)); err != nil || got != retAllow {
				t.Errorf("verdict %#x (%v), want allow", got, err)
			}
		})
	}
}

// TestFilterStatic: read-only opens pass to the floor; anything that
// writes, creates or truncates, and every other mediated call, is trapped.
func TestFilterStatic(t *testing.T) {
	prog := Program(Options{Static: true})
	const hi = 0xffffffff00000000 // the kernel reads the int flags' low half only
	tests := []struct {
		name string
		data seccompData
		want uint32
	}{
		{"open rdonly", sys(unix.SYS_OPEN, 0, unix.O_RDONLY|unix.O_CLOEXEC), retAllow},
		{"open rdonly directory nofollow", sys(unix.SYS_OPEN, 0, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW), retAllow},
		{"openat rdonly", sys(unix.SYS_OPENAT, uint64(1<<32-100), 0, unix.O_RDONLY|unix.O_CLOEXEC), retAllow},
		{"openat rdonly high bits", sys(unix.SYS_OPENAT, 3, 0, hi|unix.O_RDONLY), retAllow},
		{"openat path", sys(unix.SYS_OPENAT, 3, 0, unix.O_PATH), retAllow},
		{"open wronly", sys(unix.SYS_OPEN, 0, unix.O_WRONLY), retNotify},
		{"open rdwr", sys(unix.SYS_OPEN, 0, unix.O_RDWR), retNotify},
		{"open accmode 3", sys(unix.SYS_OPEN, 0, 3), retNotify},
		{"open creat", sys(unix.SYS_OPEN, 0, unix.O_RDONLY|unix.O_CREAT), retNotify},
		{"open trunc", sys(unix.SYS_OPEN, 0, unix.O_RDONLY|unix.O_TRUNC), retNotify},
		{"openat wronly", sys(unix.SYS_OPENAT, 3, 0, unix.O_WRONLY|unix.O_CLOEXEC), retNotify},
		{"openat tmpfile", sys(unix.SYS_OPENAT, 3, 0, unix.O_TMPFILE|unix.O_RDWR), retNotify},
		{"openat creat excl", sys(unix.SYS_OPENAT, 3, 0, unix.O_CREAT|unix.O_EXCL), retNotify},
		{"openat2 always", sys(unix.SYS_OPENAT2, 3, 0, 0, 24), retNotify},
		{"creat always", sys(unix.SYS_CREAT, 0, 0o644), retNotify},
		{"execve", sys(unix.SYS_EXECVE), retNotify},
		{"rename", sys(unix.SYS_RENAMEAT2), retNotify},
		{"mount", sys(unix.SYS_MOUNT), retNotify},
		{"read", sys(unix.SYS_READ), retAllow},
		{"x32 open nosys", sys(x32SyscallBit | unix.SYS_OPEN), retNosys},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runFilter(prog, tt.data)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("verdict %#x, want %#x", got, tt.want)
			}
		})
	}
}

// TestRefusalDescribed: every refused call has a capability and a name for
// its row, so none is refused unrecorded or recorded as "syscall".
func TestRefusalDescribed(t *testing.T) {
	for _, nr := range append(append([]uint32{}, refused...), unix.SYS_CLONE, unix.SYS_UNSHARE, unix.SYS_SOCKET, unix.SYS_PERSONALITY,
		unix.SYS_SOCKETPAIR, unix.SYS_SECCOMP, unix.SYS_IOCTL) {
		d := sys(int(nr), 1, 2, 3)
		cap, obj, ok := refusal(&d)
		if !ok || cap == "" || obj == "" || refusedNames[int32(nr)] == "" {
			t.Errorf("syscall %d: cap %q object %q ok %v", nr, cap, obj, ok)
		}
	}
	for _, nr := range notified {
		d := sys(int(nr))
		if _, _, ok := refusal(&d); ok {
			t.Errorf("mediated syscall %d taken for a refusal", nr)
		}
	}
}

// TestFilterListsDisjoint: a call both notified and refused would silently
// take whichever comes first in the program.
func TestFilterListsDisjoint(t *testing.T) {
	seen := map[uint32]string{}
	for _, nr := range notified {
		if seen[nr] != "" {
			t.Errorf("syscall %d notified twice", nr)
		}
		seen[nr] = "notified"
		if syscallName(int32(nr)) == "syscall" {
			t.Errorf("notified syscall %d has no name", nr)
		}
	}
	for _, nr := range refused {
		if seen[nr] != "" {
			t.Errorf("syscall %d is both %s and refused", nr, seen[nr])
		}
		seen[nr] = "refused"
	}
}

// FuzzFilter: any input gets a defined verdict, x32 never passes, foreign
// architectures are always killed.
func FuzzFilter(f *testing.F) {
	f.Add(int32(unix.SYS_OPENAT), uint32(auditArchX8664), uint64(0), uint64(0), uint64(0))
	f.Add(int32(unix.SYS_SOCKET), uint32(auditArchX8664), uint64(unix.AF_NETLINK), uint64(unix.SOCK_RAW), uint64(9))
	f.Add(int32(x32SyscallBit|2), uint32(auditArchX8664), uint64(0), uint64(0), uint64(0))
	f.Add(int32(-1), uint32(0x40000003), uint64(1), uint64(2), uint64(3))
	f.Add(int32(unix.SYS_SENDTO), uint32(auditArchX8664), uint64(3), uint64(0x1000), uint64(1))
	progs := []([]unix.SockFilter){Program(Options{}), Program(Options{Static: true}), Program(Options{NoListener: true}),
		Program(Options{TrapUnixConnect: true}), Program(Options{TrapUnixConnect: true, Static: true}),
		Program(Options{TrapUnixConnect: true, NoListener: true})}
	f.Fuzz(func(t *testing.T, nr int32, arch uint32, a0, a1, a2 uint64) {
		// sendto's dest_addr (argument 4) from the other arguments, so
		// both NULL and each half set are reached.
		d := seccompData{Nr: nr, Arch: arch, Args: [6]uint64{a0, a1, a2, 0, a0 ^ a2, 0}}
		got, err := runFilter(progs[0], d)
		if err != nil {
			t.Fatal(err)
		}
		checkTrapUnix(t, progs[3:], d, progs[0], progs[1], progs[2])
		// Static differs from supervised only on read-only open/openat.
		st, err := runFilter(progs[1], d)
		if err != nil {
			t.Fatal(err)
		}
		if st != got {
			flags := a1
			if nr == unix.SYS_OPENAT {
				flags = a2
			}
			if arch != auditArchX8664 || (nr != unix.SYS_OPEN && nr != unix.SYS_OPENAT) || st != retAllow || uint32(flags)&writeOpenFlags != 0 {
				t.Fatalf("static verdict %#x, supervised %#x", st, got)
			}
		}
		// Without a listener nothing is notified: refusals are answered
		// in the filter, mediated file calls are left to the floor.
		nl, err := runFilter(progs[2], d)
		if err != nil {
			t.Fatal(err)
		}
		if nl == retNotify {
			t.Fatalf("call %d notified without a listener", nr)
		}
		if nl != got && got != retNotify {
			t.Fatalf("no-listener verdict %#x, supervised %#x", nl, got)
		}
		if got == retNotify && arch == auditArchX8664 {
			_, _, refused := refusal(&d)
			if _, ok := processCalls[nr]; ok {
				refused = true // another process: no one to ask
			}
			if want := map[bool]uint32{true: retDeny, false: retAllow}[refused]; nl != want {
				t.Fatalf("no-listener verdict %#x for call %d (refused %v), want %#x", nl, nr, refused, want)
			}
		}
		switch {
		case arch != auditArchX8664:
			if got != retKill {
				t.Fatalf("arch %#x: verdict %#x", arch, got)
			}
		case uint32(nr) >= x32SyscallBit:
			if got != retNosys {
				t.Fatalf("nr %#x: verdict %#x", nr, got)
			}
		case got == retNotify:
			// Every notification is one the supervisor knows: a mediated
			// file call, a process call or a refusal it records.
			_, proc := processCalls[nr]
			if _, _, ok := refusal(&d); !ok && !proc && syscallName(nr) == "syscall" {
				t.Fatalf("syscall %d notified, unknown to the supervisor", nr)
			}
		case got != retAllow && got != retNosys:
			// With a listener, nothing is refused in the filter: it
			// would never reach the chain.
			t.Fatalf("verdict %#x", got)
		}
	})
}

// FuzzRefusal: describing any notification never panics, and only the
// singled-out calls are taken for refusals, always with a row to write.
func FuzzRefusal(f *testing.F) {
	f.Add(int32(unix.SYS_MOUNT), uint64(0), uint64(0x7ffc0000), uint64(0))
	f.Add(int32(unix.SYS_PTRACE), uint64(unix.PTRACE_SEIZE), uint64(1<<40), uint64(0))
	f.Add(int32(unix.SYS_OPENAT), uint64(0), uint64(0), uint64(0))
	f.Add(int32(-1), ^uint64(0), ^uint64(0), ^uint64(0))
	f.Fuzz(func(t *testing.T, nr int32, a0, a1, a2 uint64) {
		d := seccompData{Nr: nr, Arch: auditArchX8664, Args: [6]uint64{a0, a1, a2}}
		cap, obj, ok := refusal(&d)
		_, listed := refusedCaps[nr]
		listed = listed || classOf(nr) == unclassified
		if ok != listed || (ok && (cap == "" || obj == "")) {
			t.Fatalf("nr %d: %q %q %v", nr, cap, obj, ok)
		}
		_ = refusedTarget(&d)
	})
}
