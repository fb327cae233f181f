package bpflsm

// The BPF object and its Go bindings are generated and committed; CI reruns
// this and fails on any diff. clang-14 is Debian 12's, installed by .ci/run.
//go:generate go tool bpf2go -cc clang-14 -cflags "-O2 -g -Wall -Werror -mcpu=v3 -D__TARGET_ARCH_x86 -I../../bpf/include -I/usr/include/x86_64-linux-gnu" -target bpfel -type lsm_key -type lsm_agent -type lsm_file -type lsm_event -type lsm_unix_key -type lsm_measured_key lsm ../../bpf/lsm.c
