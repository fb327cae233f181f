package bpflsm

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/testutil"
)

// openGuard loads the programs, or skips on a kernel that refuses BPF LSM
// (this project's hosts: kernel-notes.md) outside the VM. Inside the VM
// (TestVM) nothing may skip.
func openGuard(t *testing.T, pinDir string) *Guard {
	t.Helper()
	testutil.RequireRoot(t, "to load BPF LSM programs")
	g, err := Open(pinDir)
	if err != nil {
		if errors.Is(err, ErrRefused) && os.Getenv(guestEnv) == "" {
			t.Skipf("BPF LSM refused on this kernel (kernel-notes.md); TestVM runs this inside a VM: %v", err)
		}
		t.Fatal(err)
	}
	if err := Active(); err != nil {
		g.Close()
		if os.Getenv(guestEnv) == "" {
			t.Skipf("BPF LSM not active: %v", err)
		}
		t.Fatal(err)
	}
	return g
}

// testBaseline is what the helper (a static Go binary) needs to start.
var testBaseline = Baseline{Read: []string{"/proc", "/sys", "/dev/urandom"}, Write: []string{"/dev/null"}}

func mustCaps(t *testing.T, ss ...string) []capability.Cap {
	t.Helper()
	caps, err := capability.ParseAll(ss)
	if err != nil {
		t.Fatal(err)
	}
	return caps
}

func bindCaps(t *testing.T, g *Guard, cg uint64, ss ...string) {
	t.Helper()
	pol, err := Compile(mustCaps(t, ss...), testBaseline)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Bind(cg, pol); err != nil {
		t.Fatal(err)
	}
}

// collect reads events until want have arrived or a timeout.
func collect(t *testing.T, g *Guard, want int) []Event {
	t.Helper()
	var evs []Event
	deadline := time.After(10 * time.Second)
	for len(evs) < want {
		select {
		case ev := <-g.Events():
			evs = append(evs, ev)
		case <-deadline:
			t.Fatalf("%d events of %d arrived: %+v", len(evs), want, evs)
		}
	}
	return evs
}

