package supervise

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// auditArchX8664 is AUDIT_ARCH_X86_64 (EM_X86_64 | __AUDIT_ARCH_64BIT |
// __AUDIT_ARCH_LE).
const auditArchX8664 = 0xc000003e

// x32SyscallBit marks x32 system calls, which share AUDIT_ARCH_X86_64 and
// would otherwise slip past a table of x86_64 numbers.
const x32SyscallBit = 0x40000000

// Offsets in struct seccomp_data; arguments are read as their low 32 bits
// (little endian), which is all the kernel uses of the int arguments checked.
const (
	offNr   = 0
	offArch = 4
	offArg0 = 16
)

func argLow(i int) uint32 { return uint32(offArg0 + 8*i) }

// Filter return values.
const (
	retAllow  = unix.SECCOMP_RET_ALLOW
	retNotify = unix.SECCOMP_RET_USER_NOTIF
	retKill   = unix.SECCOMP_RET_KILL_PROCESS
	retDeny   = unix.SECCOMP_RET_ERRNO | uint32(ECapability)
	retNosys  = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
)

// notified are the calls the supervisor decides: everything that opens,
// executes or changes a file by path.
var notified = []uint32{
	unix.SYS_OPEN, unix.SYS_OPENAT, unix.SYS_OPENAT2, unix.SYS_CREAT,
	unix.SYS_EXECVE, unix.SYS_EXECVEAT,
	unix.SYS_RENAME, unix.SYS_RENAMEAT, unix.SYS_RENAMEAT2,
	unix.SYS_LINK, unix.SYS_LINKAT, unix.SYS_SYMLINK, unix.SYS_SYMLINKAT,
	unix.SYS_UNLINK, unix.SYS_UNLINKAT, unix.SYS_RMDIR,
	unix.SYS_MKDIR, unix.SYS_MKDIRAT, unix.SYS_MKNOD, unix.SYS_MKNODAT,
	unix.SYS_TRUNCATE,
	unix.SYS_CHMOD, unix.SYS_FCHMODAT, unix.SYS_FCHMODAT2,
	unix.SYS_CHOWN, unix.SYS_LCHOWN, unix.SYS_FCHOWNAT,
	unix.SYS_UTIME, unix.SYS_UTIMES, unix.SYS_UTIMENSAT, unix.SYS_FUTIMESAT,
	unix.SYS_SETXATTR, unix.SYS_LSETXATTR, unix.SYS_REMOVEXATTR, unix.SYS_LREMOVEXATTR,
	unix.SYS_SETXATTRAT, unix.SYS_REMOVEXATTRAT,
	// Attribute changes through a descriptor: one opened for reading must
	// not be enough to change what by path needs fs.write (emulate.go).
	unix.SYS_FCHMOD, unix.SYS_FCHOWN, unix.SYS_FSETXATTR, unix.SYS_FREMOVEXATTR,
}

