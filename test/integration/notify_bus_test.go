package integration

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/notify"
)

// sessionBus starts a real dbus-daemon (internal/notify's private bus) and
// answers its address.
func sessionBus(t testing.TB, dir string) string {
	t.Helper()
	b, err := notify.StartBus(dir)
	if errors.Is(err, notify.ErrNoDBusDaemon) {
		t.Skip(err.Error() + "; .ci/run installs it")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	return b.Addr
}

// recorder is internal/notify's recording notification server, with the
// waits the tests need.
type recorder struct{ *notify.Recorder }

func newRecorder(t testing.TB, addr string) *recorder {
	t.Helper()
	r, err := notify.NewRecorder(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return &recorder{r}
}

// invoke is the user clicking action on notification id.
func (r *recorder) invoke(t testing.TB, id uint32, action string) {
	t.Helper()
	if err := r.Invoke(id, action); err != nil {
		t.Fatal(err)
	}
}

// wait returns the next notification for which match is true, skipping
// others, within d.
func (r *recorder) wait(t testing.TB, d time.Duration, what string, match func(notify.Posted) bool) notify.Posted {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case n := <-r.C():
			if match(n) {
				return n
			}
		case <-deadline:
			t.Fatalf("no notification %s within %v; got %+v", what, d, r.All())
		}
	}
}

// notifyProc is `coconut notify` running as the demo user.
type notifyProc struct {
	cmd *exec.Cmd
	log string
}

func (e *env) startNotify(t testing.TB, uid uint32, bus, stateHome, browser string, args ...string) *notifyProc {
	t.Helper()
	logPath := filepath.Join(e.dir, fmt.Sprintf("notify-%d.log", time.Now().UnixNano()))
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(bins, "coconut"), append([]string{"notify", "--socket", e.sock}, args...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + e.demoHome, "DBUS_SESSION_BUS_ADDRESS=" + bus,
		"XDG_STATE_HOME=" + stateHome, "BROWSER=" + browser}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &notifyProc{cmd: cmd, log: logPath}
	t.Cleanup(func() { p.stop() })
	return p
}

func (p *notifyProc) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

func (p *notifyProc) output() string {
	b, _ := os.ReadFile(p.log)
	return strings.TrimSpace(string(b))
}
