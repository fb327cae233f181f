package netguard

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/coconut-os/coconut/internal/testutil"
)

// The test binary re-executes itself as a helper inside a cgroup (through
// CLONE_INTO_CGROUP) to make real socket calls there. NETGUARD_OPS holds
// ";"-separated operations; the helper prints one result line per operation:
// "ok" or "errno=N".
const helperEnv = "NETGUARD_OPS"

// HelperMain runs the helper when the test binary was re-executed as
// one (TestMain, in main_test.go, calls it first).
func HelperMain() (code int, isHelper bool) {
	if ops, ok := os.LookupEnv(helperEnv); ok {
		return runHelper(ops), true
	}
	return 0, false
}

func runHelper(ops string) int {
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	for _, op := range strings.Split(ops, ";") {
		f := strings.Fields(op)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "loop": // loop ADDR PORT N: one line per connect, "T_NS result"
			ip, port, n := netip.MustParseAddr(f[1]), atoi(f[2]), atoi(f[3])
			for i := 0; i < n; i++ {
				t0 := monoNow()
				fmt.Fprintf(w, "%d %s\n", t0, result(tcpConnect(ip, port)))
				if i%64 == 0 {
					w.Flush()
				}
			}
		case "burst": // burst ADDR PORT N: N connects, prints how many got errno 134
			ip, port, n := netip.MustParseAddr(f[1]), atoi(f[2]), atoi(f[3])
			denied := 0
			for i := 0; i < n; i++ {
				if errors.Is(tcpConnect(ip, port), syscall.Errno(134)) {
					denied++
				}
			}
			fmt.Fprintf(w, "denied=%d\n", denied)
		case "bench": // bench ADDR PORT N: total ns of N connect+close
			ip, port, n := netip.MustParseAddr(f[1]), atoi(f[2]), atoi(f[3])
			t0 := monoNow()
			for i := 0; i < n; i++ {
				if err := tcpConnect(ip, port); err != nil {
					fmt.Fprintf(w, "%s\n", result(err))
					return 1
				}
			}
			fmt.Fprintf(w, "ns=%d\n", monoNow()-t0)
		case "unixbench": // unixbench ADDR N: total ns of N Unix connect+close
			n := atoi(f[2])
			t0 := monoNow()
			for i := 0; i < n; i++ {
				if err := unixOp([]string{"unix", "connect", f[1]}); err != nil {
					fmt.Fprintf(w, "%s\n", result(err))
					return 1
				}
			}
			fmt.Fprintf(w, "ns=%d\n", monoNow()-t0)
		default:
			fmt.Fprintln(w, result(oneOp(f)))
		}
	}
	return 0
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

func monoNow() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err)
	}
	return ts.Nano()
}

func result(err error) string {
	var errno syscall.Errno
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &errno):
		return fmt.Sprintf("errno=%d", int(errno))
	}
	return "error=" + err.Error()
}

func sockaddr(ip netip.Addr, port int) (int, unix.Sockaddr) {
	if ip.Is4() {
		return unix.AF_INET, &unix.SockaddrInet4{Port: port, Addr: ip.As4()}
	}
	return unix.AF_INET6, &unix.SockaddrInet6{Port: port, Addr: ip.As16()}
}

func tcpConnect(ip netip.Addr, port int) error {
	fam, sa := sockaddr(ip, port)
	fd, err := unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	// RST on close: no TIME_WAIT pile-up over thousands of connects.
	_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	return unix.Connect(fd, sa)
}

