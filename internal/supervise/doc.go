// Package supervise is the seccomp user-notification supervisor of the
// portable enforcer: a classic-BPF filter, installed by the trampoline right
// before the agent's exec, traps the calls that open, execute or change
// files, and singles out the calls an agent never needs (mount, bpf,
// kernel modules, kexec, ptrace, new namespaces, io_uring, raw and packet
// sockets…); a supervisor goroutine per agent answers each trapped call
// with CONTINUE or ECAPABILITY after resolving the path to the real file
// the agent would reach, and answers every one of the singled-out calls
// with ECAPABILITY and an Event (Cap "sys.mount"…), so that each is a row.
// Only a filter without a listener (Options.NoListener) refuses those in
// the kernel, unaudited.
//
// # Default deny
//
// The filter is built from one table (syscalls.go) that puts every x86_64
// call in a class: harmless, mediated, argument-checked, process, refused
// or obsolete. A number in no class, and any number above the table's
// highest, is refused like the singled-out calls (Cap "sys.unknown").
// Process calls (process.go: prlimit64, setpriority, the sched_* calls,
// ioprio_set, kcmp, process_vm_readv…) pass in the filter when they name
// the caller itself (pid 0) and go to the supervisor otherwise, which
// allows a target only in the caller's thread group or cgroup. Opens of
// another process's /proc/PID are refused the same way (procfs.go).
//
// # Static mode
//
// Options.Static leaves read-only open and openat (flags checked in the
// filter) to the Landlock floor, which the caller then builds from the
// bundle: such reads cost what they cost without Coconut, but cannot be
// revoked, are denied with EACCES and are not Events (docs/security.md,
// "Supervised vs static enforcement").
//
// # Two sides
//
// The trampoline (one locked OS thread, between clone and exec) calls
// Install with one end of a Unix socket pair: it sets no_new_privs, loads
// the filter on that thread only with SECCOMP_FILTER_FLAG_NEW_LISTENER,
// sends the listener over the socket, closes its own copy (the agent never
// holds the listener) and waits for the supervisor's acknowledgement. The
// daemon calls Start with the other end: it receives the listener, starts
// serving it and only then acknowledges, so the trampoline's own exec (which
// is trapped) is answered.
//
// # What a decision is made on
//
// A path is read from the agent's memory (pread on /proc/TID/mem), resolved
// against the agent's root, cwd or dirfd, with every symlink followed the way
// the kernel would follow it (including /proc/self and /proc/PID/fd magic
// links, which are re-rooted at the calling task), down to the real file;
// the decision is made on that file's absolute path. A file that does not
// exist yet (O_CREAT, mkdir, the new name of rename or link) is decided on
// its real parent directory plus the new name. Objects without a path
// (deleted files, memfds) are refused, except the measured program and
// script the daemon itself handed to the agent (AgentInfo.Measured), and
// except anonymous pipes, sockets and anon inodes reopened through
// /proc/PID/fd, which are not files of the capability model.
//
// Hard links: a path cannot tell that a file reached through an allowed
// directory is a hard link, made outside the agent, to a file the bundle
// denies under its first name (~/.ssh/id_ed25519 linked into the project).
// So a non-directory with more than one link that is not owned by root is
// refused whatever its path (root-owned system files, such as git's
// hard-linked helpers, stay usable); AgentInfo.TrustHardLinks turns this
// off for agents that need it (a pnpm store). Making links is mediated too:
// link and rename need fs.write on the source file and on the destination.
//
// # Guarantees and limits
//
// For the calls answered CONTINUE the check is time-of-check/time-of-use:
// another thread of the agent can rewrite the path buffer after it was
// read. Such a race can only reach what the Landlock floor allows (the
// spawn-time bundle, or ceiling) and fails with EACCES there; calls.go
// lists the floor right under each continued call. Attribute changes
// (mode, owner, times, extended attributes, by path or through a
// descriptor) have no floor right, so they are never continued: the
// supervisor performs them itself on the O_PATH descriptor of the object
// it decided on, with the calling thread's credentials, and answers the
// result (emulate.go). Files already open stay open after a revocation.
// O_PATH opens are not mediated (they give no access to contents; every
// later use through /proc/self/fd or execveat is trapped again).
//
// ptrace is refused entirely, PTRACE_TRACEME included (a tracee alone is
// useless and a tracer can rewrite a checked path after the check): gdb and
// strace do not work inside an agent. clone3 fails with ENOSYS because its
// flags are in memory a filter cannot read; libc then falls back to clone,
// whose flags are in a register and are checked (no CLONE_NEW* flag). socket
// is refused for AF_PACKET, SOCK_RAW and SOCK_PACKET, and for AF_NETLINK
// except NETLINK_ROUTE (libc's getaddrinfo reads interface addresses
// through it; changing routes needs CAP_NET_ADMIN, which agents lack).
// personality may only be queried or set to PER_LINUX. x32 system calls get
// ENOSYS; any other architecture kills the process.
//
// # Fail closed
//
// If the supervisor dies, the kernel answers every trapped call with ENOSYS:
// nothing trapped ever passes unanswered. If a decision cannot be made (the
// path cannot be read or resolved, the audit record cannot be written, the
// handler panics) the call is refused.
package supervise
