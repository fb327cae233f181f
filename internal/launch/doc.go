// Package launch starts an agent process. It re-executes the daemon's own
// binary as a small trampoline that is cloned straight into the agent's
// cgroup (CLONE_INTO_CGROUP, so no instruction of the agent ever runs
// outside it) and then, on one locked OS thread: drops the capability
// bounding set, locks the securebits so root gains nothing at exec, switches
// to the agent's user, sets no_new_privs, enters the working directory and
// execs the measured binary from its sealed memfd (execveat AT_EMPTY_PATH),
// so exactly the bytes that were hashed are run.
//
// The trampoline is this package's Main; every binary that starts agents
// (coconutd, and test binaries through TestMain) calls Main first thing.
// Whatever must apply to the agent and cannot be set from outside a running
// process is added here, right before the exec: the Landlock floor, then
// the seccomp supervisor's filter (supervise.Install over fd 7), whose
// listener goes to the daemon before the exec is allowed to proceed.
//
// Main also runs the listener holder (supervise.Hold) when started as
// supervise.HolderArg0, so the small trampoline binary serves both roles.
package launch
