package bpflsm

import "errors"

// ErrRefused: the kernel will not run BPF LSM programs (the reason wraps it).
var ErrRefused = errors.New("BPF LSM unavailable")
