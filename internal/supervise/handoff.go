package supervise

import (
	"encoding/binary"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// whereSize is the handoff message of a TrapUnixConnect filter: 'p', the
// trampoline's pid and the listener's fd number (little endian).
const whereSize = 9

// sendWhere tells the supervisor where the listener is. write is not a
// call any filter traps.
func sendWhere(conn *os.File, listener int) error {
	var b [whereSize]byte
	b[0] = 'p'
	binary.LittleEndian.PutUint32(b[1:], uint32(os.Getpid()))
	binary.LittleEndian.PutUint32(b[5:], uint32(listener))
	n, err := unix.Write(int(conn.Fd()), b[:])
	if err == nil && n != len(b) {
		err = fmt.Errorf("short write of %d bytes", n)
	}
	return err
}

// takeListener copies the listener out of the trampoline that sent b
// (pidfd_getfd: the daemon is root, the trampoline waits for our
// acknowledgement with the listener open). The copy must be a seccomp
// listener, or it is refused.
func takeListener(b []byte) (*os.File, error) {
	pid := int(int32(binary.LittleEndian.Uint32(b[1:])))
	fd := int(int32(binary.LittleEndian.Uint32(b[5:])))
	if pid <= 0 || fd < 0 {
		return nil, fmt.Errorf("%w: listener at pid %d fd %d", ErrHandoff, pid, fd)
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: pidfd_open %d: %w", ErrHandoff, pid, err)
	}
	defer unix.Close(pidfd)
	l, err := unix.PidfdGetfd(pidfd, fd, 0) // the copy is close-on-exec
	if err != nil {
		return nil, fmt.Errorf("%w: pidfd_getfd %d/%d: %w", ErrHandoff, pid, fd, err)
	}
	if !isListener(l) {
		unix.Close(l)
		return nil, ErrNotListener
	}
	return os.NewFile(uintptr(l), "seccomp-listener"), nil
}
