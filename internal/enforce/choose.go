package enforce

import (
	"fmt"
	"os"
	"strings"
)

// Choose loads the backend asked for. "auto" takes bpf-lsm when the kernel
// really runs BPF LSM programs, else portable. bpf-lsm is not built yet:
// asking for it by name is refused, never silently replaced.
func Choose(want string, cfg Config) (Enforcer, string, error) {
	switch want {
	case "", "auto":
		why := "portable: Landlock floor and cgroup BPF network guard"
		if bpfLSMActive() {
			why += " (BPF LSM is active on this kernel, but the bpf-lsm backend is not built yet)"
		} else {
			why += " (BPF LSM is not active: add bpf to the kernel's lsm= boot parameter for the bpf-lsm backend)"
		}
		e, err := LoadPortable(cfg)
		if err != nil {
			return nil, "", err
		}
		_, sw := e.Supervising()
		return e, why + "; " + sw, nil
	case "portable":
		e, err := LoadPortable(cfg)
		if err != nil {
			return nil, "", err
		}
		_, sw := e.Supervising()
		return e, "portable: asked for by name; " + sw, nil
	case "bpf-lsm":
		return nil, "", fmt.Errorf("%w: the bpf-lsm backend is not built yet", ErrUnavailable)
	default:
		return nil, "", fmt.Errorf("enforcer %q: must be auto, portable or bpf-lsm", want)
	}
}

// bpfLSMActive reads the active LSM list. Without bpf in it, BPF LSM
// programs load and attach and never run (kernel-notes.md).
func bpfLSMActive() bool {
	b, err := os.ReadFile("/sys/kernel/security/lsm")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), ",") {
		if l == "bpf" {
			return true
		}
	}
	return false
}
