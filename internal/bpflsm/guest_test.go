package bpflsm

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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
	// The write of deny/g (O_CREAT) is refused where the file would be
	// made (path_mknod), before any open: nothing is created.
	want := map[uint16]int{OpOpen: 2, OpMknod: 1, OpExec: 1, OpKill: 1, OpPtrace: 1, OpBPF: 1, OpMount: 1}
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

// TestGuestPaths: each path hook, an allowed and a refused case. Making,
// removing, renaming and linking names, truncation, mode, owner and
// extended attributes need fs.write on the path (both names for rename
// and link); each refusal is an event with the path and its kernel
// sequence number, and the counters equal the events.
func TestGuestPaths(t *testing.T) {
	g := openGuard(t, "")
	defer g.Close()
	if c := g.Coverage(); !c.MakeRemove || !c.Truncate || !c.Attrs {
		t.Fatalf("path hooks not all attached: %s", c)
	}
	base := t.TempDir()
	for _, d := range []string{"ro", "rw", "ro/sub", "rw/sub"} {
		os.MkdirAll(filepath.Join(base, d), 0o755)
	}
	for _, f := range []string{"ro/f", "ro/g", "rw/f", "rw/g", "rw/h"} {
		os.WriteFile(filepath.Join(base, f), []byte("data"), 0o644)
	}
	for _, f := range []string{"ro/f", "rw/f"} {
		if err := unix.Setxattr(filepath.Join(base, f), "trusted.coconut", []byte("x"), 0); err != nil {
			t.Fatal(err)
		}
	}
	self, _ := os.Executable()
	agent, cg := mkCgroup(t, "paths")
	other, _ := mkCgroup(t, "paths-other")
	bindCaps(t, g, cg, "fs.read:"+base+"/ro/**", "fs.write:"+base+"/rw/**", "fs.exec:"+self)
	d0, _, _ := g.Counters()
	ro, rw := base+"/ro", base+"/rw"
	ops := []struct {
		op   string
		want string
		ev   uint16 // the event's op for a refusal
		path string // the path the event names
	}{
		{"mkdir " + rw + "/d", "ok", 0, ""},
		{"mkdir " + ro + "/d", "errno=134", OpMkdir, ro + "/d"},
		{"rmdir " + rw + "/d", "ok", 0, ""},
		{"rmdir " + ro + "/sub", "errno=134", OpRmdir, ro + "/sub"},
		{"mkfifo " + rw + "/p", "ok", 0, ""},
		{"mkfifo " + ro + "/p", "errno=134", OpMknod, ro + "/p"},
		{"creat " + rw + "/c", "ok", 0, ""},
		{"creat " + ro + "/c", "errno=134", OpMknod, ro + "/c"},
		{"symlink " + rw + "/l", "ok", 0, ""},
		{"symlink " + ro + "/l", "errno=134", OpSymlink, ro + "/l"},
		{"link " + rw + "/f " + rw + "/f2", "ok", 0, ""},
		{"link " + rw + "/f " + ro + "/f2", "errno=134", OpLink, ro + "/f2"},
		{"link " + ro + "/f " + rw + "/f3", "errno=134", OpLink, ro + "/f"},
		{"rename " + rw + "/f2 " + rw + "/f4", "ok", 0, ""},
		{"rename " + rw + "/f4 " + ro + "/f4", "errno=134", OpRename, ro + "/f4"},
		{"rename " + ro + "/g " + rw + "/g2", "errno=134", OpRename, ro + "/g"},
		{"unlink " + rw + "/f4", "ok", 0, ""},
		{"unlink " + ro + "/g", "errno=134", OpUnlink, ro + "/g"},
		{"truncate " + rw + "/g", "ok", 0, ""},
		{"truncate " + ro + "/f", "errno=134", OpTruncate, ro + "/f"},
		{"rotrunc " + rw + "/g", "ok", 0, ""},
		{"rotrunc " + ro + "/f", "errno=134", OpTruncate, ro + "/f"},
		{"chmod " + rw + "/f", "ok", 0, ""},
		{"chmod " + ro + "/f", "errno=134", OpChmod, ro + "/f"},
		{"chown " + rw + "/f", "ok", 0, ""},
		{"chown " + ro + "/f", "errno=134", OpChown, ro + "/f"},
		{"setxattr " + rw + "/f", "ok", 0, ""},
		{"setxattr " + ro + "/f", "errno=134", OpSetxattr, ro + "/f"},
		{"removexattr " + rw + "/f", "ok", 0, ""},
		{"removexattr " + ro + "/f", "errno=134", OpRemovexattr, ro + "/f"},
	}
	var args, want []string
	var refused []int
	for i, o := range ops {
		args, want = append(args, o.op), append(want, o.want)
		if o.ev != 0 {
			refused = append(refused, i)
		}
	}
	expect(t, "agent", run(t, agent, args...), want...)
	// Not an agent: every refused operation passes (fresh names).
	expect(t, "non-agent", run(t, other, "mkdir "+ro+"/od", "mkfifo "+ro+"/op", "symlink "+ro+"/ol", "link "+ro+"/f "+ro+"/of",
		"rename "+ro+"/of "+ro+"/og", "unlink "+ro+"/og", "truncate "+ro+"/f", "chmod "+ro+"/f", "setxattr "+ro+"/f"),
		"ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok")
	evs := collect(t, g, len(refused))
	checkSeqs(t, g, d0, evs)
	for j, i := range refused {
		ev, o := evs[j], ops[i]
		if ev.Op != o.ev || ev.Path != o.path || ev.Cap() != "fs.write" || ev.Reason != WhyNoRule || ev.CgroupID != cg {
			t.Errorf("%s: event %s %s (op %d, %s), want op %s on %s", o.op, ev.Cap(), ev.Object(), ev.Op, ev.Why(), opNames[o.ev], o.path)
		}
	}
}

