package launch

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
)

// ErrExec is matched by errors the trampoline reports before the agent's
// program started (bad user, missing working directory, exec refused…).
var ErrExec = errors.New("agent did not start")

// Config is what Start needs besides the Spec.
type Config struct {
	Self     string   // the trampoline binary: os.Executable() of the daemon
	CgroupFD int      // open directory of the agent's cgroup
	Exec     *os.File // sealed memfd of the program
	Script   *os.File // sealed memfd of the script, or nil
	Output   *os.File // receives stdout and stderr
	// Supervise, when set, is the trampoline's end of the socket pair
	// whose other end the daemon passed to supervise.Start, which must
	// already be waiting: the trampoline's exec waits for its
	// acknowledgement. Start does not close it.
	Supervise *os.File
	// Static is the manifest's `enforcement: static`: the filter leaves
	// read-only opens to the floor, which must then be built from the
	// bundle itself.
	Static bool
}

// Start launches the trampoline, hands it the spec and waits until the
// agent's program has been exec'd (or failed to be). The caller owns the
// returned command and must Wait for it.
func Start(cfg Config, spec Spec) (*exec.Cmd, error) {
	specR, specW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer specR.Close()
	defer specW.Close()
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer statusR.Close()
	defer statusW.Close()

	script := cfg.Script
	if script == nil {
		// Keep fd 6 occupied so the layout is fixed; /dev/null is harmless.
		if script, err = os.Open(os.DevNull); err != nil {
			return nil, err
		}
		defer script.Close()
	}
	spec.HasScript = cfg.Script != nil
	spec.Supervised = cfg.Supervise != nil
	spec.Static = cfg.Static
	files := []*os.File{specR, statusW, cfg.Exec, script}
	if cfg.Supervise != nil {
		files = append(files, cfg.Supervise)
	}

	cmd := &exec.Cmd{
		Path:       cfg.Self,
		Args:       []string{Arg0},
		Env:        []string{},
		Stdout:     cfg.Output,
		Stderr:     cfg.Output,
		ExtraFiles: files,
		SysProcAttr: &syscall.SysProcAttr{
			Setsid:      true, // own session: no controlling terminal, not in the daemon's process group
			UseCgroupFD: true,
			CgroupFD:    cfg.CgroupFD,
		},
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start trampoline: %w", err)
	}
	specR.Close()
	statusW.Close()

	b, _ := json.Marshal(spec)
	_, werr := specW.Write(b)
	specW.Close()
	msg, rerr := io.ReadAll(io.LimitReader(statusR, 64<<10))
	if werr == nil && rerr == nil && len(msg) == 0 {
		return cmd, nil
	}
	// The trampoline failed before exec: it has exited or is about to.
	cmd.Process.Kill()
	cmd.Wait()
	switch {
	case len(msg) > 0:
		return nil, fmt.Errorf("%w: %s", ErrExec, msg)
	case werr != nil:
		return nil, fmt.Errorf("%w: hand over spec: %v", ErrExec, werr)
	default:
		return nil, fmt.Errorf("%w: %v", ErrExec, rerr)
	}
}
