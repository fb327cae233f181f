package supervise

import (
	"bufio"
	"encoding/binary"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Attribute changes (mode, owner, times, extended attributes) have no
// Landlock right: nothing under the supervisor would catch a call whose
// path another thread rewrote between the decision and the kernel's own
// walk. So the supervisor never answers them CONTINUE: it performs them
// itself, on the O_PATH descriptor of the object it resolved and decided
// on, on a thread that holds the calling thread's fsuid, fsgid,
// supplementary groups and effective capabilities (so the kernel's own
// permission checks apply, as for the agent), and returns the result.
// docs/security.md, "Attribute changes: emulated, not continued".

// emulatedCalls are the trapped calls the supervisor performs itself.
var emulatedCalls = map[int32]bool{
	unix.SYS_CHMOD: true, unix.SYS_FCHMODAT: true, unix.SYS_FCHMODAT2: true,
	unix.SYS_CHOWN: true, unix.SYS_LCHOWN: true, unix.SYS_FCHOWNAT: true,
	unix.SYS_UTIME: true, unix.SYS_UTIMES: true, unix.SYS_UTIMENSAT: true, unix.SYS_FUTIMESAT: true,
	unix.SYS_SETXATTR: true, unix.SYS_LSETXATTR: true, unix.SYS_SETXATTRAT: true,
	unix.SYS_REMOVEXATTR: true, unix.SYS_LREMOVEXATTR: true, unix.SYS_REMOVEXATTRAT: true,
	unix.SYS_FCHMOD: true, unix.SYS_FCHOWN: true, unix.SYS_FSETXATTR: true, unix.SYS_FREMOVEXATTR: true,
}

// Limits of linux/limits.h and linux/xattr.h.
const (
	xattrNameMax  = 255
	xattrSizeMax  = 65536
	xattrArgsSize = 16 // struct xattr_args, first version
	atFlagsKnown  = atSymlinkNofollow | atEmptyPath
	xattrFlags    = unix.XATTR_CREATE | unix.XATTR_REPLACE
	oPathFlag     = unix.O_PATH
)

// attrCall is one attribute change to perform, with every argument
// already copied out of the agent's memory.
type attrCall struct {
	nr    int32
	fd    int  // O_PATH descriptor of the object decided on; owned
	link  bool // the object is a symlink (the call does not follow it)
	creds agentCreds

	mode     uint32
	uid, gid uint32
	times    *[2]unix.Timespec // nil: now, with NULL's permission rule
	name     string
	value    []byte
	flags    int
}

func (c *attrCall) close() {
	if c != nil && c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
}

// precheck returns the errno the kernel gives an emulated call before it
// looks at any path: flags it does not know, and the calls on a
// descriptor (fchmod…, and the NULL-path forms of utimensat and
// futimesat: futimens, futimes), which need one that is not O_PATH.
func precheck(tid int, d *seccompData) unix.Errno {
	a := d.Args
	switch d.Nr {
	case unix.SYS_FCHMODAT2, unix.SYS_FCHOWNAT, unix.SYS_UTIMENSAT, unix.SYS_SETXATTRAT, unix.SYS_REMOVEXATTRAT:
		flags := a[3]
		switch d.Nr {
		case unix.SYS_FCHOWNAT:
			flags = a[4]
		case unix.SYS_SETXATTRAT, unix.SYS_REMOVEXATTRAT:
			flags = a[2]
		}
		if flags&0xffffffff&^atFlagsKnown != 0 {
			return unix.EINVAL
		}
	}
	switch d.Nr {
	case unix.SYS_FCHMOD, unix.SYS_FCHOWN, unix.SYS_FSETXATTR, unix.SYS_FREMOVEXATTR:
		// fdget: no such descriptor, or an O_PATH one, is EBADF.
		if int32(a[0]) < 0 {
			return unix.EBADF
		}
		if fl, ok := fdFlags(tid, int32(a[0])); !ok || fl&oPathFlag != 0 {
			return unix.EBADF
		}
		return 0
	}
	if (d.Nr == unix.SYS_UTIMENSAT || d.Nr == unix.SYS_FUTIMESAT) && a[1] == 0 {
		switch {
		case d.Nr == unix.SYS_UTIMENSAT && uint32(a[3]) != 0:
			return unix.EINVAL
		case int32(a[0]) == unix.AT_FDCWD:
			return unix.EFAULT
		case int32(a[0]) < 0:
			return unix.EBADF
		}
		if fl, ok := fdFlags(tid, int32(a[0])); !ok || fl&oPathFlag != 0 {
			return unix.EBADF
		}
	}
	return 0
}

// emptyPathFD is the kernel's EBADF for setxattrat and removexattrat
// with AT_EMPTY_PATH and an empty path on an O_PATH descriptor: those act
// on the open file, which an O_PATH descriptor is not (the other *at
// calls accept it, and so does the emulation of these).
func emptyPathFD(tid int, d *seccompData, path string) unix.Errno {
	if (d.Nr != unix.SYS_SETXATTRAT && d.Nr != unix.SYS_REMOVEXATTRAT) || path != "" || d.Args[2]&atEmptyPath == 0 ||
		int32(d.Args[0]) == unix.AT_FDCWD {
		return 0
	}
	if fl, ok := fdFlags(tid, int32(d.Args[0])); !ok || fl&oPathFlag != 0 {
		return unix.EBADF
	}
	return 0
}

// fdFlags reads the open flags of the agent's descriptor fd.
func fdFlags(tid int, fd int32) (int, bool) {
	f, err := os.Open("/proc/" + strconv.Itoa(tid) + "/fdinfo/" + strconv.Itoa(int(fd)))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "flags:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			return int(n), err == nil
		}
	}
	return 0, false
}

