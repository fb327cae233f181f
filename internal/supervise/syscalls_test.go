package supervise

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// sysProbeEnv makes the re-executed test binary call each number given
// as an argument and print "NR ERRNO" (TestSyscallTableComplete).
const sysProbeEnv = "COCONUT_SUPERVISE_SYSPROBE"

func init() {
	if os.Getenv(sysProbeEnv) == "" {
		return
	}
	// Every argument -1: no valid descriptor, pointer, pid or flag, so a
	// call that exists fails on its arguments (EBADF, EFAULT, EINVAL…)
	// and one that does not fails with ENOSYS.
	const bad = ^uintptr(0)
	// And no capability left, should a new call do something after all.
	runtime.LockOSThread()
	var none [2]unix.CapUserData
	if err := unix.Capset(&unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}, &none[0]); err != nil {
		os.Exit(3)
	}
	out := bufio.NewWriter(os.Stdout)
	for _, a := range os.Args[1:] {
		nr, err := strconv.Atoi(a)
		if err != nil {
			os.Exit(2)
		}
		_, _, e := unix.RawSyscall6(uintptr(nr), bad, bad, bad, bad, bad, bad)
		fmt.Fprintf(out, "%d %d\n", nr, int(e))
	}
	out.Flush()
	os.Exit(0)
}

// xsysTable parses golang.org/x/sys's x86_64 table (zsysnum_linux_amd64.go)
// in the module this package builds with.
func xsysTable(t *testing.T) map[uint32]string {
	t.Helper()
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	dir, err := exec.Command(gobin, "list", "-m", "-f", "{{.Dir}}", "golang.org/x/sys").Output()
	if err != nil {
		t.Fatalf("locate golang.org/x/sys: %v", err)
	}
	src, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(dir)), "unix", "zsysnum_linux_amd64.go"))
	if err != nil {
		t.Fatal(err)
	}
	return parseTable(t, src, `(?m)^\s*SYS_([A-Z0-9_]+)\s*=\s*([0-9]+)$`, 200)
}

