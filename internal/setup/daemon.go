package setup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/client"
)

// systemdBooted reports whether systemd is PID 1 (sd_booted(3)).
func systemdBooted() bool {
	st, err := os.Stat("/run/systemd/system")
	return err == nil && st.IsDir()
}

// running asks the daemon on socket who it is; 0 when none answers.
func running(ctx context.Context, socket string) int {
	if d := runningDoctor(ctx, socket); d != nil {
		return d.PID
	}
	return 0
}

func runningDoctor(ctx context.Context, socket string) *api.Doctor {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	d, err := client.New(socket).Doctor(ctx)
	if err != nil {
		return nil
	}
	return d
}

// DaemonStart says how coconutd is (to be) running.
type DaemonStart struct {
	Config, StateDir, Socket string
	Binary                   string // coconutd; empty: beside this program, else $PATH
	Default                  bool   // the packaged paths: systemd's unit may run it
	Restart                  bool   // the configuration changed: restart a running daemon
}

// startDaemon starts coconutd: through systemd where it is PID 1 and the
// paths are the unit's, otherwise as a child of its own session that
// outlives init (logging to STATE/coconutd.log), and says which.
func startDaemon(ctx context.Context, o DaemonStart, dry bool) (Step, int) {
	pid := running(ctx, o.Socket)
	if pid != 0 && !o.Restart {
		return Step{Name: "coconutd", Status: Unchanged, Detail: fmt.Sprintf("running (pid %d) on %s", pid, o.Socket)}, pid
	}
	if dry {
		what := "start"
		if pid != 0 {
			what = fmt.Sprintf("restart (pid %d) to read the new configuration", pid)
		}
		return Step{Name: "coconutd", Status: WouldChange, Detail: what}, pid
	}
	if o.Default && systemdBooted() {
		verb := "enable --now"
		args := []string{"enable", "--now", "coconutd"}
		if pid != 0 {
			verb, args = "restart", []string{"restart", "coconutd"}
		}
		if out, err := exec.CommandContext(ctx, "systemctl", args...).CombinedOutput(); err != nil {
			return failed("coconutd", fmt.Errorf("systemctl %s coconutd: %v: %s", verb, err, out)), 0
		}
		pid, err := waitUp(ctx, o.Socket, 0)
		if err != nil {
			return failed("coconutd", fmt.Errorf("systemctl %s coconutd: %w (see journalctl -u coconutd)", verb, err)), 0
		}
		return Step{Name: "coconutd", Status: Started, Detail: fmt.Sprintf("systemctl %s coconutd (pid %d)", verb, pid)}, pid
	}
	why := "PID 1 is not systemd"
	if systemdBooted() {
		why = "the paths are not the systemd unit's"
	}
	if pid != 0 { // not ours to manage through systemd: stop it; agents keep running
		if p, err := os.FindProcess(pid); err == nil {
			p.Signal(syscall.SIGTERM)
		}
		for i := 0; i < 100 && running(ctx, o.Socket) == pid; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	}
	bin, err := findCoconutd(o.Binary)
	if err != nil {
		return failed("coconutd", err), 0
	}
	logPath := filepath.Join(o.StateDir, "coconutd.log")
	if err := os.MkdirAll(o.StateDir, 0o755); err != nil {
		return failed("coconutd", err), 0
	}
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return failed("coconutd", err), 0
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--config", o.Config, "--state-dir", o.StateDir, "--socket", o.Socket)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives init and its terminal
	if err := cmd.Start(); err != nil {
		return failed("coconutd", err), 0
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if pid, err = waitUp(ctx, o.Socket, cmd.Process.Pid, exited); err != nil {
		cmd.Process.Kill()
		b, _ := os.ReadFile(logPath)
		return failed("coconutd", fmt.Errorf("%w; its log %s ends:\n%s", err, logPath, tail(b, 800))), 0
	}
	return Step{Name: "coconutd", Status: Started, Detail: fmt.Sprintf("started it myself (%s): pid %d, log %s; it does not restart by itself", why, pid, logPath)}, pid
}

func waitUp(ctx context.Context, socket string, want int, exited ...chan error) (int, error) {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if pid := running(ctx, socket); pid != 0 && (want == 0 || pid == want) {
			return pid, nil
		}
		if len(exited) > 0 {
			select {
			case err := <-exited[0]:
				return 0, fmt.Errorf("coconutd exited: %v", err)
			default:
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return 0, errors.New("coconutd did not answer on " + socket + " within 20 s")
}

func findCoconutd(explicit string) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "coconutd")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return exec.LookPath("coconutd")
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
