// Package vmtest boots Debian's own kernels in qemu (TCG; KVM when
// /dev/kvm exists) with a busybox + static Go test binary initramfs, runs
// the test binary as the guest's workload and streams its output back over
// the serial console. The bpf-lsm backend is tested this way because the
// project's hosts refuse BPF LSM trampolines (kernel-notes.md).
//
// Kernels are fetched by scripts/vmtest-kernels.sh (apt-get download, cached
// under /var/cache/coconut-vmtest, never installed).
package vmtest
