package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// busConfig is a session bus that the test (root) and the demo user may
// both connect to: the recorder runs in the test, `coconut notify` as the
// user.
const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`

// sessionBus starts a real dbus-daemon and answers its address.
func sessionBus(t testing.TB, dir string) string {
	t.Helper()
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		t.Skip("dbus-daemon is not installed (apt-get install dbus; .ci/run does)")
	}
	sock := filepath.Join(dir, "bus")
	conf := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(busConfig, sock)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("dbus-daemon", "--config-file="+conf, "--nofork", "--nopidfile")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if i > 200 {
			t.Fatal("dbus-daemon made no socket in 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	os.Chmod(sock, 0o666)
	return "unix:path=" + sock
}

// notification is one Notify call the recorder received.
type notification struct {
	at                 time.Time
	id                 uint32
	replaces           uint32
	app, summary, body string
	actions            []string
	aid, seq, first    uint64
	count              uint32
	hasHints           bool
}

// recorder owns org.freedesktop.Notifications on the bus and records every
// call: a notification server as far as any client can tell.
type recorder struct {
	conn   *dbus.Conn
	mu     sync.Mutex
	calls  []notification
	nextID uint32
	arrive chan notification
}

func newRecorder(t testing.TB, addr string) *recorder {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	r := &recorder{conn: conn, arrive: make(chan notification, 4096)}
	if err := conn.Export(r, "/org/freedesktop/Notifications", "org.freedesktop.Notifications"); err != nil {
		t.Fatal(err)
	}
	reply, err := conn.RequestName("org.freedesktop.Notifications", dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own org.freedesktop.Notifications: %v %v", reply, err)
	}
	return r
}

func hint[T any](h map[string]dbus.Variant, k string) (T, bool) {
	var zero T
	v, ok := h[k]
	if !ok {
		return zero, false
	}
	x, ok := v.Value().(T)
	return x, ok
}

// Notify is the freedesktop.org call.
func (r *recorder) Notify(app string, replaces uint32, icon, summary, body string, actions []string, hints map[string]dbus.Variant, expire int32) (uint32, *dbus.Error) {
	n := notification{at: time.Now(), replaces: replaces, app: app, summary: summary, body: body, actions: actions}
	var ok1, ok2, ok3, ok4 bool
	n.aid, ok1 = hint[uint64](hints, "x-coconut-aid")
	n.seq, ok2 = hint[uint64](hints, "x-coconut-seq")
	n.first, ok3 = hint[uint64](hints, "x-coconut-first")
	n.count, ok4 = hint[uint32](hints, "x-coconut-count")
	n.hasHints = ok1 && ok2 && ok3 && ok4
	r.mu.Lock()
	if replaces != 0 {
		n.id = replaces
	} else {
		r.nextID++
		n.id = r.nextID
	}
	r.calls = append(r.calls, n)
	r.mu.Unlock()
	r.arrive <- n
	return n.id, nil
}

func (r *recorder) GetCapabilities() ([]string, *dbus.Error) {
	return []string{"actions", "body", "body-markup"}, nil
}

func (r *recorder) GetServerInformation() (string, string, string, string, *dbus.Error) {
	return "coconut-test-recorder", "coconut", "1", "1.2", nil
}

func (r *recorder) CloseNotification(id uint32) *dbus.Error { return nil }

// invoke is the user clicking action on notification id.
func (r *recorder) invoke(t testing.TB, id uint32, action string) {
	t.Helper()
	if err := r.conn.Emit("/org/freedesktop/Notifications", "org.freedesktop.Notifications.ActionInvoked", id, action); err != nil {
		t.Fatal(err)
	}
}

// wait returns the next notification for which match is true, skipping
// others, within d.
func (r *recorder) wait(t testing.TB, d time.Duration, what string, match func(notification) bool) notification {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case n := <-r.arrive:
			if match(n) {
				return n
			}
		case <-deadline:
			t.Fatalf("no notification %s within %v; got %+v", what, d, r.all())
		}
	}
}

func (r *recorder) all() []notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]notification(nil), r.calls...)
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