// refused get ECAPABILITY: an agent never needs them, and several would
// let it step around the other layers (io_uring opens files without a
// system call the filter sees; the mount API and open_by_handle_at reach
// files by other names; file_setattr changes attributes by path with no
// Landlock right under it). They are rare, so the filter hands them to the
// supervisor, which refuses them and writes the cap.deny row; a filter
// without a listener refuses them itself (Options.NoListener). The rest
// need a capability agents never hold (reboot, swapon, settimeofday…):
// refusing them here makes each attempt a row instead of a silent EPERM.
var refused = []uint32{
	unix.SYS_MOUNT, unix.SYS_UMOUNT2, unix.SYS_PIVOT_ROOT, unix.SYS_CHROOT,
	unix.SYS_FSOPEN, unix.SYS_FSCONFIG, unix.SYS_FSMOUNT, unix.SYS_FSPICK,
	unix.SYS_OPEN_TREE, unix.SYS_OPEN_TREE_ATTR, unix.SYS_MOVE_MOUNT, unix.SYS_MOUNT_SETATTR,
	unix.SYS_STATMOUNT, unix.SYS_LISTMOUNT,
	unix.SYS_BPF, unix.SYS_INIT_MODULE, unix.SYS_FINIT_MODULE, unix.SYS_DELETE_MODULE,
	unix.SYS_KEXEC_LOAD, unix.SYS_KEXEC_FILE_LOAD,
	unix.SYS_PTRACE, unix.SYS_SETNS, unix.SYS_LISTNS,
	unix.SYS_KEYCTL, unix.SYS_ADD_KEY, unix.SYS_REQUEST_KEY,
	unix.SYS_PERF_EVENT_OPEN, unix.SYS_USERFAULTFD,
	unix.SYS_IO_URING_SETUP, unix.SYS_IO_URING_ENTER, unix.SYS_IO_URING_REGISTER,
	unix.SYS_OPEN_BY_HANDLE_AT, unix.SYS_USELIB,
	unix.SYS_FILE_SETATTR, unix.SYS_FANOTIFY_INIT, unix.SYS_FANOTIFY_MARK,
	unix.SYS_LSM_SET_SELF_ATTR, unix.SYS_MODIFY_LDT, unix.SYS_IOPL, unix.SYS_IOPERM,
	unix.SYS_SYSLOG, unix.SYS_REBOOT, unix.SYS_SWAPON, unix.SYS_SWAPOFF, unix.SYS_ACCT,
	unix.SYS_SETHOSTNAME, unix.SYS_SETDOMAINNAME, unix.SYS_SETTIMEOFDAY, unix.SYS_CLOCK_SETTIME,
	unix.SYS_VHANGUP, unix.SYS_QUOTACTL, unix.SYS_QUOTACTL_FD,
}

// Options choose a filter.
type Options struct {
	// Static leaves read-only opens to the Landlock floor: open and
	// openat whose flags ask neither write access nor O_CREAT, O_TRUNC
	// or O_TMPFILE are not trapped. openat2 (its flags are in memory,
	// out of the filter's reach) and creat still are. Such an agent's
	// reads are decided by its spawn-time floor only: they cannot be
	// revoked and are denied with EACCES, unaudited.
	Static bool
	// NoListener is for a filter installed without a supervisor
	// (InstallPlain): the refused calls get ECAPABILITY in the filter,
	// unaudited, and the calls a supervisor would decide are left to the
	// Landlock floor (allowed by the filter).
	NoListener bool
	// TrapUnixConnect hands the supervisor every call that can name a
	// Unix socket address: connect, sendmsg and sendmmsg always, sendto
	// when its dest_addr (argument 4) is not NULL. It is for kernels
	// whose network guard has no Unix socket hooks (Linux before 6.7):
	// the supervisor then checks the address against the agent's Unix
	// allowlist (unixsock.go). Without a listener there is no one to
	// check, so those calls are refused outright (fail closed).
	TrapUnixConnect bool
}

// writeOpenFlags are the open flags a static filter traps: any of them
// makes the open more than a read.
const writeOpenFlags = unix.O_ACCMODE | unix.O_CREAT | unix.O_TRUNC | oTmpfile

// Namespace flags refused in clone and unshare. CLONE_NEWTIME shares its
// value with the exit-signal bits of clone, so it is checked for unshare
// only (clone cannot create a time namespace).
const (
	cloneNamespaces = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS |
		unix.CLONE_NEWIPC | unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET
	unshareNamespaces = cloneNamespaces | unix.CLONE_NEWTIME
)

// seccompNewListener is SECCOMP_FILTER_FLAG_NEW_LISTENER.
const seccompNewListener = 1 << 3

// refusedIoctls are the ioctl commands refused: attribute changes the
// kernel allows on any descriptor of a file the caller owns, even one
// opened for reading only (immutable, append-only,
// nodump flags; project id and xattr flags; fs-verity; the inode
// generation), and terminal input injection and console control.
var refusedIoctls = []uint32{
	unix.FS_IOC_SETFLAGS, fsIOC32SetFlags, fsIOCFSSetXattr,
	unix.FS_IOC_ENABLE_VERITY, fsIOCSetVersion, fsIOC32SetVersion,
	unix.TIOCSTI, unix.TIOCLINUX,
}