// headerTable parses the kernel headers' table when they are installed
// (linux-libc-dev: the headers of the distribution's kernel).
func headerTable(t *testing.T) map[uint32]string {
	src, err := os.ReadFile("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
	if err != nil {
		return nil
	}
	return parseTable(t, src, `(?m)^#define __NR_([a-z0-9_]+)\s+([0-9]+)$`, 200)
}

func parseTable(t *testing.T, src []byte, re string, least int) map[uint32]string {
	t.Helper()
	m := map[uint32]string{}
	for _, g := range regexp.MustCompile(re).FindAllSubmatch(src, -1) {
		n, err := strconv.ParseUint(string(g[2]), 10, 32)
		if err != nil {
			t.Fatal(err)
		}
		m[uint32(n)] = strings.ToLower(string(g[1]))
	}
	if len(m) < least {
		t.Fatalf("only %d system calls in the table: its format changed", len(m))
	}
	return m
}

// kernelAccepts calls each of nrs in a child (its own session, no
// capabilities) and returns those the running kernel does not answer with
// ENOSYS.
func kernelAccepts(t *testing.T, nrs []uint32) []uint32 {
	t.Helper()
	var args []string
	for _, nr := range nrs {
		args = append(args, strconv.Itoa(int(nr)))
	}
	cmd := exec.Command(self(t), args...)
	cmd.Env = []string{sysProbeEnv + "=1"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("probe: %v\n%s", err, errb.String())
	}
	var accepted []uint32
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(args) {
		t.Fatalf("probe answered %d of %d numbers", len(lines), len(args))
	}
	for _, l := range lines {
		var nr uint32
		var e int
		if _, err := fmt.Sscanf(l, "%d %d", &nr, &e); err != nil {
			t.Fatalf("probe line %q", l)
		}
		if unix.Errno(e) != unix.ENOSYS {
			accepted = append(accepted, nr)
		}
	}
	return accepted
}

// TestSyscallTableComplete: every x86_64 system call that x/sys, the
// kernel headers or the running kernel knows is in one class of the
// filter's table. A kernel or x/sys that adds a call fails this test until
// someone decides what an agent may do with it (the filter refuses it
// meanwhile).
func TestSyscallTableComplete(t *testing.T) {
	for src, table := range map[string]map[uint32]string{"golang.org/x/sys": xsysTable(t), "kernel headers": headerTable(t)} {
		for nr, name := range table {
			if classes[nr] == unclassified {
				t.Errorf("%s: syscall %d (%s) is in no class of syscalls.go", src, nr, name)
			}
		}
	}
	var unknown []uint32
	for nr := uint32(0); nr < 1024; nr++ {
		if classes[nr] == unclassified {
			unknown = append(unknown, nr)
		}
	}
	for _, nr := range kernelAccepts(t, unknown) {
		t.Errorf("the running kernel accepts syscall %d, which is in no class of syscalls.go", nr)
	}
	// The filter answers ENOSYS for these itself: a kernel that
	// implements one would have it hidden from every agent.
	for _, nr := range kernelAccepts(t, obsolete) {
		t.Errorf("the running kernel implements syscall %d, which syscalls.go calls obsolete", nr)
	}
	if got := xsysTable(t); maxSyscall < maxKey(got) {
		t.Errorf("maxSyscall %d below x/sys's %d", maxSyscall, maxKey(got))
	}
}

func maxKey(m map[uint32]string) uint32 {
	var hi uint32
	for k := range m {
		hi = max(hi, k)
	}
	return hi
}

// TestSyscallTableDisjoint: no number is in two lists (buildClasses would
// panic at start; this says which).
func TestSyscallTableDisjoint(t *testing.T) {
	seen := map[uint32]string{}
	for name, list := range map[string][]uint32{"harmless": harmless, "notified": notified, "refused": refused,
		"obsolete": obsolete, "argChecked": argChecked, "process": processNumbers()} {
		for _, nr := range list {
			if seen[nr] != "" {
				t.Errorf("syscall %d is in %s and %s", nr, seen[nr], name)
			}
			seen[nr] = name
		}
	}
}

// TestFilterDefaultDeny walks every number up to 1023, and the edges of
// the 32-bit space, through each filter: a number in no class is handed to
// the supervisor (which refuses it as sys.unknown) or refused in the plain
// filter, and every classified number gets its class's verdict.
func TestFilterDefaultDeny(t *testing.T) {
	nrs := []uint32{maxSyscall + 1, 600, 1023, 1 << 20, x32SyscallBit - 1}
	for nr := uint32(0); nr <= maxSyscall; nr++ {
		nrs = append(nrs, nr)
	}
	for _, o := range []Options{{}, {Static: true}, {TrapUnixConnect: true}, {NoListener: true}, {NoListener: true, Static: true}} {
		prog := Program(o)
		if len(prog) > unix.BPF_MAXINSNS {
			t.Fatalf("%+v: %d instructions", o, len(prog))
		}
		deny, notify := uint32(retNotify), uint32(retNotify)
		if o.NoListener {
			deny, notify = retDeny, retAllow
		}
		for _, nr := range nrs {
			// Arguments that take no shortcut: not the caller's pid,
			// flags that write.
			d := sys(int(nr), 12345, 12345, unix.O_WRONLY, 0, 1)
			got, err := runFilter(prog, d)
			if err != nil {
				t.Fatal(err)
			}
			var want []uint32
			switch classOf(int32(nr)) {
			case unclassified, refusedC, processC:
				want = []uint32{deny}
			case harmlessC:
				want = []uint32{retAllow}
			case mediatedC:
				want = []uint32{notify}
			case obsoleteC:
				want = []uint32{retNosys}
			case argsC:
				want = []uint32{retAllow, deny, retNosys}
			}
			if !contains(want, got) {
				t.Errorf("%+v: syscall %d (class %d): verdict %#x, want %#x", o, nr, classOf(int32(nr)), got, want)
			}
			if classOf(int32(nr)) == unclassified {
				if cap, obj, ok := refusal(&d); !ok || cap != unknownCap || obj != fmt.Sprintf("syscall %d", nr) {
					t.Errorf("syscall %d: refusal %q %q %v", nr, cap, obj, ok)
				}
			}
		}
		if got, _ := runFilter(prog, sys(x32SyscallBit|unix.SYS_READ)); got != retNosys {
			t.Errorf("%+v: x32 read %#x", o, got)
		}
	}
}

func contains(s []uint32, v uint32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestParseAccess: ParseAccess reads back every Access.String but none.
func TestParseAccess(t *testing.T) {
	for a := Access(1); a <= Read|Write|Exec; a++ {
		if got, ok := ParseAccess(a.String()); !ok || got != a {
			t.Errorf("%v: parsed %v %v", a, got, ok)
		}
	}
	for _, s := range []string{"", "none", "read+", "fs.read", "Read"} {
		if _, ok := ParseAccess(s); ok {
			t.Errorf("%q parsed", s)
		}
	}
}
