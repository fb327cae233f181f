package supervise

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// seccompData is struct seccomp_data.
type seccompData struct {
	Nr   int32
	Arch uint32
	IP   uint64
	Args [6]uint64
}

// seccompNotif is struct seccomp_notif. Pid is the calling thread's id in
// the supervisor's pid namespace.
type seccompNotif struct {
	ID    uint64
	Pid   uint32
	Flags uint32
	Data  seccompData
}

// seccompNotifResp is struct seccomp_notif_resp.
type seccompNotifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

// The layout is fixed by the kernel ABI; a mismatch would corrupt every
// answer, so it is checked at compile time.
var (
	_ [80 - unsafe.Sizeof(seccompNotif{})]byte
	_ [unsafe.Sizeof(seccompNotif{}) - 80]byte
	_ [24 - unsafe.Sizeof(seccompNotifResp{})]byte
	_ [unsafe.Sizeof(seccompNotifResp{}) - 24]byte
)

func ioctlPtr(fd int, req uint, p unsafe.Pointer) error {
	var e unix.Errno
	if req == unix.SECCOMP_IOCTL_NOTIF_RECV {
		_, _, e = unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(p))
	} else {
		// ID_VALID and SEND never block: skip the scheduler's hand-off.
		_, _, e = unix.RawSyscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(p))
	}
	if e != 0 {
		return e
	}
	return nil
}

// recv waits for the next notification. The kernel requires n zeroed.
func recv(fd int, n *seccompNotif) error {
	*n = seccompNotif{}
	return ioctlPtr(fd, unix.SECCOMP_IOCTL_NOTIF_RECV, unsafe.Pointer(n))
}

// idValid reports whether the notification is still pending: the calling
// thread has not been interrupted or died (and its pid not been reused)
// since it was received.
func idValid(fd int, id uint64) bool {
	return ioctlPtr(fd, unix.SECCOMP_IOCTL_NOTIF_ID_VALID, unsafe.Pointer(&id)) == nil
}

// send answers a notification: errno 0 means continue the call as made.
func send(fd int, id uint64, errno unix.Errno) error {
	r := seccompNotifResp{ID: id}
	if errno == 0 {
		r.Flags = unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE
	} else {
		r.Error = -int32(errno)
	}
	return ioctlPtr(fd, unix.SECCOMP_IOCTL_NOTIF_SEND, unsafe.Pointer(&r))
}

// orphaned reports whether no task uses the listener's filter any more.
func orphaned(fd int) bool {
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(p, 0)
	return err == nil && n == 1 && p[0].Revents&unix.POLLHUP != 0
}

// seccompIoctlNotifSetFlags is SECCOMP_IOCTL_NOTIF_SET_FLAGS,
// _IOW('!', 4, __u64), missing from x/sys.
const seccompIoctlNotifSetFlags = 0x40082104

// syncWakeUp asks the kernel (Linux 6.6+) to wake the supervisor on the
// calling task's CPU and switch to it at once, rather than leaving both
// to the scheduler: a notification and its answer then cost one switch
// each way. It is a hint; an older kernel's EINVAL is not an error.
func syncWakeUp(fd int) error {
	// The flag value is the argument itself, not a pointer to it.
	_, _, e := unix.RawSyscall(unix.SYS_IOCTL, uintptr(fd), seccompIoctlNotifSetFlags, unix.SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)
	if e != 0 {
		return e
	}
	return nil
}
