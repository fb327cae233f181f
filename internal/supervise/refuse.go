package supervise

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// refusedCaps names, for each call the filter refuses, the capability an
// agent would need for it; no bundle can hold these, so the supervisor
// refuses every notification of them. The name is the Cap of the
// cap.deny row.
var refusedCaps = map[int32]string{
	unix.SYS_MOUNT: "sys.mount", unix.SYS_UMOUNT2: "sys.mount", unix.SYS_PIVOT_ROOT: "sys.mount", unix.SYS_CHROOT: "sys.mount",
	unix.SYS_FSOPEN: "sys.mount", unix.SYS_FSCONFIG: "sys.mount", unix.SYS_FSMOUNT: "sys.mount", unix.SYS_FSPICK: "sys.mount",
	unix.SYS_OPEN_TREE: "sys.mount", unix.SYS_OPEN_TREE_ATTR: "sys.mount", unix.SYS_MOVE_MOUNT: "sys.mount",
	unix.SYS_MOUNT_SETATTR: "sys.mount",
	unix.SYS_BPF:           "sys.bpf",
	unix.SYS_INIT_MODULE:   "sys.module", unix.SYS_FINIT_MODULE: "sys.module", unix.SYS_DELETE_MODULE: "sys.module",
	unix.SYS_KEXEC_LOAD: "sys.kexec", unix.SYS_KEXEC_FILE_LOAD: "sys.kexec",
	unix.SYS_PTRACE: "sys.ptrace",
	unix.SYS_SETNS:  "sys.namespace", unix.SYS_UNSHARE: "sys.namespace", unix.SYS_CLONE: "sys.namespace",
	unix.SYS_KEYCTL: "sys.keyring", unix.SYS_ADD_KEY: "sys.keyring", unix.SYS_REQUEST_KEY: "sys.keyring",
	unix.SYS_PERF_EVENT_OPEN: "sys.perf",
	unix.SYS_USERFAULTFD:     "sys.userfaultfd",
	unix.SYS_IO_URING_SETUP:  "sys.io_uring", unix.SYS_IO_URING_ENTER: "sys.io_uring", unix.SYS_IO_URING_REGISTER: "sys.io_uring",
	unix.SYS_OPEN_BY_HANDLE_AT: "sys.handle",
	unix.SYS_USELIB:            "sys.uselib",
	unix.SYS_SOCKET:            "net.socket",  // families other than unix, inet (not raw) and route netlink
	unix.SYS_SOCKETPAIR:        "net.socket",  // families other than unix
	unix.SYS_SECCOMP:           "sys.seccomp", // a filter with a listener of its own
	unix.SYS_IOCTL:             "sys.ioctl",   // refusedIoctls: attribute changes, tty injection
	unix.SYS_PERSONALITY:       "sys.personality",
	unix.SYS_STATMOUNT:         "sys.mount", unix.SYS_LISTMOUNT: "sys.mount",
	unix.SYS_LISTNS:        "sys.namespace",
	unix.SYS_FILE_SETATTR:  "sys.file_setattr", // attributes by path, with no Landlock right under them
	unix.SYS_FANOTIFY_INIT: "sys.fanotify", unix.SYS_FANOTIFY_MARK: "sys.fanotify",
	unix.SYS_LSM_SET_SELF_ATTR: "sys.lsm",
	unix.SYS_MODIFY_LDT:        "sys.ldt",
	unix.SYS_IOPL:              "sys.ioport", unix.SYS_IOPERM: "sys.ioport",
	unix.SYS_SYSLOG: "sys.syslog",
	unix.SYS_REBOOT: "sys.reboot",
	unix.SYS_SWAPON: "sys.swap", unix.SYS_SWAPOFF: "sys.swap",
	unix.SYS_ACCT:        "sys.acct",
	unix.SYS_SETHOSTNAME: "sys.hostname", unix.SYS_SETDOMAINNAME: "sys.hostname",
	unix.SYS_SETTIMEOFDAY: "sys.time", unix.SYS_CLOCK_SETTIME: "sys.time",
	unix.SYS_VHANGUP:  "sys.tty",
	unix.SYS_QUOTACTL: "sys.quota", unix.SYS_QUOTACTL_FD: "sys.quota",
}

// unknownCap is the capability named in the row of a call the filter does
// not know (unclassified, or above the highest number of its table):
// refused by construction, never looked at.
const unknownCap = "sys.unknown"