// readCall copies the call's arguments out of the agent's memory, with the
// kernel's own checks, for the caller's credentials. The caller checks
// ID_VALID afterwards.
func (s *Server) readCall(n *seccompNotif, creds agentCreds) (*attrCall, unix.Errno) {
	c := &attrCall{nr: n.Data.Nr, fd: -1, creds: creds}
	if e := s.readArgs(int(n.Pid), &n.Data, c); e != 0 {
		return nil, e
	}
	return c, 0
}

// attach gives c the object decided on; c owns fd from here on.
func (c *attrCall) attach(fd int, obj object) unix.Errno {
	c.fd, c.link = fd, obj.mode&unix.S_IFMT == unix.S_IFLNK
	if fd < 0 {
		return unix.ENOENT
	}
	if c.link && isXattrCall(c.nr) {
		// No descriptor reaches a symlink's own extended attributes
		// (setxattrat with AT_EMPTY_PATH refuses O_PATH descriptors, and
		// /proc/self/fd/N names the magic link): refused, as a call the
		// supervisor cannot perform on the object it decided on. An agent
		// without capabilities could not set one anyway.
		return ECapability
	}
	return 0
}

func isXattrCall(nr int32) bool {
	switch nr {
	case unix.SYS_SETXATTR, unix.SYS_LSETXATTR, unix.SYS_SETXATTRAT, unix.SYS_FSETXATTR,
		unix.SYS_REMOVEXATTR, unix.SYS_LREMOVEXATTR, unix.SYS_REMOVEXATTRAT, unix.SYS_FREMOVEXATTR:
		return true
	}
	return false
}

