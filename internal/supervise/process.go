package supervise

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Calls that act on another process's resources: its limits, priority,
// scheduling, memory, descriptors. The kernel lets a process do most of
// these to any process of its uid, and Landlock scopes only ptrace-like
// access and signals, so prlimit64 or setpriority from an agent reached
// the user's own shell. The filter passes the caller's own process (pid
// 0) and hands every other target to the supervisor, which allows a
// target only inside the agent: its own thread group, or its own cgroup
// (sameAgent). Anything else is ECAPABILITY with a "sys.process" row.
//
// Not here: kill, tkill, tgkill and pidfd_send_signal, which the Go
// runtime and process managers make constantly; the floor's signal
// scoping refuses them outside the agent's Landlock domain (EPERM).

// targetShape says where a process call names its target.
type targetShape uint8

const (
	pidArg0   targetShape = iota // argument 0 is a pid; 0 is the caller
	prioWho                      // getpriority/setpriority(which, who): PRIO_PROCESS only
	ioprioWho                    // ioprio_get/ioprio_set(which, who): IOPRIO_WHO_PROCESS only
	twoPids                      // arguments 0 and 1 are pids, never the caller by 0
	pidfdArg0                    // argument 0 is a pidfd in the caller's table
)

// processCall is one call of the family.
type processCall struct {
	name  string
	shape targetShape
}

var processCalls = map[int32]processCall{
	unix.SYS_PRLIMIT64:             {"prlimit64", pidArg0},
	unix.SYS_SETPRIORITY:           {"setpriority", prioWho},
	unix.SYS_GETPRIORITY:           {"getpriority", prioWho},
	unix.SYS_SCHED_SETPARAM:        {"sched_setparam", pidArg0},
	unix.SYS_SCHED_GETPARAM:        {"sched_getparam", pidArg0},
	unix.SYS_SCHED_SETSCHEDULER:    {"sched_setscheduler", pidArg0},
	unix.SYS_SCHED_GETSCHEDULER:    {"sched_getscheduler", pidArg0},
	unix.SYS_SCHED_RR_GET_INTERVAL: {"sched_rr_get_interval", pidArg0},
	unix.SYS_SCHED_SETAFFINITY:     {"sched_setaffinity", pidArg0},
	unix.SYS_SCHED_GETAFFINITY:     {"sched_getaffinity", pidArg0},
	unix.SYS_SCHED_SETATTR:         {"sched_setattr", pidArg0},
	unix.SYS_SCHED_GETATTR:         {"sched_getattr", pidArg0},
	unix.SYS_IOPRIO_SET:            {"ioprio_set", ioprioWho},
	unix.SYS_IOPRIO_GET:            {"ioprio_get", ioprioWho},
	unix.SYS_MIGRATE_PAGES:         {"migrate_pages", pidArg0},
	unix.SYS_MOVE_PAGES:            {"move_pages", pidArg0},
	unix.SYS_GET_ROBUST_LIST:       {"get_robust_list", pidArg0},
	// pid 0 names no process for these: the kernel answers ESRCH.
	unix.SYS_PROCESS_VM_READV:  {"process_vm_readv", pidArg0},
	unix.SYS_PROCESS_VM_WRITEV: {"process_vm_writev", pidArg0},
	unix.SYS_RT_SIGQUEUEINFO:   {"rt_sigqueueinfo", pidArg0},
	unix.SYS_RT_TGSIGQUEUEINFO: {"rt_tgsigqueueinfo", twoPids},
	unix.SYS_KCMP:              {"kcmp", twoPids},
	unix.SYS_PROCESS_MADVISE:   {"process_madvise", pidfdArg0},
	unix.SYS_PROCESS_MRELEASE:  {"process_mrelease", pidfdArg0},
	unix.SYS_PIDFD_GETFD:       {"pidfd_getfd", pidfdArg0},
}

func processNumbers() []uint32 {
	nrs := make([]uint32, 0, len(processCalls))
	for nr := range processCalls {
		nrs = append(nrs, uint32(nr))
	}
	return nrs
}

// processCap is the capability a cross-process call would need; no bundle
// holds it.
const processCap = "sys.process"

// Which values of getpriority/setpriority and ioprio_get/ioprio_set.
const (
	prioProcess      = 0 // PRIO_PROCESS
	ioprioWhoProcess = 1 // IOPRIO_WHO_PROCESS
)

// processVerdict answers a process call: CONTINUE when every target is
// inside the agent, ECAPABILITY and a row otherwise. A call the agent
// makes on itself leaves no row, like getpid.
func (s *Server) processVerdict(n *seccompNotif, ev *Event) (unix.Errno, bool) {
	call := processCalls[n.Data.Nr]
	errno, object := decideProcess(int(n.Pid), call, &n.Data)
	if !idValid(s.fd, n.ID) {
		return 0, false
	}
	if errno != ECapability {
		return errno, true
	}
	ev.Syscall, ev.Cap, ev.Object, ev.Errno = call.name, processCap, object, ECapability
	s.record(ev) // an error changes nothing: the call is refused anyway
	return ECapability, true
}