// ioctl numbers x/sys/unix lacks (linux/fs.h).
const (
	fsIOC32SetFlags   = 0x40046602 // _IOW('f', 2, int)
	fsIOCFSSetXattr   = 0x401c5820 // _IOW('X', 32, struct fsxattr)
	fsIOCSetVersion   = 0x40087602 // _IOW('v', 2, long)
	fsIOC32SetVersion = 0x40047602 // _IOW('v', 2, int)
)

// Classic BPF opcodes used here.
const (
	ldAbsW = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	jeqK   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	jgeK   = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
	jsetK  = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
	ja     = unix.BPF_JMP | unix.BPF_JA
	andK   = unix.BPF_ALU | unix.BPF_AND | unix.BPF_K
	retK   = unix.BPF_RET | unix.BPF_K
)

// asm assembles a straight program whose jumps name labels; targets must lie
// ahead (classic BPF only jumps forward), within 255 instructions for a
// conditional jump, anywhere for goTo.
type asm struct {
	prog   []unix.SockFilter
	labels map[string]int
	fix    []fixup
	n      int // labels made by newLabel
}

type fixup struct {
	at     int
	jt, jf string
	long   bool // an unconditional jump: the offset is in K
}

func (a *asm) stmt(code uint16, k uint32) {
	a.prog = append(a.prog, unix.SockFilter{Code: code, K: k})
}

// jump emits a conditional jump; "" means the next instruction.
func (a *asm) jump(code uint16, k uint32, jt, jf string) {
	a.fix = append(a.fix, fixup{at: len(a.prog), jt: jt, jf: jf})
	a.prog = append(a.prog, unix.SockFilter{Code: code, K: k})
}

// goTo emits an unconditional jump, whose 32-bit offset reaches anywhere.
func (a *asm) goTo(name string) {
	a.fix = append(a.fix, fixup{at: len(a.prog), jt: name, long: true})
	a.prog = append(a.prog, unix.SockFilter{Code: ja})
}

func (a *asm) label(name string) { a.labels[name] = len(a.prog) }

func (a *asm) newLabel() string {
	a.n++
	return fmt.Sprintf(".%d", a.n)
}

func (a *asm) resolve() []unix.SockFilter {
	off := func(at int, name string, limit int) int {
		if name == "" {
			return 0
		}
		to, ok := a.labels[name]
		d := to - at - 1
		if !ok || d < 0 || d > limit {
			// A bug in this file, never input: the program is fixed.
			panic("supervise: bad filter label " + name)
		}
		return d
	}
	for _, f := range a.fix {
		if f.long {
			a.prog[f.at].K = uint32(off(f.at, f.jt, 1<<31))
			continue
		}
		a.prog[f.at].Jt = uint8(off(f.at, f.jt, 255))
		a.prog[f.at].Jf = uint8(off(f.at, f.jf, 255))
	}
	return a.prog
}

// segment is a run of consecutive system call numbers, from start up to
// the next segment's start, that the filter treats alike: leaf names a
// return ("allow", "notify", "deny", "proc", "nosys") or a block that
// looks at the arguments.
type segment struct {
	start uint32
	leaf  string
}

