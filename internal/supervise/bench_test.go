package supervise

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/coconut-os/coconut/internal/capability"
	"golang.org/x/sys/unix"
)

// BenchmarkOpenClose measures open()+close() of an allowed file inside an
// agent (agent-ns/op, measured by the agent itself) against the same loop
// with no filter at all (none). bare answers CONTINUE without deciding:
// the floor any supervisor pays for a trapped call on this machine
// (bare-sync with SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, as the Server runs).
// static is the static mode: the open is not trapped, a Landlock domain
// made of the bundle decides it.
//
//	go test -run XXX -bench OpenClose -benchtime 20000x ./internal/supervise/
func BenchmarkOpenClose(b *testing.B) {
	needRoot(b)
	dir, _ := filepath.EvalSymlinks(b.TempDir())
	f := dir + "/f"
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		b.Fatal(err)
	}
	loopOp := func(b *testing.B) string { return "loop:" + strconv.Itoa(b.N) + ":" + f }
	caps, _ := capability.ParseAll([]string{"fs.exec:" + self(b), "fs.read:/etc/ld.so.cache", "fs.read:/usr/lib/**", "fs.read:" + dir + "/**"})
	b.Run("none", func(b *testing.B) {
		for b.Loop() {
			fd, err := unix.Open(f, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				b.Fatal(err)
			}
			unix.Close(fd)
		}
	})
	b.Run("bare", func(b *testing.B) {
		got := runBare(b, false, loopOp(b))
		b.ReportMetric(float64(got["ns"]), "agent-ns/op")
	})
	b.Run("bare-sync", func(b *testing.B) {
		got := runBare(b, true, loopOp(b))
		b.ReportMetric(float64(got["ns"]), "agent-ns/op")
	})
	b.Run("static", func(b *testing.B) {
		// The read-only open is left to the Landlock floor (the bundle).
		loop := loopOp(b)
		got, _ := runStatic(b, newTestDecider(caps), []string{dir, "/usr/lib", "/etc/ld.so.cache", self(b)}, loop)
		if got[loop] != 0 {
			b.Fatalf("loop failed: %v", got)
		}
		b.ReportMetric(float64(got["ns"]), "agent-ns/op")
	})
	b.Run("supervised", func(b *testing.B) {
		loop := loopOp(b)
		got, _ := runAgent(b, AgentInfo{}, newTestDecider(caps), loop)
		if got[loop] != 0 {
			b.Fatalf("loop failed: %v", got)
		}
		b.ReportMetric(float64(got["ns"]), "agent-ns/op")
	})
}

// runBare runs ops under the filter with a listener that answers every
// notification CONTINUE at once, on a locked thread blocking in RECV.
func runBare(b *testing.B, sync bool, ops ...string) map[string]int {
	sup, ag := socketPair(b)
	defer sup.Close()
	var out, errb bytes.Buffer
	cmd := agentCmd(b, ag, ops...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	ag.Close()
	l, err := Receive(sup)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		fd := int(l.Fd())
		if sync {
			if err := syncWakeUp(fd); err != nil {
				b.Error(err)
			}
		}
		var n seccompNotif
		for {
			if err := recv(fd, &n); err != nil {
				if err == unix.ENOENT && !orphaned(fd) || err == unix.EINTR {
					continue
				}
				return
			}
			send(fd, n.ID, 0)
		}
	}()
	if err := Ack(sup); err != nil {
		b.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		b.Fatalf("agent: %v\n%s", err, errb.String())
	}
	<-done
	return parseProbe(b, out.String())
}

// BenchmarkUnixConnect measures a Unix connect()+close() of an allowed
// socket inside a supervised agent, its filter trapping connect
// (trapped: Options.TrapUnixConnect, the fallback for kernels without the
// guard's Unix hooks) or not (plain), as agent-ns/op.
//
//	go test -run XXX -bench UnixConnect -benchtime 5000x ./internal/supervise/
func BenchmarkUnixConnect(b *testing.B) {
	needRoot(b)
	dir, _ := filepath.EvalSymlinks(b.TempDir())
	sock := dir + "/s.sock"
	l, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	caps, _ := capability.ParseAll([]string{"fs.exec:" + self(b), "fs.read:/etc/ld.so.cache", "fs.read:/usr/lib/**"})
	for _, mode := range []string{"plain", "trapped"} {
		b.Run(mode, func(b *testing.B) {
			if mode == "trapped" {
				b.Setenv(trapUnixEnv, "1")
			}
			loop := "uloop:" + strconv.Itoa(b.N) + ":" + sock
			d := &unixOnly{testDecider: newTestDecider(caps), allow: map[string]bool{sock: true}}
			got, _ := runAgent(b, AgentInfo{}, d, loop)
			if got[loop] != 0 {
				b.Fatalf("loop failed: %v", got)
			}
			b.ReportMetric(float64(got["ns"]), "agent-ns/op")
		})
	}
}

// BenchmarkAttrCall measures chmod() of an allowed file by an agent of an
// ordinary user (agent-ns/op, measured by the agent itself): with no
// filter (none), answered CONTINUE after the decision as before the
// attribute calls were emulated (continued), and performed by the
// supervisor on the object it decided on (emulated, what runs now).
//
//	go test -run XXX -bench AttrCall -benchtime 5000x ./internal/supervise/
func BenchmarkAttrCall(b *testing.B) {
	needRoot(b)
	dir, bin := attrWorld(b)
	f := dir + "/f"
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.Chown(f, agentUID, agentGID); err != nil {
		b.Fatal(err)
	}
	caps := attrCaps(b, bin, f)
	loop := func(b *testing.B) string { return "loop:chmod:" + strconv.Itoa(b.N) + ":" + f }
	report := func(b *testing.B, out string) {
		got := parseProbe(b, out)
		ns := got["loop:chmod"]
		if ns <= 0 {
			b.Fatalf("chmod loop failed: %q", out)
		}
		b.ReportMetric(float64(ns), "agent-ns/op")
	}
	b.Run("none", func(b *testing.B) { report(b, runAttrPlain(b, bin, loop(b))) })
	b.Run("continued", func(b *testing.B) {
		// The decision without the emulation: the supervisor as it was.
		saved := emulatedCalls
		emulatedCalls = map[int32]bool{}
		defer func() { emulatedCalls = saved }()
		out, _ := runAttrAgent(b, newTestDecider(caps), bin, loop(b))
		report(b, out)
	})
	b.Run("emulated", func(b *testing.B) {
		out, s := runAttrAgent(b, newTestDecider(caps), bin, loop(b))
		report(b, out)
		if s.Counters().Emulated < uint64(b.N) {
			b.Fatalf("not emulated: %+v", s.Counters())
		}
	})
}