// oneOp runs "connect|sendto|connudp|bind tcp|udp ADDR PORT" or
// "raw 4|6".
func oneOp(f []string) error {
	if f[0] == "raw" {
		fam, proto := unix.AF_INET, unix.IPPROTO_ICMP
		if f[1] == "6" {
			fam, proto = unix.AF_INET6, unix.IPPROTO_ICMPV6
		}
		fd, err := unix.Socket(fam, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err == nil {
			unix.Close(fd)
		}
		return err
	}
	if f[0] == "unix" {
		return unixOp(f)
	}
	if len(f) != 4 {
		return fmt.Errorf("bad op %q", f)
	}
	ip, port := netip.MustParseAddr(f[2]), atoi(f[3])
	if f[0] == "connect" && f[1] == "tcp" {
		return tcpConnect(ip, port)
	}
	typ := unix.SOCK_DGRAM
	if f[1] == "tcp" {
		typ = unix.SOCK_STREAM
	}
	fam, sa := sockaddr(ip, port)
	fd, err := unix.Socket(fam, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	switch f[0] {
	case "connect":
		return unix.Connect(fd, sa)
	case "sendto":
		return unix.Sendto(fd, []byte("x"), 0, sa)
	case "connudp":
		if err := unix.Connect(fd, sa); err != nil {
			return err
		}
		_, err := unix.Write(fd, []byte("x"))
		return err
	case "bind":
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		return unix.Bind(fd, sa)
	}
	return fmt.Errorf("bad op %q", f)
}

// --- test side ---

func requireRoot(tb testing.TB) {
	tb.Helper()
	testutil.RequireRoot(tb, "cgroup BPF")
	if _, err := cgroupLevel(unifiedMount); err != nil {
		tb.Skipf("no cgroup2 hierarchy at %s: %v", unifiedMount, err)
	}
}

const unifiedMount = "/sys/fs/cgroup/unified"

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_-]`)

// mkCgroup creates dir (and removes it at cleanup, once its helpers are
// gone) and returns its path and id.
func mkCgroup(tb testing.TB, dir string) (string, uint64) {
	tb.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		for i := 0; ; i++ {
			err := os.Remove(dir)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				return
			}
			if i == 100 {
				tb.Errorf("remove cgroup: %v", err)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	id, err := CgroupID(dir)
	if err != nil {
		tb.Fatal(err)
	}
	return dir, id
}

// testRoot makes a fresh cgroup subtree named after the test.
func testRoot(tb testing.TB) string {
	name := "netguard-test-" + unsafeChars.ReplaceAllString(tb.Name(), "_") + "-" + strconv.Itoa(os.Getpid())
	dir, _ := mkCgroup(tb, filepath.Join(unifiedMount, name))
	return dir
}

func loadGuard(tb testing.TB, root string) *Guard {
	tb.Helper()
	g, err := Load(root)
	if err != nil {
		tb.Fatalf("Load: %v", err)
	}
	tb.Cleanup(func() {
		if err := g.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return g
}

// helperCmd prepares the test binary as a helper inside cgroup dir.
func helperCmd(tb testing.TB, dir string, ops ...string) (*exec.Cmd, func()) {
	tb.Helper()
	cg, err := os.Open(dir)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+strings.Join(ops, ";"))
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	cmd.Stderr = os.Stderr
	return cmd, func() { cg.Close() }
}

// runOps runs ops in a helper inside dir and returns one result per op.
func runOps(tb testing.TB, dir string, ops ...string) []string {
	tb.Helper()
	cmd, done := helperCmd(tb, dir, ops...)
	defer done()
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("helper %q: %v", ops, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(ops) {
		tb.Fatalf("helper %q: %d results: %q", ops, len(lines), out)
	}
	return lines
}

// unixOp runs "unix connect|sendto ADDR": a stream connect or a datagram
// sendto to a pathname socket, or an abstract one written @NAME.
func unixOp(f []string) error {
	if len(f) != 3 {
		return fmt.Errorf("bad op %q", f)
	}
	typ := unix.SOCK_STREAM
	if f[1] == "sendto" {
		typ = unix.SOCK_DGRAM
	}
	fd, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	sa := &unix.SockaddrUnix{Name: f[2]} // x/sys/unix turns a leading @ into NUL
	switch f[1] {
	case "connect":
		return unix.Connect(fd, sa)
	case "sendto":
		return unix.Sendto(fd, []byte("x"), 0, sa)
	}
	return fmt.Errorf("bad op %q", f)
}