// leafOf is what the filter does with call nr.
func leafOf(nr uint32, o Options) string {
	switch classes[nr] {
	case harmlessC:
		return "allow"
	case mediatedC:
		switch {
		case o.Static && nr == unix.SYS_OPEN:
			return "openflags1"
		case o.Static && nr == unix.SYS_OPENAT:
			return "openflags2"
		}
		return "notify"
	case obsoleteC:
		return "nosys"
	case processC:
		return map[targetShape]string{pidArg0: "pid0", prioWho: "prio", ioprioWho: "ioprio"}[processCalls[int32(nr)].shape] + "proc"
	case argsC:
		switch nr {
		case unix.SYS_CLONE:
			return "clone"
		case unix.SYS_CLONE3:
			return "nosys"
		case unix.SYS_UNSHARE:
			return "unshare"
		case unix.SYS_SOCKET:
			return "socket"
		case unix.SYS_SOCKETPAIR:
			return "socketpair"
		case unix.SYS_SECCOMP:
			return "seccomp"
		case unix.SYS_IOCTL:
			return "ioctl"
		case unix.SYS_PERSONALITY:
			return "personality"
		case unix.SYS_SENDTO:
			if o.TrapUnixConnect {
				return "sendto"
			}
			return "allow"
		case unix.SYS_CONNECT, unix.SYS_SENDMSG, unix.SYS_SENDMMSG:
			if o.TrapUnixConnect {
				// "deny": notified with a listener, refused without one.
				return "deny"
			}
			return "allow"
		}
	}
	// Refused, and every number no one has classified.
	return "deny"
}

// segments covers every 32-bit number: the table's up to maxSyscall, then
// refused up to the x32 bit, then ENOSYS (x32 calls share
// AUDIT_ARCH_X86_64 and would otherwise slip past a table of x86_64
// numbers).
func segments(o Options) []segment {
	var segs []segment
	add := func(start uint32, leaf string) {
		if len(segs) == 0 || segs[len(segs)-1].leaf != leaf {
			segs = append(segs, segment{start, leaf})
		}
	}
	for nr := uint32(0); nr <= maxSyscall; nr++ {
		add(nr, leafOf(nr, o))
	}
	add(maxSyscall+1, "deny")
	add(x32SyscallBit, "nosys")
	return segs
}

// tree emits a binary search over segs, on the number already loaded:
// about log2(len(segs)) comparisons for any call. A leaf that is a
// return is emitted in place; a block is reached by an unconditional jump.
func (a *asm) tree(segs []segment, rets map[string]uint32) {
	if len(segs) == 1 {
		if k, ok := rets[segs[0].leaf]; ok {
			a.stmt(retK, k)
		} else {
			a.goTo(segs[0].leaf)
		}
		return
	}
	mid := len(segs) / 2
	right := a.newLabel()
	a.jump(jgeK, segs[mid].start, right, "")
	a.tree(segs[:mid], rets)
	a.label(right)
	a.tree(segs[mid:], rets)
}

