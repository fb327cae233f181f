package supervise

import (
	"sync"

	"golang.org/x/sys/unix"
)

// operand is one path argument of a trapped call and what it needs.
type operand struct {
	dirfd  int32
	addr   uint64 // address of the path in the agent; 0 with nullOK: the dirfd itself
	nullOK bool
	opts   walkOpts
	access Access
	// readTrunc: an open for reading only that truncates (O_RDONLY|O_TRUNC),
	// which the floor covers only from Landlock ABI 3 (floorless).
	readTrunc bool
}

// Flags of the *at calls (linux/fcntl.h).
const (
	atSymlinkNofollow = unix.AT_SYMLINK_NOFOLLOW
	atSymlinkFollow   = unix.AT_SYMLINK_FOLLOW
	atEmptyPath       = unix.AT_EMPTY_PATH
	oTmpfile          = 0x400000 // __O_TMPFILE, without O_DIRECTORY
)

var syscallNames = map[int32]string{
	unix.SYS_OPEN: "open", unix.SYS_OPENAT: "openat", unix.SYS_OPENAT2: "openat2", unix.SYS_CREAT: "creat",
	unix.SYS_EXECVE: "execve", unix.SYS_EXECVEAT: "execveat",
	unix.SYS_RENAME: "rename", unix.SYS_RENAMEAT: "renameat", unix.SYS_RENAMEAT2: "renameat2",
	unix.SYS_LINK: "link", unix.SYS_LINKAT: "linkat", unix.SYS_SYMLINK: "symlink", unix.SYS_SYMLINKAT: "symlinkat",
	unix.SYS_UNLINK: "unlink", unix.SYS_UNLINKAT: "unlinkat", unix.SYS_RMDIR: "rmdir",
	unix.SYS_MKDIR: "mkdir", unix.SYS_MKDIRAT: "mkdirat", unix.SYS_MKNOD: "mknod", unix.SYS_MKNODAT: "mknodat",
	unix.SYS_TRUNCATE: "truncate", unix.SYS_CHMOD: "chmod", unix.SYS_FCHMODAT: "fchmodat", unix.SYS_FCHMODAT2: "fchmodat2",
	unix.SYS_CHOWN: "chown", unix.SYS_LCHOWN: "lchown", unix.SYS_FCHOWNAT: "fchownat",
	unix.SYS_UTIME: "utime", unix.SYS_UTIMES: "utimes", unix.SYS_UTIMENSAT: "utimensat", unix.SYS_FUTIMESAT: "futimesat",
	unix.SYS_SETXATTR: "setxattr", unix.SYS_LSETXATTR: "lsetxattr", unix.SYS_REMOVEXATTR: "removexattr",
	unix.SYS_LREMOVEXATTR: "lremovexattr", unix.SYS_SETXATTRAT: "setxattrat", unix.SYS_REMOVEXATTRAT: "removexattrat",
	unix.SYS_FCHMOD: "fchmod", unix.SYS_FCHOWN: "fchown", unix.SYS_FSETXATTR: "fsetxattr", unix.SYS_FREMOVEXATTR: "fremovexattr",
	// Options.TrapUnixConnect (unixsock.go)
	unix.SYS_CONNECT: "connect", unix.SYS_SENDTO: "sendto", unix.SYS_SENDMSG: "sendmsg", unix.SYS_SENDMMSG: "sendmmsg",
}

func syscallName(nr int32) string {
	if s, ok := syscallNames[nr]; ok {
		return s
	}
	return "syscall"
}

// openOperand turns open flags into what the call needs. pass is true for
// O_PATH, which gives no access to the contents and is not mediated.
func openOperand(dirfd int32, addr uint64, flags uint64) (op operand, pass bool) {
	if flags&unix.O_PATH != 0 {
		return operand{}, true
	}
	op = operand{dirfd: dirfd, addr: addr}
	switch flags & unix.O_ACCMODE {
	case unix.O_RDONLY:
		op.access = Read
	case unix.O_WRONLY:
		op.access = Write
	default: // O_RDWR, and 3, which Linux treats as read and write
		op.access = Read | Write
	}
	switch {
	case flags&oTmpfile != 0:
		// An unnamed file in the directory: a write there.
		op.access |= Write
		op.opts.follow = true
	case flags&unix.O_CREAT != 0:
		op.access |= Write
		op.opts.create = true
		// O_CREAT follows a dangling symlink and creates its target,
		// unless O_EXCL (then any symlink is EEXIST).
		op.opts.follow = flags&(unix.O_EXCL|unix.O_NOFOLLOW) == 0
	default:
		op.opts.follow = flags&unix.O_NOFOLLOW == 0
	}
	if flags&unix.O_TRUNC != 0 {
		op.access |= Write
		op.readTrunc = flags&unix.O_ACCMODE == unix.O_RDONLY
	}
	return op, false
}