var refusedNames = map[int32]string{
	unix.SYS_MOUNT: "mount", unix.SYS_UMOUNT2: "umount2", unix.SYS_PIVOT_ROOT: "pivot_root", unix.SYS_CHROOT: "chroot",
	unix.SYS_FSOPEN: "fsopen", unix.SYS_FSCONFIG: "fsconfig", unix.SYS_FSMOUNT: "fsmount", unix.SYS_FSPICK: "fspick",
	unix.SYS_OPEN_TREE: "open_tree", unix.SYS_OPEN_TREE_ATTR: "open_tree_attr", unix.SYS_MOVE_MOUNT: "move_mount",
	unix.SYS_MOUNT_SETATTR: "mount_setattr", unix.SYS_BPF: "bpf",
	unix.SYS_INIT_MODULE: "init_module", unix.SYS_FINIT_MODULE: "finit_module", unix.SYS_DELETE_MODULE: "delete_module",
	unix.SYS_KEXEC_LOAD: "kexec_load", unix.SYS_KEXEC_FILE_LOAD: "kexec_file_load", unix.SYS_PTRACE: "ptrace",
	unix.SYS_SETNS: "setns", unix.SYS_UNSHARE: "unshare", unix.SYS_CLONE: "clone",
	unix.SYS_KEYCTL: "keyctl", unix.SYS_ADD_KEY: "add_key", unix.SYS_REQUEST_KEY: "request_key",
	unix.SYS_PERF_EVENT_OPEN: "perf_event_open", unix.SYS_USERFAULTFD: "userfaultfd",
	unix.SYS_IO_URING_SETUP: "io_uring_setup", unix.SYS_IO_URING_ENTER: "io_uring_enter",
	unix.SYS_IO_URING_REGISTER: "io_uring_register", unix.SYS_OPEN_BY_HANDLE_AT: "open_by_handle_at",
	unix.SYS_USELIB: "uselib", unix.SYS_SOCKET: "socket", unix.SYS_PERSONALITY: "personality",
	unix.SYS_SOCKETPAIR: "socketpair", unix.SYS_SECCOMP: "seccomp", unix.SYS_IOCTL: "ioctl",
	unix.SYS_STATMOUNT: "statmount", unix.SYS_LISTMOUNT: "listmount", unix.SYS_LISTNS: "listns",
	unix.SYS_FILE_SETATTR: "file_setattr", unix.SYS_FANOTIFY_INIT: "fanotify_init", unix.SYS_FANOTIFY_MARK: "fanotify_mark",
	unix.SYS_LSM_SET_SELF_ATTR: "lsm_set_self_attr", unix.SYS_MODIFY_LDT: "modify_ldt",
	unix.SYS_IOPL: "iopl", unix.SYS_IOPERM: "ioperm", unix.SYS_SYSLOG: "syslog", unix.SYS_REBOOT: "reboot",
	unix.SYS_SWAPON: "swapon", unix.SYS_SWAPOFF: "swapoff", unix.SYS_ACCT: "acct",
	unix.SYS_SETHOSTNAME: "sethostname", unix.SYS_SETDOMAINNAME: "setdomainname",
	unix.SYS_SETTIMEOFDAY: "settimeofday", unix.SYS_CLOCK_SETTIME: "clock_settime", unix.SYS_VHANGUP: "vhangup",
	unix.SYS_QUOTACTL: "quotactl", unix.SYS_QUOTACTL_FD: "quotactl_fd",
}

// refusedName names a refused call in its row: "unknown" for a number the
// table does not know.
func refusedName(nr int32) string {
	if n, ok := refusedNames[nr]; ok {
		return n
	}
	return "unknown"
}

// refusal describes a notification of a call the filter refuses: the
// capability it would take and the object of the audit row, from the
// registers only. ok is false for the calls the supervisor decides (file,
// process and Unix socket calls). A number in no class of the table is
// refused as "sys.unknown".
func refusal(d *seccompData) (cap, object string, ok bool) {
	cap, ok = refusedCaps[d.Nr]
	if !ok {
		if classOf(d.Nr) != unclassified {
			return "", "", false
		}
		return unknownCap, fmt.Sprintf("syscall %d", uint32(d.Nr)), true
	}
	name, a := refusedNames[d.Nr], d.Args
	switch d.Nr {
	case unix.SYS_PTRACE:
		object = fmt.Sprintf("ptrace request=%d pid=%d", int64(a[0]), int32(a[1]))
	case unix.SYS_UNSHARE, unix.SYS_CLONE:
		object = fmt.Sprintf("%s flags=%#x", name, a[0])
	case unix.SYS_SETNS:
		object = fmt.Sprintf("setns fd=%d nstype=%#x", int32(a[0]), uint32(a[1]))
	case unix.SYS_SOCKET, unix.SYS_SOCKETPAIR:
		object = fmt.Sprintf("%s family=%d type=%d protocol=%d", name, int32(a[0]), int32(a[1]), int32(a[2]))
	case unix.SYS_SECCOMP:
		object = fmt.Sprintf("seccomp op=%d flags=%#x", uint32(a[0]), uint32(a[1]))
	case unix.SYS_IOCTL:
		object = fmt.Sprintf("ioctl fd=%d cmd=%#x", int32(a[0]), uint32(a[1]))
	case unix.SYS_PERSONALITY:
		object = fmt.Sprintf("personality %#x", uint32(a[0]))
	case unix.SYS_BPF:
		object = fmt.Sprintf("bpf cmd=%d", int32(a[0]))
	default:
		object = name
	}
	return cap, object, true
}

// refusedTarget is the path argument worth putting in a refused call's
// row (what was to be mounted on, chrooted to…): the address, or 0.
func refusedTarget(d *seccompData) uint64 {
	switch d.Nr {
	case unix.SYS_MOUNT:
		return d.Args[1]
	case unix.SYS_UMOUNT2, unix.SYS_CHROOT, unix.SYS_PIVOT_ROOT, unix.SYS_SWAPON, unix.SYS_ACCT:
		return d.Args[0]
	case unix.SYS_FILE_SETATTR:
		return d.Args[1] // relative to the dirfd (argument 0), as the agent named it
	}
	return 0
}
