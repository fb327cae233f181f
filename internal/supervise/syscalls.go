package supervise

import (
	"golang.org/x/sys/unix"
)

// Every x86_64 system call is in exactly one class, and the filter is
// built from this table: a number in no class, and every number above the
// highest the table knows, is refused (ECAPABILITY, a row where a
// supervisor serves the agent). A kernel that adds a call therefore adds
// no hole; TestSyscallTableComplete fails until the new call is placed.
type class uint8

const (
	unclassified class = iota // refused: no one has looked at it
	harmlessC                 // the filter lets it through
	mediatedC                 // a file call the supervisor decides (notified)
	refusedC                  // refused whatever the bundle, with a row (refused)
	obsoleteC                 // not implemented on x86_64: ENOSYS in the filter
	argsC                     // the filter looks at its arguments (argChecked)
	processC                  // acts on another process: processCalls
)

// harmless are the calls an agent may make freely: they act on the caller
// itself, on descriptors it already holds (whose opening was decided), or
// only read what every process of the machine may read. Calls that read
// metadata by path (stat, readlink, getxattr, statx, file_getattr…) are
// here: Landlock does not restrict them either, and docs/security.md lists
// what they show. Signals (kill, tkill, tgkill, pidfd_send_signal) are here
// because the Go runtime sends one per preemption: the floor's signal
// scoping refuses them outside the agent's domain (EPERM).
var harmless = []uint32{
	unix.SYS_READ, unix.SYS_WRITE, unix.SYS_CLOSE, unix.SYS_STAT, unix.SYS_FSTAT, unix.SYS_LSTAT,
	unix.SYS_POLL, unix.SYS_LSEEK, unix.SYS_MMAP, unix.SYS_MPROTECT, unix.SYS_MUNMAP, unix.SYS_BRK,
	unix.SYS_RT_SIGACTION, unix.SYS_RT_SIGPROCMASK, unix.SYS_RT_SIGRETURN,
	unix.SYS_PREAD64, unix.SYS_PWRITE64, unix.SYS_READV, unix.SYS_WRITEV, unix.SYS_ACCESS,
	unix.SYS_PIPE, unix.SYS_SELECT, unix.SYS_SCHED_YIELD, unix.SYS_MREMAP, unix.SYS_MSYNC,
	unix.SYS_MINCORE, unix.SYS_MADVISE, unix.SYS_DUP, unix.SYS_DUP2, unix.SYS_PAUSE,
	unix.SYS_NANOSLEEP, unix.SYS_GETITIMER, unix.SYS_ALARM, unix.SYS_SETITIMER, unix.SYS_GETPID,
	unix.SYS_SENDFILE, unix.SYS_ACCEPT, unix.SYS_RECVFROM, unix.SYS_RECVMSG, unix.SYS_SHUTDOWN,
	unix.SYS_BIND, unix.SYS_LISTEN, unix.SYS_GETSOCKNAME, unix.SYS_GETPEERNAME,
	unix.SYS_SETSOCKOPT, unix.SYS_GETSOCKOPT, unix.SYS_FORK, unix.SYS_VFORK, unix.SYS_EXIT,
	unix.SYS_WAIT4, unix.SYS_KILL, unix.SYS_UNAME,
	// System V IPC and POSIX message queues: shared by every process of
	// the uid in the IPC namespace (docs/security.md, "What an agent can
	// still see").
	unix.SYS_SHMGET, unix.SYS_SHMAT, unix.SYS_SHMCTL, unix.SYS_SHMDT, unix.SYS_SEMGET, unix.SYS_SEMOP,
	unix.SYS_SEMCTL, unix.SYS_SEMTIMEDOP, unix.SYS_MSGGET, unix.SYS_MSGSND, unix.SYS_MSGRCV, unix.SYS_MSGCTL,
	unix.SYS_MQ_OPEN, unix.SYS_MQ_UNLINK, unix.SYS_MQ_TIMEDSEND, unix.SYS_MQ_TIMEDRECEIVE,
	unix.SYS_MQ_NOTIFY, unix.SYS_MQ_GETSETATTR,
	unix.SYS_FCNTL, unix.SYS_FLOCK, unix.SYS_FSYNC, unix.SYS_FDATASYNC, unix.SYS_FTRUNCATE,
	unix.SYS_GETDENTS, unix.SYS_GETCWD, unix.SYS_CHDIR, unix.SYS_FCHDIR, unix.SYS_READLINK,
	unix.SYS_UMASK, unix.SYS_GETTIMEOFDAY, unix.SYS_GETRLIMIT, unix.SYS_GETRUSAGE, unix.SYS_SYSINFO,
	unix.SYS_TIMES, unix.SYS_GETUID, unix.SYS_GETGID, unix.SYS_SETUID, unix.SYS_SETGID,
	unix.SYS_GETEUID, unix.SYS_GETEGID, unix.SYS_SETPGID, unix.SYS_GETPPID, unix.SYS_GETPGRP,
	unix.SYS_SETSID, unix.SYS_SETREUID, unix.SYS_SETREGID, unix.SYS_GETGROUPS, unix.SYS_SETGROUPS,
	unix.SYS_SETRESUID, unix.SYS_GETRESUID, unix.SYS_SETRESGID, unix.SYS_GETRESGID, unix.SYS_GETPGID,
	unix.SYS_SETFSUID, unix.SYS_SETFSGID, unix.SYS_GETSID, unix.SYS_CAPGET, unix.SYS_CAPSET,
	unix.SYS_RT_SIGPENDING, unix.SYS_RT_SIGTIMEDWAIT, unix.SYS_RT_SIGSUSPEND, unix.SYS_SIGALTSTACK,
	unix.SYS_USTAT, unix.SYS_STATFS, unix.SYS_FSTATFS, unix.SYS_SYSFS,
	unix.SYS_SCHED_GET_PRIORITY_MAX, unix.SYS_SCHED_GET_PRIORITY_MIN,
	unix.SYS_MLOCK, unix.SYS_MUNLOCK, unix.SYS_MLOCKALL, unix.SYS_MUNLOCKALL,
	unix.SYS_PRCTL, unix.SYS_ARCH_PRCTL, unix.SYS_ADJTIMEX, unix.SYS_SETRLIMIT, unix.SYS_SYNC,
	unix.SYS_GETTID, unix.SYS_READAHEAD,
	unix.SYS_GETXATTR, unix.SYS_LGETXATTR, unix.SYS_FGETXATTR, unix.SYS_LISTXATTR, unix.SYS_LLISTXATTR,
	unix.SYS_FLISTXATTR, unix.SYS_TKILL, unix.SYS_TIME, unix.SYS_FUTEX,
	unix.SYS_IO_SETUP, unix.SYS_IO_DESTROY, unix.SYS_IO_GETEVENTS, unix.SYS_IO_SUBMIT, unix.SYS_IO_CANCEL,
	unix.SYS_EPOLL_CREATE, unix.SYS_REMAP_FILE_PAGES, unix.SYS_GETDENTS64, unix.SYS_SET_TID_ADDRESS,
	unix.SYS_RESTART_SYSCALL, unix.SYS_FADVISE64, unix.SYS_TIMER_CREATE, unix.SYS_TIMER_SETTIME,
	unix.SYS_TIMER_GETTIME, unix.SYS_TIMER_GETOVERRUN, unix.SYS_TIMER_DELETE, unix.SYS_CLOCK_GETTIME,
	unix.SYS_CLOCK_GETRES, unix.SYS_CLOCK_NANOSLEEP, unix.SYS_EXIT_GROUP, unix.SYS_EPOLL_WAIT,
	unix.SYS_EPOLL_CTL, unix.SYS_TGKILL, unix.SYS_MBIND, unix.SYS_SET_MEMPOLICY, unix.SYS_GET_MEMPOLICY,
	unix.SYS_WAITID, unix.SYS_INOTIFY_INIT, unix.SYS_INOTIFY_ADD_WATCH, unix.SYS_INOTIFY_RM_WATCH,
	unix.SYS_NEWFSTATAT, unix.SYS_READLINKAT, unix.SYS_FACCESSAT, unix.SYS_PSELECT6, unix.SYS_PPOLL,
	unix.SYS_SET_ROBUST_LIST, unix.SYS_SPLICE, unix.SYS_TEE, unix.SYS_SYNC_FILE_RANGE, unix.SYS_VMSPLICE,
	unix.SYS_EPOLL_PWAIT, unix.SYS_SIGNALFD, unix.SYS_TIMERFD_CREATE, unix.SYS_EVENTFD, unix.SYS_FALLOCATE,
	unix.SYS_TIMERFD_SETTIME, unix.SYS_TIMERFD_GETTIME, unix.SYS_ACCEPT4, unix.SYS_SIGNALFD4,
	unix.SYS_EVENTFD2, unix.SYS_EPOLL_CREATE1, unix.SYS_DUP3, unix.SYS_PIPE2, unix.SYS_INOTIFY_INIT1,
	unix.SYS_PREADV, unix.SYS_PWRITEV, unix.SYS_RECVMMSG, unix.SYS_NAME_TO_HANDLE_AT,
	unix.SYS_CLOCK_ADJTIME, unix.SYS_SYNCFS, unix.SYS_GETCPU, unix.SYS_GETRANDOM,
	unix.SYS_MEMFD_CREATE, unix.SYS_MEMBARRIER, unix.SYS_MLOCK2, unix.SYS_COPY_FILE_RANGE,
	unix.SYS_PREADV2, unix.SYS_PWRITEV2, unix.SYS_PKEY_MPROTECT, unix.SYS_PKEY_ALLOC, unix.SYS_PKEY_FREE,
	unix.SYS_STATX, unix.SYS_IO_PGETEVENTS, unix.SYS_RSEQ,
	// Only the kernel's own uprobe trampolines make these (the kernel
	// passes them by seccomp anyway).
	unix.SYS_URETPROBE, unix.SYS_UPROBE,
	unix.SYS_PIDFD_SEND_SIGNAL, unix.SYS_PIDFD_OPEN, unix.SYS_CLOSE_RANGE, unix.SYS_FACCESSAT2,
	unix.SYS_EPOLL_PWAIT2, unix.SYS_LANDLOCK_CREATE_RULESET, unix.SYS_LANDLOCK_ADD_RULE,
	unix.SYS_LANDLOCK_RESTRICT_SELF, unix.SYS_MEMFD_SECRET, unix.SYS_FUTEX_WAITV,
	unix.SYS_SET_MEMPOLICY_HOME_NODE, unix.SYS_CACHESTAT, unix.SYS_MAP_SHADOW_STACK,
	unix.SYS_FUTEX_WAKE, unix.SYS_FUTEX_WAIT, unix.SYS_FUTEX_REQUEUE,
	unix.SYS_LSM_GET_SELF_ATTR, unix.SYS_LSM_LIST_MODULES, unix.SYS_MSEAL,
	unix.SYS_GETXATTRAT, unix.SYS_LISTXATTRAT, unix.SYS_FILE_GETATTR, unix.SYS_RSEQ_SLICE_YIELD,
}

