package notify

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
)

// This file is a notification server that records instead of drawing,
// and a private session bus to run it on: the instruments of
// `coconut bench notify` and of the tests, which see exactly what a
// desktop's notification daemon would be sent.

// Posted is one Notify call a Recorder received.
type Posted struct {
	At                 time.Time
	ID, Replaces       uint32
	App, Summary, Body string
	Actions            []string
	// The x-coconut-* hints; HasHints is false when any is missing.
	AID, Seq, First uint64
	Count           uint32
	HasHints        bool
}

// Recorder owns org.freedesktop.Notifications on a bus and records every
// Notify call.
type Recorder struct {
	conn   *dbus.Conn
	mu     sync.Mutex
	calls  []Posted
	nextID uint32
	c      chan Posted
}

// NewRecorder connects to the bus at addr and takes the notification
// server's name.
func NewRecorder(addr string) (*Recorder, error) {
	conn, err := dbus.Connect(addr)
	if err != nil {
		return nil, err
	}
	r := &Recorder{conn: conn, c: make(chan Posted, 1<<14)}
	if err := conn.Export(recorderMethods{r}, busPath, busIface); err != nil {
		conn.Close()
		return nil, err
	}
	reply, err := conn.RequestName(busName, dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		conn.Close()
		return nil, fmt.Errorf("own %s: reply %v, %v", busName, reply, err)
	}
	return r, nil
}

// C delivers each call as it arrives (calls beyond its buffer are still
// in All).
func (r *Recorder) C() <-chan Posted { return r.c }

// All is every call so far.
func (r *Recorder) All() []Posted {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Posted(nil), r.calls...)
}

// Invoke is the user choosing action on notification id.
func (r *Recorder) Invoke(id uint32, action string) error {
	return r.conn.Emit(busPath, busIface+".ActionInvoked", id, action)
}

// Close leaves the bus.
func (r *Recorder) Close() error { return r.conn.Close() }

// recorderMethods are the D-Bus methods (kept off Recorder so that its own
// methods are not exported on the bus).
type recorderMethods struct{ r *Recorder }

func variant[T any](h map[string]dbus.Variant, k string) (T, bool) {
	var zero T
	v, ok := h[k]
	if !ok {
		return zero, false
	}
	x, ok := v.Value().(T)
	return x, ok
}

func (m recorderMethods) Notify(app string, replaces uint32, icon, summary, body string, actions []string, hints map[string]dbus.Variant, expire int32) (uint32, *dbus.Error) {
	p := Posted{At: time.Now(), Replaces: replaces, App: app, Summary: summary, Body: body, Actions: actions}
	var ok [4]bool
	p.AID, ok[0] = variant[uint64](hints, hintAID)
	p.Seq, ok[1] = variant[uint64](hints, hintSeq)
	p.First, ok[2] = variant[uint64](hints, hintFirst)
	p.Count, ok[3] = variant[uint32](hints, hintCount)
	p.HasHints = ok == [4]bool{true, true, true, true}
	r := m.r
	r.mu.Lock()
	if replaces != 0 {
		p.ID = replaces
	} else {
		r.nextID++
		p.ID = r.nextID
	}
	r.calls = append(r.calls, p)
	r.mu.Unlock()
	select {
	case r.c <- p:
	default:
	}
	return p.ID, nil
}

func (m recorderMethods) GetCapabilities() ([]string, *dbus.Error) {
	return []string{"actions", "body", "body-markup"}, nil
}

func (m recorderMethods) GetServerInformation() (string, string, string, string, *dbus.Error) {
	return "coconut-recorder", "coconut", "1", "1.2", nil
}

func (m recorderMethods) CloseNotification(id uint32) *dbus.Error { return nil }

// busConfig is a session bus every local user may connect to (the
// recorder may run as root, `coconut notify` as a user).
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

// Bus is a private dbus-daemon.
type Bus struct {
	Addr string // for DBUS_SESSION_BUS_ADDRESS
	cmd  *exec.Cmd
}

// ErrNoDBusDaemon means dbus-daemon is not installed.
var ErrNoDBusDaemon = fmt.Errorf("dbus-daemon is not installed (Debian: apt-get install dbus-daemon)")

// StartBus runs dbus-daemon with its socket and config in dir.
func StartBus(dir string) (*Bus, error) {
	bin, err := exec.LookPath("dbus-daemon")
	if err != nil {
		return nil, ErrNoDBusDaemon
	}
	sock, conf := filepath.Join(dir, "bus"), filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, busConfig, sock), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--config-file="+conf, "--nofork", "--nopidfile")
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	b := &Bus{Addr: "unix:path=" + sock, cmd: cmd}
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if i > 200 {
			b.Stop()
			return nil, fmt.Errorf("dbus-daemon made no socket in 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	os.Chmod(sock, 0o666)
	return b, nil
}

// Stop ends the daemon.
func (b *Bus) Stop() {
	b.cmd.Process.Kill()
	b.cmd.Wait()
}
