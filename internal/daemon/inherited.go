package daemon

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"

	"golang.org/x/sys/unix"
)

// CloseInherited closes every descriptor above 2 that the process which
// started coconutd left open — a shell's redirection, a pipe, a key file a
// script held on fd 9 — so none of it reaches the agents (issue 11), the
// listener holder or anything else coconutd starts. Call it first in main,
// after launch.Main.
//
// What the Go runtime and package initialisation hold at main is O_CLOEXEC
// (seen with strace on Go 1.26: the runtime keeps
// /sys/fs/cgroup/cpu/cpu.cfs_{quota,period}_us open for GOMAXPROCS, and
// the netpoller's epoll exists; the few plain opens, such as
// hpage_pmd_size, are closed at once), and an inherited descriptor can
// never be: the exec that started this process closed those. So the rule
// is exact, not a guess at numbers: at this point, a descriptor without
// FD_CLOEXEC is inherited. Socket activation's descriptors (LISTEN_FDS,
// 3..3+N-1, when LISTEN_PID is this process) are kept and marked
// close-on-exec, as sd_listen_fds leaves them; NOTIFY_SOCKET is a path and
// needs none. It returns the descriptors it closed, for the log.
func CloseInherited() ([]int, error) {
	return closeInherited(listenFDs(os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS"), os.Getpid()))
}

// listenFDs is how many descriptors from 3 up systemd passed: LISTEN_FDS
// when LISTEN_PID names pid, otherwise none (they were meant for another
// process, and are closed like any inherited descriptor).
func listenFDs(listenPID, listenFDs string, pid int) int {
	if p, err := strconv.Atoi(listenPID); err != nil || p != pid {
		return 0
	}
	n, err := strconv.Atoi(listenFDs)
	if err != nil || n < 0 || n > 1<<16 {
		return 0
	}
	return n
}

func closeInherited(listen int) ([]int, error) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		// Fail closed: without the list, inherited descriptors would go
		// on to every agent.
		return nil, fmt.Errorf("list inherited descriptors: %w", err)
	}
	var closed []int
	for _, ent := range ents {
		fd, err := strconv.Atoi(ent.Name())
		if err != nil || fd <= 2 {
			continue
		}
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if errors.Is(err, unix.EBADF) {
			continue // the directory ReadDir read, closed since
		}
		if err != nil {
			return closed, fmt.Errorf("descriptor %d: %w", fd, err)
		}
		switch {
		case fl&unix.FD_CLOEXEC != 0:
			// Opened by this process (the runtime, an init function).
		case fd < 3+listen:
			unix.CloseOnExec(fd)
		default:
			if err := unix.Close(fd); err != nil {
				return closed, fmt.Errorf("close inherited descriptor %d: %w", fd, err)
			}
			closed = append(closed, fd)
		}
	}
	sort.Ints(closed)
	return closed, nil
}