// readArgs fills c from the registers and the agent's memory, with the
// kernel's own checks and errnos (EFAULT, EINVAL, ERANGE, E2BIG).
func (s *Server) readArgs(tid int, d *seccompData, c *attrCall) unix.Errno {
	a := d.Args
	switch d.Nr {
	case unix.SYS_CHMOD, unix.SYS_FCHMOD:
		c.mode = uint32(a[1])
	case unix.SYS_FCHMODAT, unix.SYS_FCHMODAT2:
		c.mode = uint32(a[2])
	case unix.SYS_CHOWN, unix.SYS_LCHOWN, unix.SYS_FCHOWN:
		c.uid, c.gid = uint32(a[1]), uint32(a[2])
	case unix.SYS_FCHOWNAT:
		c.uid, c.gid = uint32(a[2]), uint32(a[3])
	case unix.SYS_UTIME:
		return s.readUtimbuf(tid, a[1], c)
	case unix.SYS_UTIMES:
		return s.readTimevals(tid, a[1], c)
	case unix.SYS_FUTIMESAT:
		return s.readTimevals(tid, a[2], c)
	case unix.SYS_UTIMENSAT:
		if a[2] == 0 {
			return 0
		}
		b := make([]byte, 32)
		if e := s.readFull(tid, b, a[2]); e != 0 {
			return e
		}
		c.times = &[2]unix.Timespec{
			{Sec: int64(binary.LittleEndian.Uint64(b[0:])), Nsec: int64(binary.LittleEndian.Uint64(b[8:]))},
			{Sec: int64(binary.LittleEndian.Uint64(b[16:])), Nsec: int64(binary.LittleEndian.Uint64(b[24:]))},
		}
		// Their range is checked by the call itself, after the walk, as
		// the kernel does.
	case unix.SYS_SETXATTR, unix.SYS_LSETXATTR, unix.SYS_FSETXATTR:
		if e := s.readXattrName(tid, a[1], c); e != 0 {
			return e
		}
		return s.readXattrValue(tid, a[2], a[3], a[4], c)
	case unix.SYS_SETXATTRAT:
		if e := s.readXattrName(tid, a[3], c); e != 0 {
			return e
		}
		usize := a[5]
		switch {
		case usize < xattrArgsSize:
			return unix.EINVAL
		case usize > pageSize:
			return unix.E2BIG
		}
		b := make([]byte, usize)
		if e := s.readFull(tid, b, a[4]); e != 0 {
			return e
		}
		for _, x := range b[xattrArgsSize:] {
			if x != 0 {
				return unix.E2BIG // copy_struct_from_user: a later version's field we do not know
			}
		}
		return s.readXattrValue(tid, binary.LittleEndian.Uint64(b[0:]),
			uint64(binary.LittleEndian.Uint32(b[8:])), uint64(binary.LittleEndian.Uint32(b[12:])), c)
	case unix.SYS_REMOVEXATTR, unix.SYS_LREMOVEXATTR, unix.SYS_FREMOVEXATTR:
		return s.readXattrName(tid, a[1], c)
	case unix.SYS_REMOVEXATTRAT:
		return s.readXattrName(tid, a[3], c)
	default:
		return ECapability // not an emulated call: never reached
	}
	return 0
}

func (s *Server) readFull(tid int, b []byte, addr uint64) unix.Errno {
	if addr == 0 {
		return unix.EFAULT
	}
	if n, err := s.mem.read(tid, b, addr); err != nil || n != len(b) {
		return unix.EFAULT
	}
	return 0
}

// readUtimbuf reads struct utimbuf {actime, modtime} (whole seconds).
func (s *Server) readUtimbuf(tid int, addr uint64, c *attrCall) unix.Errno {
	if addr == 0 {
		return 0
	}
	b := make([]byte, 16)
	if e := s.readFull(tid, b, addr); e != 0 {
		return e
	}
	c.times = &[2]unix.Timespec{
		{Sec: int64(binary.LittleEndian.Uint64(b[0:]))},
		{Sec: int64(binary.LittleEndian.Uint64(b[8:]))},
	}
	return 0
}

// readTimevals reads struct timeval[2], refusing microseconds out of
// range as utimes does before converting them.
func (s *Server) readTimevals(tid int, addr uint64, c *attrCall) unix.Errno {
	if addr == 0 {
		return 0
	}
	b := make([]byte, 32)
	if e := s.readFull(tid, b, addr); e != 0 {
		return e
	}
	var ts [2]unix.Timespec
	for i := range ts {
		sec, usec := int64(binary.LittleEndian.Uint64(b[16*i:])), int64(binary.LittleEndian.Uint64(b[16*i+8:]))
		if usec < 0 || usec >= 1000000 {
			return unix.EINVAL
		}
		ts[i] = unix.Timespec{Sec: sec, Nsec: usec * 1000}
	}
	c.times = &ts
	return 0
}