func at(dirfd uint64, addr uint64, access Access, o walkOpts) operand {
	return operand{dirfd: int32(dirfd), addr: addr, access: access, opts: o}
}

func cwd(addr uint64, access Access, o walkOpts) operand {
	return operand{dirfd: unix.AT_FDCWD, addr: addr, access: access, opts: o}
}

// atFlags maps AT_SYMLINK_NOFOLLOW and AT_EMPTY_PATH to walk options.
func atFlags(flags uint64, followByDefault bool) walkOpts {
	o := walkOpts{follow: followByDefault, empty: flags&atEmptyPath != 0}
	if flags&atSymlinkNofollow != 0 {
		o.follow = false
	}
	return o
}

var (
	follow   = walkOpts{follow: true}
	nofollow = walkOpts{}
	create   = walkOpts{create: true}
)

// operands lists the path arguments of a trapped call. howAt reads an
// openat2 open_how. pass is true when the call needs no decision.
func operands(d *seccompData, howAt func(addr, size uint64) (openHow, unix.Errno)) (ops []operand, pass bool, errno unix.Errno) {
	a := d.Args
	switch d.Nr {
	case unix.SYS_OPEN:
		op, pass := openOperand(unix.AT_FDCWD, a[0], a[1]&0xffffffff)
		return []operand{op}, pass, 0
	case unix.SYS_OPENAT:
		op, pass := openOperand(int32(a[0]), a[1], a[2]&0xffffffff)
		return []operand{op}, pass, 0
	case unix.SYS_OPENAT2:
		how, e := howAt(a[2], a[3])
		if e != 0 {
			return nil, false, e
		}
		op, pass := openOperand(int32(a[0]), a[1], how.Flags)
		op.opts.inRoot = how.Resolve&unix.RESOLVE_IN_ROOT != 0
		return []operand{op}, pass, 0
	case unix.SYS_CREAT:
		op, _ := openOperand(unix.AT_FDCWD, a[0], unix.O_CREAT|unix.O_WRONLY|unix.O_TRUNC)
		return []operand{op}, false, 0
	case unix.SYS_EXECVE:
		return []operand{cwd(a[0], Exec, follow)}, false, 0
	case unix.SYS_EXECVEAT:
		return []operand{at(a[0], a[1], Exec, atFlags(a[4], true))}, false, 0
	case unix.SYS_RENAME:
		return []operand{cwd(a[0], Write, nofollow), cwd(a[1], Write, create)}, false, 0
	case unix.SYS_RENAMEAT, unix.SYS_RENAMEAT2:
		return []operand{at(a[0], a[1], Write, nofollow), at(a[2], a[3], Write, create)}, false, 0
	case unix.SYS_LINK:
		// The source needs fs.write too: linking a file elsewhere gives it
		// a second name, and the capabilities of that name.
		return []operand{cwd(a[0], Write, nofollow), cwd(a[1], Write, create)}, false, 0
	case unix.SYS_LINKAT:
		src := walkOpts{follow: a[4]&atSymlinkFollow != 0, empty: a[4]&atEmptyPath != 0}
		return []operand{at(a[0], a[1], Write, src), at(a[2], a[3], Write, create)}, false, 0
	case unix.SYS_SYMLINK:
		return []operand{cwd(a[1], Write, create)}, false, 0
	case unix.SYS_SYMLINKAT:
		return []operand{at(a[1], a[2], Write, create)}, false, 0
	case unix.SYS_UNLINK, unix.SYS_RMDIR:
		return []operand{cwd(a[0], Write, nofollow)}, false, 0
	case unix.SYS_UNLINKAT:
		return []operand{at(a[0], a[1], Write, nofollow)}, false, 0
	case unix.SYS_MKDIR, unix.SYS_MKNOD:
		return []operand{cwd(a[0], Write, create)}, false, 0
	case unix.SYS_MKDIRAT, unix.SYS_MKNODAT:
		return []operand{at(a[0], a[1], Write, create)}, false, 0
	case unix.SYS_TRUNCATE, unix.SYS_CHMOD, unix.SYS_CHOWN, unix.SYS_UTIME, unix.SYS_UTIMES,
		unix.SYS_SETXATTR, unix.SYS_REMOVEXATTR:
		return []operand{cwd(a[0], Write, follow)}, false, 0
	case unix.SYS_LCHOWN, unix.SYS_LSETXATTR, unix.SYS_LREMOVEXATTR:
		return []operand{cwd(a[0], Write, nofollow)}, false, 0
	case unix.SYS_FCHMODAT:
		return []operand{at(a[0], a[1], Write, follow)}, false, 0
	case unix.SYS_FCHMODAT2:
		return []operand{at(a[0], a[1], Write, atFlags(a[3], true))}, false, 0
	case unix.SYS_FCHOWNAT:
		return []operand{at(a[0], a[1], Write, atFlags(a[4], true))}, false, 0
	case unix.SYS_UTIMENSAT:
		op := at(a[0], a[1], Write, atFlags(a[3], true))
		op.nullOK = true // a NULL path is futimens on the dirfd
		return []operand{op}, false, 0
	case unix.SYS_FUTIMESAT:
		op := at(a[0], a[1], Write, follow)
		op.nullOK = true
		return []operand{op}, false, 0
	case unix.SYS_SETXATTRAT, unix.SYS_REMOVEXATTRAT:
		return []operand{at(a[0], a[1], Write, atFlags(a[2], true))}, false, 0
	case unix.SYS_FCHMOD, unix.SYS_FCHOWN, unix.SYS_FSETXATTR, unix.SYS_FREMOVEXATTR:
		// The file behind the descriptor, which needs fs.write as by path.
		return []operand{{dirfd: int32(a[0]), nullOK: true, access: Write}}, false, 0
	}
	// The filter notifies nothing else; an unknown call is refused.
	return nil, false, ECapability
}

