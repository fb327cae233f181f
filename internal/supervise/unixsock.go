package supervise

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// UnixDecider is implemented by a Decider that knows its agents' Unix
// socket allowlists, for filters built with Options.TrapUnixConnect. A
// Decider without it gets every Unix address refused (fail closed).
type UnixDecider interface {
	// AllowUnix reports whether agent aid may connect or send to the Unix
	// socket addr, in kernel form: a pathname up to its first NUL, or an
	// abstract name with its leading NUL and exact length (as
	// capability.Cap.UnixSocket gives it and check_unix in
	// bpf/netguard.c compares it).
	AllowUnix(aid uint64, addr string) bool
}

// Sizes of the kernel's socket structures (x86_64).
const (
	sockaddrStorage = 128  // sizeof(struct sockaddr_storage): the most the kernel copies
	sockaddrUnMax   = 110  // sizeof(struct sockaddr_un): a longer AF_UNIX address is EINVAL
	msghdrSize      = 56   // struct msghdr: msg_name at 0, msg_namelen (int) at 8
	mmsghdrSize     = 64   // struct mmsghdr: a msghdr and an unsigned int, padded
	uioMaxIOV       = 1024 // UIO_MAXIOV: sendmmsg sends at most this many messages
)

// unixCalls are the calls a TrapUnixConnect filter hands over.
var unixCalls = map[int32]bool{unix.SYS_CONNECT: true, unix.SYS_SENDTO: true, unix.SYS_SENDMSG: true, unix.SYS_SENDMMSG: true}

// sockRef is one socket address a call names in the agent's memory.
type sockRef struct {
	addr   uint64
	length int64 // as the call gives it (an int): checked by addrRefs
}

// addrRefs finds the addresses a trapped call names, reading message
// headers through read (false: unreadable). It applies the kernel's own
// rules: a NULL msg_name or a zero length is no address; sendmsg clamps
// msg_namelen to sockaddr_storage and sendmmsg vlen to UIO_MAXIOV. A
// length the kernel refuses (negative; over sockaddr_storage for connect
// and sendto) is returned as is, for sockaddrVerdict to refuse.
func addrRefs(d *seccompData, read func(addr uint64, b []byte) bool) ([]sockRef, unix.Errno) {
	a := d.Args
	switch d.Nr {
	case unix.SYS_CONNECT:
		return oneRef(a[1], a[2]), 0
	case unix.SYS_SENDTO:
		if a[4] == 0 {
			return nil, 0
		}
		return oneRef(a[4], a[5]), 0
	case unix.SYS_SENDMSG:
		var b [msghdrSize]byte
		if !read(a[1], b[:]) {
			return nil, unix.EFAULT
		}
		return msgName(b[:]), 0
	case unix.SYS_SENDMMSG:
		vlen := uint32(a[2])
		if vlen > uioMaxIOV {
			vlen = uioMaxIOV
		}
		if vlen == 0 {
			return nil, 0
		}
		b := make([]byte, int(vlen)*mmsghdrSize)
		if !read(a[1], b) {
			return nil, unix.EFAULT
		}
		var out []sockRef
		for i := 0; i < int(vlen); i++ {
			out = append(out, msgName(b[i*mmsghdrSize:])...)
		}
		return out, 0
	}
	return nil, unix.ENOSYS
}

// oneRef is the address of connect or sendto; a zero length copies
// nothing (connect then fails, sendto uses the connected peer).
func oneRef(addr, length uint64) []sockRef {
	if n := int64(int32(length)); n != 0 {
		return []sockRef{{addr, n}}
	}
	return nil
}

// msgName is the address a struct msghdr names, if any.
func msgName(h []byte) []sockRef {
	name := binary.LittleEndian.Uint64(h[0:])
	n := int64(int32(binary.LittleEndian.Uint32(h[8:])))
	if name == 0 || n == 0 {
		return nil
	}
	if n > sockaddrStorage {
		n = sockaddrStorage // the kernel clamps, it does not refuse
	}
	return []sockRef{{name, n}}
}

