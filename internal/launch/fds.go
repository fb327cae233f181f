package launch

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// close_range(2) flags (linux/close_range.h); x/sys/unix does not name
// them.
const closeRangeCloexec = 1 << 2 // CLOSE_RANGE_CLOEXEC, Linux 5.11

// agentFDs are the descriptors the agent's program is meant to hold after
// exec, and nothing else: its standard input (/dev/null), output and error
// (its log), plus the measured memfds a script needs — the exec memfd of a
// "#!" program run directly (the kernel hands its interpreter
// /dev/fd/5) and the script memfd an interpreter reads (ScriptPath). The
// broker and the API are reached by address, not by an inherited socket.
func agentFDs(spec Spec) []int {
	keep := []int{0, 1, 2}
	if spec.KeepExecFD {
		keep = append(keep, fdExec)
	}
	if spec.HasScript {
		keep = append(keep, fdScript)
	}
	return keep
}

// closeAtExec marks every descriptor above 2 that is not in keep
// close-on-exec, so the exec that follows closes them all at once: the
// trampoline's own pipes and the supervisor socket, and whatever the
// process that started coconutd (or a test binary) left open, which would
// otherwise reach the agent through its number whatever its bundle.
//
// Marking rather than closing is what runc does before exec too
// (CloseExecFrom): the Go runtime's own descriptors (its netpoller) stay
// valid until the exec, nothing still used before it (the status pipe,
// the supervisor socket, the exec memfd) is pulled away, and the call
// can be made before the seccomp filter exists. Nothing after it opens a
// descriptor without O_CLOEXEC (Go never does; the seccomp listener is
// O_CLOEXEC by the kernel). CLOSE_RANGE_UNSHARE is of no use here: the
// trampoline does not share its descriptor table (os/exec forks without
// CLONE_FILES).
func closeAtExec(keep []int) error {
	keep = slices.Clone(keep)
	slices.Sort(keep)
	lo := uint(3)
	for _, k := range keep {
		if k < int(lo) {
			continue
		}
		if uint(k) > lo {
			if err := markRange(lo, uint(k)-1); err != nil {
				return err
			}
		}
		lo = uint(k) + 1
	}
	return markRange(lo, math.MaxUint32)
}

// markRange sets FD_CLOEXEC on [first, last] with close_range, or one by
// one from /proc/self/fd on kernels before 5.11.
func markRange(first, last uint) error {
	err := unix.CloseRange(first, last, closeRangeCloexec)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("close descriptors %d..%d at exec: %w", first, last, err)
	}
	ents, rerr := os.ReadDir("/proc/self/fd")
	if rerr != nil {
		return fmt.Errorf("close descriptors at exec: close_range: %v; list /proc/self/fd: %w", err, rerr)
	}
	for _, ent := range ents {
		fd, perr := strconv.Atoi(ent.Name())
		if perr != nil || fd < 0 || uint(fd) < first || uint(fd) > last {
			continue
		}
		// EBADF: the directory ReadDir read, closed since.
		if _, ferr := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); ferr != nil && !errors.Is(ferr, unix.EBADF) {
			return fmt.Errorf("close descriptor %d at exec: %w", fd, ferr)
		}
	}
	return nil
}
