package supervise

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ack is the one byte the supervisor sends once it serves the listener.
const ack = 'k'

// Install loads the filter chosen by o on the calling OS thread and hands the listener
// to the supervisor over conn, one end of a Unix socket pair whose other end
// the supervisor passes to Start. It returns once the supervisor has
// acknowledged, so the caller's exec (itself trapped) will be answered.
//
// The caller must hold runtime.LockOSThread and exec from this thread: the
// filter is installed without TSYNC, on this thread only, and applies to
// everything it execs and forks. Install sets no_new_privs. On error the
// thread may already be filtered; the caller must not exec then.
func Install(conn *os.File, o Options) error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("%w: no_new_privs: %w", ErrInstall, err)
	}
	prog := Program(o)
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	r, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_NEW_LISTENER, uintptr(unsafe.Pointer(&fprog)))
	if e != 0 {
		return fmt.Errorf("%w: seccomp: %w", ErrInstall, e)
	}
	listener := int(r)
	var err error
	if o.TrapUnixConnect {
		// This filter traps sendmsg, so SCM_RIGHTS would wait on the very
		// listener it carries: say where the listener is instead, and the
		// supervisor copies it with pidfd_getfd (Receive). Ours is closed
		// on return, after the acknowledgement: the agent never holds it.
		defer unix.Close(listener)
		err = sendWhere(conn, listener)
	} else {
		err = unix.Sendmsg(int(conn.Fd()), []byte{'l'}, unix.UnixRights(listener), nil, 0)
		// Close our copy whatever happened: the agent must never hold it.
		unix.Close(listener)
	}
	if err != nil {
		return fmt.Errorf("%w: send: %w", ErrHandoff, err)
	}
	var b [1]byte
	n, err := conn.Read(b[:])
	if err != nil || n != 1 || b[0] != ack {
		return fmt.Errorf("%w: no acknowledgement from the supervisor (%v)", ErrHandoff, err)
	}
	return nil
}

// InstallPlain loads the filter without a listener, for an agent no
// supervisor serves: mount, bpf, ptrace, user namespaces, raw sockets, the
// rest of the refused calls, unknown numbers and process calls on any
// target but the caller's pid 0 fail with ECAPABILITY (unaudited), and
// opens and execs are left to the Landlock floor. Same thread rules as
// Install.
func InstallPlain(o Options) error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("%w: no_new_privs: %w", ErrInstall, err)
	}
	o.NoListener = true
	prog := Program(o)
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if _, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog))); e != 0 {
		return fmt.Errorf("%w: seccomp: %w", ErrInstall, e)
	}
	return nil
}

// Receive takes the listener sent by Install from conn. It refuses anything
// but exactly one descriptor that is a seccomp notification listener.
func Receive(conn *os.File) (*os.File, error) {
	buf := make([]byte, whereSize)
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, flags, _, err := unix.Recvmsg(int(conn.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("%w: receive: %w", ErrHandoff, err)
	}
	fds, perr := parseRights(oob[:oobn])
	if n > 0 && buf[0] == 'p' {
		closeAll(fds)
		if perr != nil || len(fds) != 0 || n != whereSize {
			return nil, fmt.Errorf("%w: a listener's whereabouts of %d bytes with %d descriptors", ErrHandoff, n, len(fds))
		}
		return takeListener(buf)
	}
	for _, fd := range fds[min(len(fds), 1):] {
		unix.Close(fd)
	}
	switch {
	case perr != nil:
		closeAll(fds[:min(len(fds), 1)])
		return nil, fmt.Errorf("%w: %w", ErrHandoff, perr)
	case flags&unix.MSG_CTRUNC != 0 || len(fds) != 1 || n != 1:
		closeAll(fds[:min(len(fds), 1)])
		return nil, fmt.Errorf("%w: want one descriptor, got %d (truncated %v)", ErrHandoff, len(fds), flags&unix.MSG_CTRUNC != 0)
	}
	if !isListener(fds[0]) {
		unix.Close(fds[0])
		return nil, ErrNotListener
	}
	return os.NewFile(uintptr(fds[0]), "seccomp-listener"), nil
}

// Ack tells the trampoline the supervisor serves its listener.
func Ack(conn *os.File) error {
	if _, err := conn.Write([]byte{ack}); err != nil {
		return fmt.Errorf("%w: acknowledge: %w", ErrHandoff, err)
	}
	return nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// parseRights returns every descriptor in SCM_RIGHTS messages of oob; the
// caller closes them. Other control messages are an error.
func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("control message: %w", err)
	}
	var fds []int
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_RIGHTS {
			return fds, fmt.Errorf("unexpected control message %d/%d", m.Header.Level, m.Header.Type)
		}
		r, err := unix.ParseUnixRights(&m)
		if err != nil {
			return fds, fmt.Errorf("rights: %w", err)
		}
		fds = append(fds, r...)
	}
	return fds, nil
}

// isListener checks the descriptor is the anonymous inode of a seccomp
// listener, so a confused or hostile peer cannot make Serve ioctl a file.
func isListener(fd int) bool {
	b := make([]byte, 64)
	n, err := unix.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd), b)
	return err == nil && string(b[:n]) == "anon_inode:seccomp notify"
}