// What the supervisor answers CONTINUE to is safe only where a Landlock
// floor right covers the same access: a path rewritten after the decision
// then reaches no more than the floor allows (docs/security.md, "What the
// supervisor continues and what it performs itself"):
//
//	open, openat, openat2, creat   READ_FILE, WRITE_FILE, READ_DIR, MAKE_REG (O_CREAT), TRUNCATE (O_TRUNC)
//	execve, execveat               EXECUTE
//	rename, renameat, renameat2    REMOVE_FILE/REMOVE_DIR, MAKE_*, REFER
//	link, linkat                   MAKE_*, REFER
//	symlink, symlinkat             MAKE_SYM
//	unlink, unlinkat, rmdir        REMOVE_FILE, REMOVE_DIR
//	mkdir, mkdirat                 MAKE_DIR
//	mknod, mknodat                 MAKE_REG, MAKE_FIFO, MAKE_SOCK (MAKE_CHAR, MAKE_BLOCK: never granted)
//	truncate                       TRUNCATE
//
// The attribute calls have no right and are performed by the supervisor
// (emulatedCalls), those on a descriptor (fchmod, fchown, fsetxattr,
// fremovexattr) included: the descriptor table is the agent's too, and
// another thread can put another file under the number after the check. TRUNCATE exists from Landlock ABI 3 only: below it,
// the calls that truncate without opening for writing are refused.

// landlockABI is the running kernel's Landlock ABI version (0: none).
var landlockABI = sync.OnceValue(func() int {
	v, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if e != 0 {
		return 0
	}
	return int(v)
})

// landlockTruncateABI is the first ABI with LANDLOCK_ACCESS_FS_TRUNCATE.
const landlockTruncateABI = 3

// floorless refuses a call that would be continued although the floor
// of this kernel does not cover it: truncate(2) and O_RDONLY|O_TRUNC
// opens before Landlock ABI 3.
func floorless(abi int, d *seccompData, ops []operand) unix.Errno {
	if abi >= landlockTruncateABI {
		return 0
	}
	if d.Nr == unix.SYS_TRUNCATE {
		return ECapability
	}
	for _, op := range ops {
		if op.readTrunc {
			return ECapability
		}
	}
	return 0
}
