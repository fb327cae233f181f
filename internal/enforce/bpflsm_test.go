package enforce

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/coconut-os/coconut/internal/bpflsm"
	"github.com/coconut-os/coconut/internal/testutil"
)

// testCgroupRoot makes a coconut-like subtree in the unified hierarchy.
func testCgroupRoot(t *testing.T) string {
	t.Helper()
	testutil.RequireRoot(t, "to load BPF LSM programs")
	mount := ""
	for _, m := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		if _, err := os.Stat(filepath.Join(m, "cgroup.procs")); err == nil {
			if _, err := os.Stat(filepath.Join(m, "cgroup.subtree_control")); err == nil {
				mount = m
				break
			}
		}
	}
	if mount == "" {
		t.Skip("no cgroup2 hierarchy")
	}
	dir := filepath.Join(mount, "coconut-enforce-bpflsm-test")
	os.Remove(dir)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Uninstall(dir); os.Remove(dir) })
	return dir
}

// TestChooseBPFLSMHere: on a kernel where BPF LSM programs do not fire
// (this project's hosts refuse trampolines with EPERM) --enforcer bpf-lsm
// is an error naming the reason and how to enable it, and auto falls back
// to portable saying why; where they fire (the VM), bpf-lsm is chosen.
func TestChooseBPFLSMHere(t *testing.T) {
	root := testCgroupRoot(t)
	probe := bpflsm.Probe(root)
	e, why, err := Choose("bpf-lsm", Config{CgroupRoot: root})
	if probe == nil {
		if err != nil {
			t.Fatalf("the probe passed but bpf-lsm did not load: %v", err)
		}
		defer e.Close()
		if e.Name() != "bpf-lsm" {
			t.Fatalf("backend %s", e.Name())
		}
		return
	}
	if err == nil {
		e.Close()
		t.Fatalf("bpf-lsm loaded although the probe failed (%v): %s", probe, why)
	}
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "lsm=") {
		t.Fatalf("bpf-lsm refusal: %v (want ErrUnavailable naming lsm=)", err)
	}
	t.Logf("--enforcer bpf-lsm: %v", err)
	e, why, err = Choose("auto", Config{CgroupRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.Name() != "portable" || !strings.Contains(why, "bpf-lsm: ") || !strings.Contains(why, "lsm=") {
		t.Fatalf("auto: %s: %s", e.Name(), why)
	}
	t.Logf("--enforcer auto: %s", why)
}

// TestGuestBPFLSMAgent binds an agent through the bpf-lsm backend (inside
// the VM: TestVM) and checks a file deny, a connect deny by the network
// guard and a revoke, as events with kernel sequence numbers that add up
// to the backend's counters. It runs busybox, which the guest has.
func TestGuestBPFLSMAgent(t *testing.T) {
	root := testCgroupRoot(t)
	if err := bpflsm.Probe(root); err != nil {
		if os.Getenv("COCONUT_VMGUEST") == "" {
			t.Skipf("BPF LSM does not run here (kernel-notes.md; TestVM runs this in a VM): %v", err)
		}
		t.Fatal(err)
	}
	// auto takes bpf-lsm where the self-test fires, and says so.
	a, awhy, err := Choose("auto", Config{CgroupRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	if a.Name() != "bpf-lsm" || !strings.Contains(awhy, "self-test passed") {
		t.Fatalf("auto on a BPF LSM kernel: %s: %s", a.Name(), awhy)
	}
	a.Close() // its pins stay: bpf-lsm by name reopens them, as a restart does
	e, why, err := Choose("bpf-lsm", Config{CgroupRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.Name() != "bpf-lsm" {
		t.Fatalf("bpf-lsm by name: %s: %s", e.Name(), why)
	}
	t.Logf("bpf-lsm: %s", why)
	dir := t.TempDir()
	os.MkdirAll(dir+"/ok", 0o755)
	os.MkdirAll(dir+"/no", 0o755)
	os.WriteFile(dir+"/ok/f", []byte("ok\n"), 0o644)
	os.WriteFile(dir+"/no/f", []byte("no\n"), 0o644)
	agent := filepath.Join(root, "agent-1")
	if err := os.Mkdir(agent, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(agent)
	var st unix.Stat_t
	unix.Stat(agent, &st)
	c := caps(t, "fs.exec:/bin/busybox", "fs.read:"+dir+"/ok/**")
	if _, err := e.Bind(Agent{AID: 1, CgroupID: st.Ino, Caps: c}); err != nil {
		t.Fatal(err)
	}
	defer e.Unbind(1)
	// A glob inside a component cannot be expressed: refused, not widened.
	if _, err := e.Bind(Agent{AID: 2, CgroupID: st.Ino + 1, Caps: caps(t, "fs.read:/home/*/x")}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("bind with fs.read:/home/*/x: %v, want a refusal", err)
	}
	c0, _ := e.Counters()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	in := func(args ...string) string {
		fd, err := unix.Open(agent, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		cmd := exec.Command("/bin/busybox", args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
		out, _ := cmd.CombinedOutput()
		return strings.TrimSpace(string(out))
	}
	if out := in("cat", dir+"/ok/f"); out != "ok" {
		t.Fatalf("cat ok/f: %q", out)
	}
	if out := in("cat", dir+"/no/f"); !strings.Contains(out, "134") {
		t.Fatalf("cat no/f: %q, want errno 134", out)
	}
	if out := in("nc", "127.0.0.1", port); !strings.Contains(out, "134") {
		t.Fatalf("nc 127.0.0.1:%s: %q, want errno 134", port, out)
	}
	// The revoke: ok/ is gone from the bundle.
	if err := e.Update(Agent{AID: 1, CgroupID: st.Ino, Caps: caps(t, "fs.exec:/bin/busybox")}); err != nil {
		t.Fatal(err)
	}
	if out := in("cat", dir+"/ok/f"); !strings.Contains(out, "134") {
		t.Fatalf("cat ok/f after the revoke: %q, want errno 134", out)
	}
	var evs []Event
	timeout := time.After(10 * time.Second)
	for len(evs) < 3 {
		select {
		case ev := <-e.Events():
			evs = append(evs, ev)
		case <-timeout:
			t.Fatalf("events: %+v", evs)
		}
	}
	sources := map[string]int{}
	for _, ev := range evs {
		t.Logf("%s kseq %d: %s %s errno %d", ev.Source, ev.Seq, ev.Cap, ev.Object, ev.Errno)
		sources[ev.Source]++
		if ev.Errno != 134 || ev.CgroupID != st.Ino {
			t.Errorf("event %+v", ev)
		}
	}
	if sources["bpf-lsm"] != 2 || sources["netguard"] != 1 {
		t.Errorf("sources %v, want 2 bpf-lsm and 1 netguard", sources)
	}
	c1, _ := e.Counters()
	if c1.KernelDenies-c0.KernelDenies != uint64(len(evs)) || c1.RingbufFull != c0.RingbufFull {
		t.Errorf("kernel denies %d, events %d", c1.KernelDenies-c0.KernelDenies, len(evs))
	}
}
