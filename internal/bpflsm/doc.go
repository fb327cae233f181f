// Package bpflsm loads coconut's BPF LSM programs (bpf/lsm.c): file opens,
// reads and writes on open descriptors, exec, ptrace, signals, bpf() and
// mounts, decided at the kernel's LSM hooks for the tasks of agent cgroups.
//
// Rules are an LPM trie of paths per policy (rules.go compiles a bundle
// into it, refusing what a byte prefix cannot express); a bound cgroup
// moves to a new policy id on every update, so an open file decided under
// the old one is decided again on its next read or write. Maps and links
// are pinned in bpffs (pin.go): enforcement outlives the daemon.
package bpflsm