// decideProcess is processVerdict's decision, and the row's object.
func decideProcess(tid int, call processCall, d *seccompData) (unix.Errno, string) {
	a := d.Args
	var pids []int
	object := call.name
	switch call.shape {
	case pidArg0:
		pids = []int{int(int32(a[0]))}
		object += fmt.Sprintf(" pid=%d", pids[0])
	case prioWho, ioprioWho:
		which, who := int(int32(a[0])), int(int32(a[1]))
		object += fmt.Sprintf(" which=%d who=%d", which, who)
		if want := map[targetShape]int{prioWho: prioProcess, ioprioWho: ioprioWhoProcess}[call.shape]; which != want {
			// A process group or every process of a uid: they may hold
			// processes outside the agent, now or a moment later.
			return ECapability, object
		}
		pids = []int{who}
	case twoPids:
		pids = []int{int(int32(a[0])), int(int32(a[1]))}
		object += fmt.Sprintf(" pid=%d pid2=%d", pids[0], pids[1])
	case pidfdArg0:
		fd := int(int32(a[0]))
		pid, e := pidfdTarget(tid, fd)
		object += fmt.Sprintf(" pid=%d", pid) // the descriptor's number says nothing
		switch {
		case e != 0:
			return e, object
		case pid < 0:
			// The process has exited: a pidfd names it and no other, so
			// the kernel finds nothing to act on.
			return 0, object
		case pid == 0:
			return ECapability, object // in a pid namespace we cannot see
		}
		pids = []int{pid}
	}
	for _, p := range pids {
		if p <= 0 {
			// 0 is the caller itself (kcmp and rt_tgsigqueueinfo: no
			// process, EINVAL or ESRCH); no process has a negative number.
			continue
		}
		in, e := sameAgent(tid, p)
		if e != 0 {
			return e, object
		}
		if !in {
			return ECapability, object
		}
	}
	return 0, object
}

// pidfdTarget reads which process the caller's descriptor fd names, from
// its fdinfo: -1 when that process has exited. A descriptor that is not a
// pidfd is EBADF, as the kernel would answer.
func pidfdTarget(tid, fd int) (int, unix.Errno) {
	if fd < 0 {
		return 0, unix.EBADF
	}
	f, err := os.Open("/proc/" + strconv.Itoa(tid) + "/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		return 0, unix.EBADF
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Pid:"); ok {
			pid, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return 0, unix.EBADF
			}
			return pid, 0
		}
	}
	return 0, unix.EBADF
}

// cgroupOf reads a task's cgroup v2 path (the "0::" line of
// /proc/PID/cgroup).
func cgroupOf(pid int) (string, unix.Errno) {
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/cgroup", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", unix.ESRCH
	}
	defer unix.Close(fd)
	var buf [4096]byte
	n, err := unix.Read(fd, buf[:])
	if err != nil || n <= 0 {
		return "", unix.ESRCH // the task is gone (or exiting)
	}
	for _, line := range strings.Split(string(buf[:n]), "\n") {
		if v, ok := strings.CutPrefix(line, "0::"); ok {
			return v, 0
		}
	}
	return "", unix.ESRCH
}

var ownCgroup = sync.OnceValues(func() (string, unix.Errno) { return cgroupOf(os.Getpid()) })

// sameAgent reports whether target (a pid or tid) belongs to the agent the
// calling thread tid belongs to: the caller's own thread group, or the
// caller's cgroup or one below it. An agent cannot leave its cgroup or make
// another one, and coconutd gives each agent its own; a caller that shares
// the supervisor's cgroup or sits in the root one (a test, a process not
// started by coconutd) is only its own thread group.
func sameAgent(tid, target int) (bool, unix.Errno) {
	// /proc/TID/task/TARGET exists exactly when target is a thread of the
	// caller's thread group (the leader included).
	var st unix.Stat_t
	if unix.Stat("/proc/"+strconv.Itoa(tid)+"/task/"+strconv.Itoa(target), &st) == nil {
		return true, 0
	}
	c, e := cgroupOf(tid)
	if e != 0 {
		return false, e
	}
	own, e := ownCgroup()
	if e != 0 || c == "" || c == "/" || c == own {
		if unix.Stat("/proc/"+strconv.Itoa(target), &st) != nil {
			return false, unix.ESRCH // as the kernel would answer
		}
		return false, 0
	}
	t, e := cgroupOf(target)
	if e != 0 {
		return false, unix.ESRCH
	}
	return t == c || strings.HasPrefix(t, c+"/"), 0
}
