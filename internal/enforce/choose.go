package enforce

import (
	"fmt"

	"github.com/coconut-os/coconut/internal/bpflsm"
)

// autoTakesBPFLSM is false while coconutd's own spawn path does not run
// under the bpf-lsm backend: the trampoline execs each agent's measured
// program from a sealed memfd, which the programs' exec rules (by path)
// refuse, so on a BPF LSM kernel no agent would start (seen in the
// image's boot test, issue 15). auto then keeps the portable backend,
// which works there too, and says why; --enforcer bpf-lsm still loads it.
const autoTakesBPFLSM = false

// bpfLSMNotYet is auto's reason on a kernel where BPF LSM programs fire.
const bpfLSMNotYet = "bpf-lsm: BPF LSM programs fire on this kernel (self-test passed), but auto does not take the bpf-lsm backend yet: agents' measured programs, exec'd from sealed memfds, are refused under it; --enforcer bpf-lsm to try it"

// Choose loads the backend asked for. "auto" takes portable, and would take
// bpf-lsm when the kernel really runs BPF LSM programs (bpf in the active
// LSM list and a self-test program fired in a probe cgroup) once
// autoTakesBPFLSM is set; it says why either way. Asking for bpf-lsm by
// name where it cannot run is an error, never silently replaced.
func Choose(want string, cfg Config) (Enforcer, string, error) {
	switch want {
	case "", "auto":
		var lerr error
		if autoTakesBPFLSM {
			b, err := LoadBPFLSM(cfg)
			if err == nil {
				return b, "bpf-lsm: BPF LSM programs fire on this kernel (self-test passed); " + b.PinStatus(), nil
			}
			lerr = err
		} else {
			lerr = autoSkipsBPFLSM(cfg)
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

// autoSkipsBPFLSM is why auto does not take bpf-lsm while autoTakesBPFLSM
// is false: the self-test's refusal, or that it passed and the backend is
// not taken yet.
func autoSkipsBPFLSM(cfg Config) error {
	if err := bpflsm.Probe(cfg.CgroupRoot); err != nil {
		return fmt.Errorf("%w: bpf-lsm: %v", ErrUnavailable, err)
	}
	return fmt.Errorf("%w: %s", ErrUnavailable, bpfLSMNotYet)
}