// TestGuestPathsRevoked: a revoke finer than the bundle's write scope
// holds against renames and hard links that would carry a file out of the
// revoked tree (the review's finding: file_open decides by path, so a new
// name would have been a way around it), and a held writable descriptor
// can no longer truncate.
func TestGuestPathsRevoked(t *testing.T) {
	g := openGuard(t, "")
	defer g.Close()
	base := t.TempDir()
	for _, d := range []string{"a", "b"} {
		os.MkdirAll(filepath.Join(base, d), 0o755)
	}
	for _, f := range []string{"b/x", "b/y", "b/held"} {
		os.WriteFile(filepath.Join(base, f), []byte("secret"), 0o644)
	}
	self, _ := os.Executable()
	agent, cg := mkCgroup(t, "paths-revoked")
	bindCaps(t, g, cg, "fs.write:"+base+"/a/**", "fs.write:"+base+"/b/**", "fs.exec:"+self)
	d0, _, _ := g.Counters()
	a, b := base+"/a", base+"/b"
	h := startHelper(t, agent, "rename "+b+"/x "+a+"/x", "holdw "+b+"/held", "wait",
		"rename "+b+"/y "+a+"/y", "link "+b+"/y "+a+"/z", "read "+b+"/y", "ftruncheld "+b+"/held", "read "+a+"/x")
	for _, want := range []string{"ok", "ok"} {
		if l := h.line(t); l != want {
			t.Fatalf("before the revoke: %s, want %s", l, want)
		}
	}
	bindCaps(t, g, cg, "fs.write:"+base+"/a/**", "fs.exec:"+self) // b revoked
	h.in.Write([]byte("go\n"))
	for _, want := range []string{"ok", "errno=134", "errno=134", "errno=134", "errno=134", "ok"} {
		if l := h.line(t); l != want {
			t.Fatalf("after the revoke: %s, want %s", l, want)
		}
	}
	evs := collect(t, g, 4)
	checkSeqs(t, g, d0, evs)
	wantOps := []uint16{OpRename, OpLink, OpOpen, OpTruncate}
	for i, ev := range evs {
		if ev.Op != wantOps[i] || !strings.HasPrefix(ev.Path, b+"/") {
			t.Errorf("event %d: %s %s, want op %s under %s", i, ev.Cap(), ev.Object(), opNames[wantOps[i]], b)
		}
	}
	if _, err := os.Stat(a + "/y"); err == nil {
		t.Error("the revoked file was renamed into the writable tree")
	}
}

// TestGuestPathTooLong: a path the walk cannot hold (more than 252 bytes
// with its NUL) is a deny with its own reason, never an allow, even under
// a write scope that covers it.
func TestGuestPathTooLong(t *testing.T) {
	g := openGuard(t, "")
	defer g.Close()
	base := t.TempDir()
	long := base + "/rw"
	for i := 0; i < 4; i++ {
		long += "/" + strings.Repeat(string(rune('a'+i)), 60)
	}
	if err := os.MkdirAll(long, 0o755); err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	agent, cg := mkCgroup(t, "paths-long")
	other, _ := mkCgroup(t, "paths-long-other")
	bindCaps(t, g, cg, "fs.write:"+base+"/rw/**", "fs.exec:"+self)
	d0, _, _ := g.Counters()
	expect(t, "agent", run(t, agent, "mkdir "+base+"/rw/short", "mkdir "+long+"/d"), "ok", "errno=134")
	expect(t, "non-agent", run(t, other, "mkdir "+long+"/d"), "ok")
	ev := collect(t, g, 1)[0]
	checkSeqs(t, g, d0, []Event{ev})
	if ev.Op != OpMkdir || ev.Reason != WhyPathTooLong || ev.Cap() != "fs.write" {
		t.Fatalf("event %+v (%s), want mkdir, path too long", ev, ev.Object())
	}
}