// sockKind is what sockaddrVerdict makes of an address.
type sockKind int

const (
	sockOther sockKind = iota // no address, or not AF_UNIX: the inet guard's business
	sockUnix                  // an AF_UNIX address: key is its kernel form
	sockBad                   // a length no socket accepts
)

// sockaddrVerdict classifies raw, a socket address as the kernel copies
// it. An AF_UNIX address becomes its kernel form with check_unix's rules:
// a pathname up to its first NUL, an abstract name (leading NUL) with its
// exact length. The key may be empty (an unnamed address): no allowlist
// holds it.
func sockaddrVerdict(raw []byte) (sockKind, string) {
	switch {
	case len(raw) == 0:
		return sockOther, ""
	case len(raw) < 2 || len(raw) > sockaddrStorage:
		return sockBad, ""
	case binary.LittleEndian.Uint16(raw) != unix.AF_UNIX:
		return sockOther, ""
	case len(raw) > sockaddrUnMax:
		return sockBad, ""
	}
	path := raw[2:]
	if len(path) > 0 && path[0] == 0 {
		return sockUnix, string(path)
	}
	if i := strings.IndexByte(string(path), 0); i >= 0 {
		path = path[:i]
	}
	return sockUnix, string(path)
}

// unixObject is a Unix address as audit rows write it, like the
// network guard's: "unix /path" or "unix @name", with bytes that are not
// printable ASCII escaped.
func unixObject(key string) string {
	s := key
	if strings.HasPrefix(s, "\x00") {
		s = "@" + s[1:]
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			q := strconv.Quote(s)
			s = q[1 : len(q)-1]
			break
		}
	}
	return "unix " + s
}

// unixVerdict decides a call trapped by TrapUnixConnect: every address it
// names is read from the agent; one that is AF_UNIX and not in the
// agent's allowlist, or of a length no socket accepts, refuses the whole
// call (a sendmmsg is refused even if some of its messages are fine).
// Other addresses are the network guard's to decide: CONTINUE. The row of
// a refusal names the first address refused.
func (s *Server) unixVerdict(n *seccompNotif, ev *Event) (unix.Errno, bool) {
	tid := int(n.Pid)
	read := func(addr uint64, b []byte) bool {
		k, err := s.mem.read(tid, b, addr)
		return err == nil && k == len(b)
	}
	errno := s.unixDecide(&n.Data, read, ev)
	if !idValid(s.fd, n.ID) {
		return 0, false
	}
	if errno != ECapability {
		return errno, true // CONTINUE, or EFAULT as the kernel would answer
	}
	ev.Cap, ev.Errno = "net.connect", ECapability
	s.record(ev) // an error changes nothing: the call is refused anyway
	return ECapability, true
}

// unixDecide is unixVerdict's decision; on ECapability ev.Object names
// what was refused.
func (s *Server) unixDecide(d *seccompData, read func(addr uint64, b []byte) bool, ev *Event) unix.Errno {
	refs, e := addrRefs(d, read)
	if e != 0 {
		return e
	}
	ud, _ := s.d.(UnixDecider)
	var raw [sockaddrStorage]byte
	for _, r := range refs {
		if r.length < 0 || r.length > sockaddrStorage {
			ev.Object = fmt.Sprintf("sockaddr length %d", r.length)
			return ECapability
		}
		b := raw[:r.length]
		if !read(r.addr, b) {
			return unix.EFAULT
		}
		kind, key := sockaddrVerdict(b)
		switch kind {
		case sockBad:
			ev.Object = fmt.Sprintf("sockaddr length %d", r.length)
			return ECapability
		case sockUnix:
			if key == "" || ud == nil || !ud.AllowUnix(s.agent.AID, key) {
				ev.Object = unixObject(key)
				return ECapability
			}
		}
	}
	return 0
}