// Program returns the seccomp filter. It is the same for every agent of a
// mode: what an agent may do is decided by the supervisor (and, for
// static reads, the floor), not compiled in.
func Program(o Options) []unix.SockFilter {
	// With a listener, refusals go to the supervisor, which refuses and
	// records them (refuse.go, process.go); without one the filter
	// refuses, and the file calls a supervisor would decide are left to
	// the floor (allowed: a notification with no listener would fail
	// every open with ENOSYS).
	deny, notify := uint32(retNotify), uint32(retNotify)
	if o.NoListener {
		deny, notify = retDeny, retAllow
	}
	rets := map[string]uint32{"allow": retAllow, "notify": notify, "deny": deny, "proc": deny, "nosys": retNosys}

	a := &asm{labels: map[string]int{}}
	a.stmt(ldAbsW, offArch)
	a.jump(jeqK, auditArchX8664, "x86_64", "")
	a.stmt(retK, retKill)
	a.label("x86_64")
	a.stmt(ldAbsW, offNr)
	a.tree(segments(o), rets)

	if o.TrapUnixConnect {
		// A pointer is 64 bits: both halves must be zero for NULL.
		a.label("sendto")
		a.stmt(ldAbsW, argLow(4))
		a.jump(jeqK, 0, "", "deny")
		a.stmt(ldAbsW, argLow(4)+4)
		a.jump(jeqK, 0, "allow", "deny")
	}

	a.label("clone")
	a.stmt(ldAbsW, argLow(0))
	a.jump(jsetK, cloneNamespaces, "deny", "allow")

	a.label("unshare")
	a.stmt(ldAbsW, argLow(0))
	a.jump(jsetK, unshareNamespaces, "deny", "allow")

	// socket families are an allowlist: Unix, inet (not raw) and route
	// netlink. Every other family (vsock, alg, tipc, rds, bluetooth,
	// packet…) reaches kernel code no agent needs.
	a.label("socket")
	a.stmt(ldAbsW, argLow(0))
	a.jump(jeqK, unix.AF_UNIX, "allow", "")
	a.jump(jeqK, unix.AF_NETLINK, "netlink", "")
	a.jump(jeqK, unix.AF_INET, "inet", "")
	a.jump(jeqK, unix.AF_INET6, "inet", "deny")
	a.label("inet")
	a.stmt(ldAbsW, argLow(1))
	a.stmt(andK, 0xf) // SOCK_TYPE_MASK: drop SOCK_NONBLOCK, SOCK_CLOEXEC
	a.jump(jeqK, unix.SOCK_RAW, "deny", "")
	a.jump(jeqK, unix.SOCK_PACKET, "deny", "allow")

	// socketpair exists for Unix sockets (and tipc, refused above).
	a.label("socketpair")
	a.stmt(ldAbsW, argLow(0))
	a.jump(jeqK, unix.AF_UNIX, "allow", "deny")

	// seccomp: no filter of the agent's may have a listener. The newest
	// filter's USER_NOTIF wins, so an agent holding a listener of its
	// own could answer CONTINUE to what Coconut's filter hands over, once
	// Coconut's supervisor is gone (or before it answers). Filters
	// without a listener can only be stricter than this one.
	a.label("seccomp")
	a.stmt(ldAbsW, argLow(1))
	a.jump(jsetK, seccompNewListener, "deny", "allow")

	// ioctl is hot: a few compares on the command (unsigned int, the
	// low half), and the refused ones change a file's attributes through
	// a descriptor opened for reading (or inject terminal input).
	a.label("ioctl")
	a.stmt(ldAbsW, argLow(1))
	for i, cmd := range refusedIoctls {
		if i == len(refusedIoctls)-1 {
			a.jump(jeqK, cmd, "deny", "allow")
		} else {
			a.jump(jeqK, cmd, "deny", "")
		}
	}

	a.label("netlink")
	a.stmt(ldAbsW, argLow(2))
	a.jump(jeqK, unix.NETLINK_ROUTE, "allow", "deny")

	a.label("personality")
	a.stmt(ldAbsW, argLow(0))
	a.jump(jeqK, 0, "allow", "")
	a.jump(jeqK, 0xffffffff, "allow", "deny")

	// Process calls (process.go): the caller's own process passes here
	// (pid 0; the kernel reads the int's low half); any other target,
	// process group or uid is the supervisor's.
	a.label("pid0proc")
	a.stmt(ldAbsW, argLow(0))
	a.jump(jeqK, 0, "allow", "proc")
	a.label("prioproc")
	a.stmt(ldAbsW, argLow(0))
	a.jump(jeqK, prioProcess, "", "proc")
	a.stmt(ldAbsW, argLow(1))
	a.jump(jeqK, 0, "allow", "proc")
	a.label("ioprioproc")
	a.stmt(ldAbsW, argLow(0))
	a.jump(jeqK, ioprioWhoProcess, "", "proc")
	a.stmt(ldAbsW, argLow(1))
	a.jump(jeqK, 0, "allow", "proc")

	if o.Static {
		a.label("openflags1")
		a.stmt(ldAbsW, argLow(1))
		a.jump(jsetK, writeOpenFlags, "notify", "allow")
		a.label("openflags2")
		a.stmt(ldAbsW, argLow(2))
		a.jump(jsetK, writeOpenFlags, "notify", "allow")
	}

	for _, r := range []string{"allow", "deny", "proc", "notify", "nosys"} {
		a.label(r)
		a.stmt(retK, rets[r])
	}
	return a.resolve()
}
