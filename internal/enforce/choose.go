package enforce

import "fmt"

// Choose loads the backend asked for. "auto" takes bpf-lsm when the kernel
// really runs BPF LSM programs (bpf in the active LSM list and a self-test
// program fired in a probe cgroup), else portable, and says why either
// way: the reason is doctor's bpf-lsm-selftest finding. Asking for bpf-lsm
// by name where it cannot run is an error, never silently replaced.
// (auto kept portable while the trampoline's exec of the measured memfd
// was refused under bpf-lsm; the measured map allows it now, and
// TestGuestDaemon runs coconutd under auto in the guests.)
func Choose(want string, cfg Config) (Enforcer, string, error) {
	switch want {
	case "", "auto":
		b, lerr := LoadBPFLSM(cfg)
		if lerr == nil {
			return b, "bpf-lsm: BPF LSM programs fire on this kernel (self-test passed); " + b.PinStatus(), nil
		}
		why := "portable: Landlock floor and cgroup BPF network guard (" + lerr.Error() + ")"
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
		b, err := LoadBPFLSM(cfg)
		if err != nil {
			return nil, "", err
		}
		return b, "bpf-lsm: asked for by name; " + b.PinStatus(), nil
	default:
		return nil, "", fmt.Errorf("enforcer %q: must be auto, portable or bpf-lsm", want)
	}
}