func expect(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

func TestGuestEnforcement(t *testing.T) {
	g := openGuard(t, "")
	defer g.Close()
	base := t.TempDir()
	for _, d := range []string{"ro", "rw", "deny"} {
		os.MkdirAll(filepath.Join(base, d), 0o755)
		os.WriteFile(filepath.Join(base, d, "f"), []byte("data"), 0o644)
	}
	self, _ := os.Executable()
	agent, cg := mkCgroup(t, "agent")
	other, _ := mkCgroup(t, "other")
	// /bin readable: exec of /bin/true passes file_open and is refused by
	// bprm_check_security (no fs.exec).
	bindCaps(t, g, cg, "fs.read:"+base+"/ro/**", "fs.write:"+base+"/rw/**", "fs.exec:"+self, "fs.read:/bin/**")
	d0, _, _ := g.Counters()

	outsider := os.Getpid()
	got := run(t, agent,
		"read "+base+"/ro/f", "read "+base+"/rw/f", "write "+base+"/rw/g", "read "+base+"/deny/f",
		"write "+base+"/ro/f", "write "+base+"/deny/g",
		"exec /bin/true", "kill "+strconv.Itoa(outsider), "ptrace "+strconv.Itoa(outsider), "bpf", "mount "+base+"/rw")
	expect(t, "agent", got,
		"ok", "ok", "ok", "errno=134",
		"errno=134", "errno=134",
		"errno=134", "errno=134", "errno=134", "errno=134", "errno=134")
	// The same operations from a cgroup that is not an agent's.
	got = run(t, other, "read "+base+"/deny/f", "write "+base+"/deny/g", "exec /bin/true")
	expect(t, "non-agent", got, "ok", "ok", "ok")

	d1, _, _ := g.Counters()
	evs := collect(t, g, int(d1-d0))
	for _, ev := range evs {
		t.Logf("deny seq %d: %s %s (%s)", ev.Seq, ev.Cap(), ev.Object(), ev.Why())
	}
	checkSeqs(t, g, d0, evs)
	ops := map[uint16]int{}
	for _, ev := range evs {
		if ev.CgroupID != cg {
			t.Errorf("event of cgroup %d, want %d: %+v", ev.CgroupID, cg, ev)
		}
		ops[ev.Op]++
	}
	want := map[uint16]int{OpOpen: 3, OpExec: 1, OpKill: 1, OpPtrace: 1, OpBPF: 1, OpMount: 1}
	for op, n := range want {
		if ops[op] != n {
			t.Errorf("%d events of op %s, want %d (%v)", ops[op], opNames[op], n, evs)
		}
	}
	if evs[0].Path != base+"/deny/f" || evs[0].Cap() != "fs.read" {
		t.Errorf("first event: %+v (%s)", evs[0], evs[0].Object())
	}
}

// checkSeqs: the events carry consecutive kernel sequence numbers after
// d0, and the kernel's deny counter equals the events seen (none lost).
func checkSeqs(t *testing.T, g *Guard, d0 uint64, evs []Event) {
	t.Helper()
	for i, ev := range evs {
		if ev.Seq != d0+uint64(i)+1 {
			t.Fatalf("event %d has seq %d, want %d", i, ev.Seq, d0+uint64(i)+1)
		}
	}
	d, full, err := g.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if d-d0 != uint64(len(evs)) || full != 0 {
		t.Fatalf("kernel denies %d (ringbuf_full %d), events %d", d-d0, full, len(evs))
	}
}

// TestGuestRevokeOpenDescriptor: a descriptor opened under a rule is cut
// by the update that revokes the rule, without stopping the agent.
func TestGuestRevokeOpenDescriptor(t *testing.T) {
	g := openGuard(t, "")
	defer g.Close()
	base := t.TempDir()
	os.MkdirAll(base+"/ro", 0o755)
	os.WriteFile(base+"/ro/f", []byte("data"), 0o644)
	self, _ := os.Executable()
	agent, cg := mkCgroup(t, "revoke")
	bindCaps(t, g, cg, "fs.read:"+base+"/ro/**", "fs.exec:"+self)
	d0, _, _ := g.Counters()
	h := startHelper(t, agent, "hold "+base+"/ro/f", "holdread "+base+"/ro/f", "wait", "holdread "+base+"/ro/f", "read "+base+"/ro/f")
	if l := h.line(t); l != "ok" {
		t.Fatalf("hold: %s", l)
	}
	if l := h.line(t); l != "ok" {
		t.Fatalf("read before revoke: %s", l)
	}
	bindCaps(t, g, cg, "fs.exec:"+self) // the revoke
	h.in.Write([]byte("go\n"))
	if l := h.line(t); l != "ok" {
		t.Fatalf("wait: %s", l)
	}
	if l := h.line(t); l != "errno=134" {
		t.Fatalf("read on the held descriptor after the revoke: %s, want errno=134", l)
	}
	if l := h.line(t); l != "errno=134" {
		t.Fatalf("open after the revoke: %s, want errno=134", l)
	}
	evs := collect(t, g, 2)
	checkSeqs(t, g, d0, evs)
	if evs[0].Op != OpRead || evs[1].Op != OpOpen {
		t.Fatalf("events: %+v", evs)
	}
}

// TestGuestPinned: pinned programs keep enforcing after the loader is
// closed (the daemon died), and a second Open takes the pins over.
func TestGuestPinned(t *testing.T) {
	pins := filepath.Join("/sys/fs/bpf", "coconut-bpflsm-test")
	os.RemoveAll(pins)
	g := openGuard(t, pins)
	defer Uninstall(pins)
	base := t.TempDir()
	os.MkdirAll(base+"/deny", 0o755)
	os.WriteFile(base+"/deny/f", []byte("x"), 0o644)
	self, _ := os.Executable()
	agent, cg := mkCgroup(t, "pinned")
	bindCaps(t, g, cg, "fs.exec:"+self)
	g.Close()
	expect(t, "with no loader", run(t, agent, "read "+base+"/deny/f"), "errno=134")
	g2, err := Open(pins)
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Close()
	// The deny made while no loader ran waits in the pinned ring.
	ev := collect(t, g2, 1)[0]
	if ev.Path != base+"/deny/f" {
		t.Fatalf("event from the pinned ring: %+v", ev)
	}
}

// TestGuestProbe: the selection self-test passes where BPF LSM runs.
func TestGuestProbe(t *testing.T) {
	if os.Getenv(guestEnv) == "" {
		t.Skip("host: TestProbeRefusedHere checks this kernel")
	}
	root, _ := mkCgroup(t, "probe-root")
	if err := Probe(root); err != nil {
		t.Fatal(err)
	}
}

// TestGuestUnix: Unix socket connects and sends with an address outside
// the agent's net.connect:unix: allowlist are refused (fd passing stays
// closed on 6.1, which has no Unix socket cgroup hooks).
func TestGuestUnix(t *testing.T) {
	g := openGuard(t, "")
	defer g.Close()
	base := t.TempDir()
	self, _ := os.Executable()
	for _, n := range []string{"ok.sock", "no.sock"} {
		l, err := net.Listen("unix", filepath.Join(base, n))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
	}
	for _, n := range []string{"ok.dgram", "no.dgram"} {
		c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(base, n), Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	abs, err := net.Listen("unix", "@coconut-bpflsm-test")
	if err != nil {
		t.Fatal(err)
	}
	defer abs.Close()
	agent, cg := mkCgroup(t, "unix")
	bindCaps(t, g, cg, "fs.exec:"+self, "net.connect:unix:"+base+"/ok.sock", "net.connect:unix:"+base+"/ok.dgram")
	d0, _, _ := g.Counters()
	got := run(t, agent, "unix "+base+"/ok.sock", "unix "+base+"/no.sock", "unix @coconut-bpflsm-test",
		"unixdgram "+base+"/ok.dgram", "unixdgram "+base+"/no.dgram")
	expect(t, "unix", got, "ok", "errno=134", "errno=134", "ok", "errno=134")
	evs := collect(t, g, 3)
	checkSeqs(t, g, d0, evs)
	want := []string{"unix " + base + "/no.sock", "unix @coconut-bpflsm-test", "unix " + base + "/no.dgram"}
	for i, ev := range evs {
		if ev.Object() != want[i] || ev.Cap() != "net.connect" {
			t.Errorf("event %d: %s %s, want net.connect %s", i, ev.Cap(), ev.Object(), want[i])
		}
	}
}

// TestGuestMmapExec: mapping a file as code needs fs.exec (or the
// baseline's libraries), at mmap and at mprotect: a merely readable file
// cannot be dlopen'ed or LD_PRELOADed.
func TestGuestMmapExec(t *testing.T) {
	g := openGuard(t, "")
	defer g.Close()
	base := t.TempDir()
	os.MkdirAll(base+"/ro", 0o755)
	os.MkdirAll(base+"/x", 0o755)
	page := make([]byte, 4096)
	os.WriteFile(base+"/ro/lib.so", page, 0o644)
	os.WriteFile(base+"/x/lib.so", page, 0o644)
	self, _ := os.Executable()
	agent, cg := mkCgroup(t, "mmap")
	other, _ := mkCgroup(t, "mmap-other")
	bindCaps(t, g, cg, "fs.exec:"+self, "fs.read:"+base+"/ro/**", "fs.exec:"+base+"/x/lib.so")
	d0, _, _ := g.Counters()
	got := run(t, agent, "mmapx "+base+"/ro/lib.so", "mmapx "+base+"/x/lib.so", "mprotectx "+base+"/ro/lib.so", "mprotectx "+base+"/x/lib.so")
	expect(t, "agent", got, "errno=134", "ok", "errno=134", "ok")
	expect(t, "non-agent", run(t, other, "mmapx "+base+"/ro/lib.so", "mprotectx "+base+"/ro/lib.so"), "ok", "ok")
	evs := collect(t, g, 2)
	checkSeqs(t, g, d0, evs)
	for _, ev := range evs {
		if ev.Op != OpMmapExec || ev.Path != base+"/ro/lib.so" || ev.Cap() != "fs.exec" {
			t.Errorf("event %+v", ev)
		}
	}
}

// TestGuestUserns: an agent cannot create a user namespace (busybox
// unshare: single-threaded, as unshare(CLONE_NEWUSER) requires).
func TestGuestUserns(t *testing.T) {
	g := openGuard(t, "")
	defer g.Close()
	self, _ := os.Executable()
	agent, cg := mkCgroup(t, "userns")
	other, _ := mkCgroup(t, "userns-other")
	bindCaps(t, g, cg, "fs.exec:"+self, "fs.exec:/bin/busybox")
	d0, _, _ := g.Counters()
	expect(t, "agent", run(t, agent, "exec /bin/busybox unshare -U /bin/busybox true"), "error exit status 1")
	expect(t, "non-agent", run(t, other, "exec /bin/busybox unshare -U /bin/busybox true"), "ok")
	ev := collect(t, g, 1)[0]
	checkSeqs(t, g, d0, []Event{ev})
	if ev.Op != OpUserns || ev.Cap() != "sys.namespace" {
		t.Fatalf("event %+v", ev)
	}
}
