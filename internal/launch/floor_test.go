package launch

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/coconut-os/coconut/internal/testutil"
)

// probe is the test binary in agent role: it tries each operation and
// prints "OP TARGET errno=N" (0 for success).
func probe(args []string) int {
	for i := 0; i+1 < len(args); i += 2 {
		op, target := args[i], args[i+1]
		var err error
		switch op {
		case "read":
			_, err = os.ReadFile(target)
		case "write":
			err = os.WriteFile(target, []byte("x"), 0o644)
		case "connect":
			var c net.Conn
			if c, err = net.Dial("tcp", target); err == nil {
				c.Close()
			}
		case "kill":
			pid, _ := strconv.Atoi(target)
			err = syscall.Kill(pid, 0)
		case "exec":
			err = syscall.Exec(target, []string{target, "--version"}, nil)
		case "open-r", "open-w", "open-rw": // conformance_test.go: no truncation
			flag := map[string]int{"open-r": os.O_RDONLY, "open-w": os.O_WRONLY, "open-rw": os.O_RDWR}[op]
			var f *os.File
			if f, err = os.OpenFile(target, flag, 0); err == nil {
				f.Close()
			}
		case "forkexec": // conformance_test.go: exec and carry on
			var pid int
			if pid, err = syscall.ForkExec(target, []string{target}, &syscall.ProcAttr{Env: []string{}}); err == nil {
				var ws syscall.WaitStatus
				_, err = syscall.Wait4(pid, &ws, 0, nil)
			}
		case "fds": // fds_test.go: what the exec left open
			fmt.Printf("fds %s\n", inheritedFDs())
			continue
		case "mkdir":
			err = os.Mkdir(target, 0o755)
		case "truncate":
			err = os.Truncate(target, 0)
		case "rename": // rename OLD:NEW
			o, n, _ := strings.Cut(target, ":")
			err = os.Rename(o, n)
		case "readfd":
			fd, _ := strconv.Atoi(target)
			_, err = syscall.Read(fd, make([]byte, 64))
		}
		var errno syscall.Errno
		n := 0
		if errors.As(err, &errno) {
			n = int(errno)
		} else if err != nil {
			n = -1
		}
		fmt.Printf("%s %s errno=%d\n", op, target, n)
	}
	return 0
}

// TestFloor runs a real agent under a Landlock floor and checks the kernel
// enforces it: reads, writes and exec only where the floor allows, TCP
// connect only to listed ports, no signals outside the domain.
func TestFloor(t *testing.T) {
	testutil.RequireRoot(t, "to switch users and create cgroups")
	if LandlockABI() < 6 {
		t.Skipf("kernel Landlock ABI %d < 6 (scoping)", LandlockABI())
	}
	// Not t.TempDir(): its parent is 0700 and the agent runs as nobody.
	var open net.Listener
	dir, err := os.MkdirTemp("", "floor-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	allowed := filepath.Join(dir, "allowed")
	denied := filepath.Join(dir, "denied")
	for _, d := range []string{allowed, denied} {
		os.Mkdir(d, 0o777)
		os.Chmod(d, 0o777)
		os.WriteFile(filepath.Join(d, "f"), []byte("data"), 0o644)
	}
	open, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer closed.Close()
	openPort := uint16(open.Addr().(*net.TCPAddr).Port)

	self, _ := os.Executable()
	out, _, err := runSpec(t, self, func(s *Spec) {
		s.Env = append(s.Env, "LAUNCH_TEST_PROBE=1")
		s.Dir = "/"
		s.Floor = &Floor{
			// The test binary is dynamically linked: the kernel opens its
			// ELF interpreter under the agent's domain, and Landlock wants
			// EXECUTE on it (open_exec), so the loader is executable and
			// the libraries readable (the daemon's baseline will say so).
			Read:          append(existing("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/etc/ld.so.cache"), allowed),
			Write:         []string{allowed},
			Exec:          existing("/usr/bin/true", "/lib64/ld-linux-x86-64.so.2"),
			HandleConnect: true,
			Connect:       []uint16{openPort},
		}
	},
		"read", filepath.Join(allowed, "f"),
		"read", filepath.Join(denied, "f"),
		"write", filepath.Join(allowed, "new"),
		"write", filepath.Join(denied, "new"),
		"connect", open.Addr().String(),
		"connect", closed.Addr().String(),
		"kill", strconv.Itoa(os.Getpid()),
		"exec", "/usr/bin/env",
	)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"read " + filepath.Join(allowed, "f") + " errno=0",
		"read " + filepath.Join(denied, "f") + " errno=13",
		"write " + filepath.Join(allowed, "new") + " errno=0",
		"write " + filepath.Join(denied, "new") + " errno=13",
		"connect " + open.Addr().String() + " errno=0",
		"connect " + closed.Addr().String() + " errno=13",
		// Scoped signals: the test process is outside the agent's domain.
		"kill " + strconv.Itoa(os.Getpid()) + " errno=1",
		"exec /usr/bin/env errno=13",
	}
	for _, w := range want {
		if !strings.Contains(out, w+"\n") {
			t.Errorf("want %q in:\n%s", w, out)
		}
	}
}