func (s *Server) readXattrName(tid int, addr uint64, c *attrCall) unix.Errno {
	if addr == 0 {
		return unix.EFAULT
	}
	name, e := s.mem.readString(tid, addr)
	switch {
	case e == unix.ENAMETOOLONG:
		return unix.ERANGE
	case e != 0:
		return e
	case name == "" || len(name) > xattrNameMax:
		return unix.ERANGE
	}
	c.name = name
	return 0
}

func (s *Server) readXattrValue(tid int, addr, size, flags uint64, c *attrCall) unix.Errno {
	if flags&^xattrFlags != 0 {
		return unix.EINVAL
	}
	c.flags = int(flags)
	if size > xattrSizeMax {
		return unix.E2BIG
	}
	c.value = make([]byte, size)
	if size == 0 {
		return 0
	}
	return s.readFull(tid, c.value, addr)
}

// perform makes the call as the caller and returns its errno. It runs
// after the row was recorded.
func (s *Server) perform(c *attrCall) unix.Errno { return s.asAgent(c.creds, c.do) }

// asAgent runs do with the caller's credentials (asAgent in
// emulate_creds.go). A thread that could not be given back its own
// credentials ends the server (fatal): Serve returns, and its goroutine
// and thread end with it.
func (s *Server) asAgent(c agentCreds, do func() unix.Errno) unix.Errno {
	e, err := asAgent(c, do)
	if err != nil {
		s.fatal = err
	}
	return e
}

// do makes the call on c.fd itself (AT_EMPTY_PATH on the O_PATH
// descriptor), never on a name: the object is the one decided on.
func (c *attrCall) do() unix.Errno {
	var nul [1]byte // ""
	empty := unsafe.Pointer(&nul[0])
	var e unix.Errno
	switch c.nr {
	case unix.SYS_CHMOD, unix.SYS_FCHMODAT, unix.SYS_FCHMODAT2, unix.SYS_FCHMOD:
		// fchmodat2 (Linux 6.6) is the only mode call that takes
		// AT_EMPTY_PATH; on a symlink it fails as the kernel's own does.
		_, _, e = unix.Syscall6(unix.SYS_FCHMODAT2, uintptr(c.fd), uintptr(empty), uintptr(c.mode), atEmptyPath, 0, 0)
	case unix.SYS_CHOWN, unix.SYS_LCHOWN, unix.SYS_FCHOWNAT, unix.SYS_FCHOWN:
		_, _, e = unix.Syscall6(unix.SYS_FCHOWNAT, uintptr(c.fd), uintptr(empty), uintptr(c.uid), uintptr(c.gid), atEmptyPath, 0)
	case unix.SYS_UTIME, unix.SYS_UTIMES, unix.SYS_UTIMENSAT, unix.SYS_FUTIMESAT:
		var tp unsafe.Pointer
		if c.times != nil {
			tp = unsafe.Pointer(&c.times[0])
		}
		_, _, e = unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(c.fd), uintptr(empty), uintptr(tp), atEmptyPath, 0, 0)
	case unix.SYS_SETXATTR, unix.SYS_LSETXATTR, unix.SYS_SETXATTRAT, unix.SYS_FSETXATTR:
		// setxattrat refuses O_PATH descriptors: the magic link reaches
		// the same inode (never a symlink here: attach refused those).
		return errnoOrZero(unix.Setxattr(c.procPath(), c.name, c.value, c.flags))
	case unix.SYS_REMOVEXATTR, unix.SYS_LREMOVEXATTR, unix.SYS_REMOVEXATTRAT, unix.SYS_FREMOVEXATTR:
		return errnoOrZero(unix.Removexattr(c.procPath(), c.name))
	default:
		return ECapability
	}
	return e
}

func (c *attrCall) procPath() string { return "/proc/self/fd/" + strconv.Itoa(c.fd) }

func errnoOrZero(err error) unix.Errno {
	if err == nil {
		return 0
	}
	return errnoOf(err)
}

// sendReturn answers a notification with the result of a call the
// supervisor performed: the agent's call returns 0, or fails with errno.
func sendReturn(fd int, id uint64, errno unix.Errno) error {
	r := seccompNotifResp{ID: id, Error: -int32(errno)}
	return ioctlPtr(fd, unix.SECCOMP_IOCTL_NOTIF_SEND, unsafe.Pointer(&r))
}
