// Package orphan finds and removes what a coconutd leaves in the kernel
// once it is gone for good: its cgroup subtree (unified hierarchy and the
// v1 controller groups of a hybrid host), the network guard pinned in
// bpffs (/sys/fs/bpf/coconut-NAME) and the agents still running in the
// subtree, which no daemon will ever adopt.
//
// Subtree and pin names are a one-way hash of the state directory
// (cgroup.SubtreeName), so every daemon writes an owner record at start
// (Record): /run/coconut/owners/NAME names its state directory, its pid
// and the pid's start time (a reused pid is not taken for the daemon).
// /run is a tmpfs, like bpffs and cgroupfs: a reboot clears all three.
//
// An orphan is a subtree or pin directory whose owner daemon is not
// running (Find). Only an orphan whose owner record says its state
// directory no longer exists is reapable (Reap); one whose state
// directory exists is a stopped installation, for coconutd --uninstall;
// one without an owner record (made by an older coconutd, or by a test
// outside any daemon) is listed and never reaped.
package orphan
