package enforce

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/coconut-os/coconut/internal/bpflsm"
	"github.com/coconut-os/coconut/internal/launch"
	"github.com/coconut-os/coconut/internal/measure"
)

// TestGuestBPFLSMSpawn starts an agent the way coconutd does (inside the
// VM: TestVM): this test binary as the trampoline, busybox exec'd from a
// sealed memfd, a measured script read by the interpreter through
// /proc/self/fd/6. The bundle names no path of busybox: only the measured
// inodes let it run. A memfd the daemon did not measure is refused; a
// file deny, a connect deny, a revoke that cuts a descriptor opened
// before it, and kernel denies == events.
func TestGuestBPFLSMSpawn(t *testing.T) {
	root := testCgroupRoot(t)
	if err := bpflsm.Probe(root); err != nil {
		if os.Getenv("COCONUT_VMGUEST") == "" {
			t.Skipf("BPF LSM does not run here (kernel-notes.md; TestVM runs this in a VM): %v", err)
		}
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	e, _, err := Choose("bpf-lsm", Config{CgroupRoot: root, Self: self})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.MkdirAll(dir+"/ok", 0o755)
	os.MkdirAll(dir+"/no", 0o755)
	os.WriteFile(dir+"/ok/f", []byte("ok-line\n"), 0o644)
	os.WriteFile(dir+"/no/f", []byte("no\n"), 0o644)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	script := dir + "/agent.sh"
	os.WriteFile(script, []byte(`cd `+dir+`
echo "A:$(cat ok/f)"
cat no/f 2>&1 | sed 's/^/B:/'
nc 127.0.0.1 `+port+` </dev/null 2>&1 | sed 's/^/C:/'
exec 3<ok/f
while [ ! -e go ]; do sleep 0.1; done
cat ok/f 2>&1 | sed 's/^/D:/'
read -r line <&3 2>/dev/null; echo "E:$? $line"
`), 0o644)
	cache := measure.NewCache()
	exe, err := cache.Measure("/bin/busybox", true)
	if err != nil {
		t.Fatal(err)
	}
	scr, err := cache.Measure(script, false)
	if err != nil {
		t.Fatal(err)
	}
	agent := filepath.Join(root, "agent-spawn")
	if err := os.Mkdir(agent, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(agent)
	var st unix.Stat_t
	unix.Stat(agent, &st)
	floor, err := e.Bind(Agent{AID: 7, CgroupID: st.Ino, Caps: caps(t, "fs.read:"+dir+"/ok/**", "fs.read:"+dir+"/agent.sh"),
		// no/ is in the ceiling, so the Landlock floor lets the open
		// through and the programs decide it (ECAPABILITY, an event).
		Ceiling:  caps(t, "fs.read:"+dir+"/ok/**", "fs.read:"+dir+"/no/**", "fs.read:"+dir+"/agent.sh"),
		Measured: []MeasuredFile{{File: exe.File(), Exec: true}, {File: scr.File()}}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Unbind(7)
	c0, _ := e.Counters()
	start := func(exec, scriptF *os.File, out *os.File, argv []string) error {
		fd, err := unix.Open(agent, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		cmd, err := launch.Start(launch.Config{Self: self, CgroupFD: fd, Exec: exec, Script: scriptF, Output: out},
			launch.Spec{Argv: argv, Env: []string{"PATH=/bin"}, Dir: dir, Floor: floor})
		if err != nil {
			return err
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		if argv[1] == launch.ScriptPath {
			// Revoke once the script holds ok/f open on fd 3 and waits.
			time.Sleep(3 * time.Second)
			if err := e.Update(Agent{AID: 7, CgroupID: st.Ino, Caps: caps(t, "fs.read:"+dir+"/agent.sh")}); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(dir+"/go", nil, 0o644)
		}
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			t.Fatal("agent did not end")
		}
		return nil
	}
	logf, _ := os.Create(filepath.Join(t.TempDir(), "log"))
	defer logf.Close()
	if err := start(exe.File(), scr.File(), logf, []string{"sh", launch.ScriptPath}); err != nil {
		t.Fatalf("spawn from the measured memfd: %v", err)
	}
	b, _ := os.ReadFile(logf.Name())
	out := string(b)
	t.Logf("agent output:\n%s", out)
	for _, want := range []string{"A:ok-line", "B:", "C:", "D:", "E:1 "} {
		if !strings.Contains(out, want) {
			t.Errorf("agent output lacks %q", want)
		}
	}
	for _, tag := range []string{"B:", "C:", "D:"} {
		for _, ln := range strings.Split(out, "\n") {
			if strings.HasPrefix(ln, tag) && !strings.Contains(ln, "134") {
				t.Errorf("%s line %q: want errno 134", tag, ln)
			}
		}
	}
	// A memfd coconutd did not measure for this agent: refused at exec.
	other, err := unix.MemfdCreate("other", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	of := os.NewFile(uintptr(other), "other")
	bb, _ := os.ReadFile("/bin/busybox")
	of.Write(bb)
	of.Chmod(0o755)
	defer of.Close()
	if err := start(of, nil, logf, []string{"true", "x"}); err == nil || !strings.Contains(err.Error(), "134") {
		t.Errorf("exec of an unmeasured memfd: %v, want errno 134", err)
	}
	var evs []Event
	timeout := time.After(10 * time.Second)
	for len(evs) < 5 {
		select {
		case ev := <-e.Events():
			evs = append(evs, ev)
		case <-timeout:
			t.Fatalf("events: %+v", evs)
		}
	}
	time.Sleep(300 * time.Millisecond)
	for len(e.Events()) > 0 {
		evs = append(evs, <-e.Events())
	}
	for _, ev := range evs {
		t.Logf("%s kseq %d: %s %s %s errno %d", ev.Source, ev.Seq, ev.Syscall, ev.Cap, ev.Object, ev.Errno)
		if ev.Errno != 134 || ev.CgroupID != st.Ino {
			t.Errorf("event %+v", ev)
		}
	}
	c1, _ := e.Counters()
	if c1.KernelDenies-c0.KernelDenies != uint64(len(evs)) || c1.RingbufFull != c0.RingbufFull {
		t.Errorf("kernel denies %d, events %d", c1.KernelDenies-c0.KernelDenies, len(evs))
	}
}