func existing(paths ...string) []string {
	var out []string
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func TestFloorRights(t *testing.T) {
	abi := LandlockABI()
	rights := strings.Join(FloorRights(), " ")
	if abi >= 1 && !strings.Contains(rights, "fs.read") {
		t.Fatalf("ABI %d: rights %q", abi, rights)
	}
	if abi >= 6 && !strings.Contains(rights, "scope.signal") {
		t.Fatalf("ABI %d: rights %q", abi, rights)
	}
}

// TestFloorLSMPaths: under bpf-lsm with the path hooks attached the floor
// leaves making, removing and truncation to the programs (this host runs
// none, so they succeed here where the floor alone would refuse them),
// and keeps REFER: a rename into another directory from outside the
// floor's write trees is still Landlock's EXDEV. Without LSMMakeRemove the
// floor refuses the mkdir as before.
func TestFloorLSMPaths(t *testing.T) {
	testutil.RequireRoot(t, "to switch users and create cgroups")
	if LandlockABI() < 3 {
		t.Skipf("kernel Landlock ABI %d < 3 (truncate)", LandlockABI())
	}
	dir, err := os.MkdirTemp("", "floor-lsm-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	allowed, denied := filepath.Join(dir, "allowed"), filepath.Join(dir, "denied")
	for _, d := range []string{allowed, denied} {
		os.Mkdir(d, 0o777)
		os.Chmod(d, 0o777)
		for _, f := range []string{"f", "g"} {
			os.WriteFile(filepath.Join(d, f), []byte("data"), 0o666)
			os.Chmod(filepath.Join(d, f), 0o666)
		}
	}
	self, _ := os.Executable()
	floor := func(makeRemove bool) func(*Spec) {
		return func(s *Spec) {
			s.Env = append(s.Env, "LAUNCH_TEST_PROBE=1")
			s.Dir = "/"
			s.Floor = &Floor{
				Read:       append(existing("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/etc/ld.so.cache"), allowed),
				Write:      []string{allowed},
				Exec:       existing("/lib64/ld-linux-x86-64.so.2"),
				LSMDecides: true, LSMMakeRemove: makeRemove, LSMTruncate: makeRemove,
			}
		}
	}
	out, _, err := runSpec(t, self, floor(true),
		"mkdir", filepath.Join(denied, "d"),
		"truncate", filepath.Join(denied, "f"),
		"rename", filepath.Join(denied, "g")+":"+filepath.Join(denied, "h"),
		"rename", filepath.Join(denied, "h")+":"+filepath.Join(allowed, "h"),
		"mkdir", filepath.Join(allowed, "d"))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		"mkdir " + filepath.Join(denied, "d") + " errno=0",
		"truncate " + filepath.Join(denied, "f") + " errno=0",
		"rename " + filepath.Join(denied, "g") + ":" + filepath.Join(denied, "h") + " errno=0",
		"rename " + filepath.Join(denied, "h") + ":" + filepath.Join(allowed, "h") + " errno=18", // EXDEV: REFER kept
		"mkdir " + filepath.Join(allowed, "d") + " errno=0",
	} {
		if !strings.Contains(out, w+"\n") {
			t.Errorf("LSMMakeRemove: want %q in:\n%s", w, out)
		}
	}
	out, _, err = runSpec(t, self, floor(false), "mkdir", filepath.Join(denied, "d2"), "truncate", filepath.Join(denied, "f"))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"mkdir " + filepath.Join(denied, "d2") + " errno=13", "truncate " + filepath.Join(denied, "f") + " errno=13"} {
		if !strings.Contains(out, w+"\n") {
			t.Errorf("floor keeping make/remove: want %q in:\n%s", w, out)
		}
	}
}

// TestFloorHandled: what the floor handles of the file rights under each
// backend setting.
func TestFloorHandled(t *testing.T) {
	all := (&Floor{}).fsHandled()
	lsm := (&Floor{LSMDecides: true}).fsHandled()
	paths := (&Floor{LSMDecides: true, LSMMakeRemove: true, LSMTruncate: true}).fsHandled()
	alone := (&Floor{LSMMakeRemove: true, LSMTruncate: true}).fsHandled()
	if alone != all {
		t.Errorf("LSMMakeRemove without LSMDecides changed the floor: %#x, want %#x", alone, all)
	}
	if lsm&(unix.LANDLOCK_ACCESS_FS_READ_FILE|unix.LANDLOCK_ACCESS_FS_WRITE_FILE|unix.LANDLOCK_ACCESS_FS_EXECUTE) != 0 ||
		lsm&lsmMakeRemove != lsmMakeRemove || lsm&unix.LANDLOCK_ACCESS_FS_TRUNCATE == 0 {
		t.Errorf("LSMDecides: handled %#x", lsm)
	}
	if paths&lsmMakeRemove != 0 || paths&unix.LANDLOCK_ACCESS_FS_TRUNCATE != 0 {
		t.Errorf("LSMMakeRemove, LSMTruncate: still handled %#x", paths&(lsmMakeRemove|unix.LANDLOCK_ACCESS_FS_TRUNCATE))
	}
	for _, keep := range []uint64{unix.LANDLOCK_ACCESS_FS_REFER, unix.LANDLOCK_ACCESS_FS_READ_DIR, unix.LANDLOCK_ACCESS_FS_MAKE_CHAR,
		unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK, unix.LANDLOCK_ACCESS_FS_IOCTL_DEV} {
		if paths&keep == 0 {
			t.Errorf("right %#x left unhandled", keep)
		}
	}
}