// obsolete calls have a number on x86_64 and no implementation: the filter
// answers ENOSYS itself, so a kernel that revived one would not be reached
// unexamined.
var obsolete = []uint32{
	unix.SYS__SYSCTL, unix.SYS_CREATE_MODULE, unix.SYS_GET_KERNEL_SYMS, unix.SYS_QUERY_MODULE,
	unix.SYS_NFSSERVCTL, unix.SYS_GETPMSG, unix.SYS_PUTPMSG, unix.SYS_AFS_SYSCALL, unix.SYS_TUXCALL,
	unix.SYS_SECURITY, unix.SYS_SET_THREAD_AREA, unix.SYS_GET_THREAD_AREA, unix.SYS_LOOKUP_DCOOKIE,
	unix.SYS_EPOLL_CTL_OLD, unix.SYS_EPOLL_WAIT_OLD, unix.SYS_VSERVER,
}

// argChecked are decided in the filter on their arguments (filter.go):
// namespace flags of clone and unshare, socket and socketpair families,
// personality, seccomp's listener flag, a few ioctl commands, clone3
// (ENOSYS: its flags are in memory), the Unix connect fallback and the
// static mode's read-only opens.
var argChecked = []uint32{
	unix.SYS_CLONE, unix.SYS_CLONE3, unix.SYS_UNSHARE, unix.SYS_SOCKET, unix.SYS_PERSONALITY,
	unix.SYS_SOCKETPAIR, unix.SYS_SECCOMP, unix.SYS_IOCTL,
	unix.SYS_CONNECT, unix.SYS_SENDTO, unix.SYS_SENDMSG, unix.SYS_SENDMMSG,
}

// classes is the table, built once from the lists. A number in two lists
// is a mistake TestSyscallTableDisjoint reports; until it is fixed the
// stricter list wins (they are added from the most permissive to the
// strictest), so a call moved to notified or refused without being taken
// out of harmless is trapped, never let through.
var classes, maxSyscall = buildClasses()

func buildClasses() (map[uint32]class, uint32) {
	m := map[uint32]class{}
	var hi uint32
	add := func(c class, nrs []uint32) {
		for _, nr := range nrs {
			m[nr] = c
			hi = max(hi, nr)
		}
	}
	add(harmlessC, harmless)
	add(obsoleteC, obsolete)
	add(argsC, argChecked)
	// Static mode argument-checks open and openat of this list
	// (filter.go's leafOf).
	add(mediatedC, notified)
	add(processC, processNumbers())
	add(refusedC, refused)
	return m, hi
}

func classOf(nr int32) class {
	if nr < 0 {
		return unclassified
	}
	return classes[uint32(nr)]
}
