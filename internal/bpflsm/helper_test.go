package bpflsm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The test binary re-executes itself as a helper inside a cgroup (through
// CLONE_INTO_CGROUP): BPFLSM_OPS holds ";"-separated operations and the
// helper prints one line per operation, "ok" or "errno=N". "wait" blocks
// until a line arrives on stdin (the revoke test cuts a held descriptor
// while the helper waits).
const helperEnv = "BPFLSM_OPS"

// guestEnv is set by the VM's init: there BPF LSM must work.
const guestEnv = "COCONUT_VMGUEST"

func TestMain(m *testing.M) {
	if ops, ok := os.LookupEnv(helperEnv); ok {
		os.Exit(runHelper(ops))
	}
	os.Exit(m.Run())
}

func result(err error) string {
	var e syscall.Errno
	if errors.As(err, &e) {
		return "errno=" + strconv.Itoa(int(e))
	}
	if err != nil {
		return "error " + err.Error()
	}
	return "ok"
}

func runHelper(ops string) int {
	w := bufio.NewWriter(os.Stdout)
	in := bufio.NewReader(os.Stdin)
	held := map[string]int{}
	for _, op := range strings.Split(ops, ";") {
		f := strings.Fields(op)
		if len(f) == 0 {
			continue
		}
		var err error
		switch f[0] {
		case "read":
			err = readFile(f[1])
		case "write":
			var fd int
			if fd, err = unix.Open(f[1], unix.O_WRONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o644); err == nil {
				_, err = unix.Write(fd, []byte("x"))
				unix.Close(fd)
			}
		case "hold": // hold PATH: open for reading and keep it
			var fd int
			if fd, err = unix.Open(f[1], unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
				held[f[1]] = fd
			}
		case "holdread": // holdread PATH: read the held descriptor again
			fd, ok := held[f[1]]
			if !ok {
				err = errors.New("not held")
				break
			}
			_, err = unix.Pread(fd, make([]byte, 1), 0)
		case "wait":
			in.ReadString('\n')
		case "exec":
			cmd := exec.Command(f[1], f[2:]...)
			err = cmd.Run()
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
		case "kill":
			pid, _ := strconv.Atoi(f[1])
			err = unix.Kill(pid, 0)
		case "ptrace":
			pid, _ := strconv.Atoi(f[1])
			err = ptraceAttach(pid)
		case "unix": // unix ADDR: connect a stream socket ("@name": abstract)
			err = unixConnect(f[1])
		case "unixdgram": // unixdgram ADDR: sendto without connecting
			err = unixSendto(f[1])
		case "loop": // loop PATH N: N open+close, prints ns per op
			n, _ := strconv.Atoi(f[2])
			t0 := mono()
			for i := 0; i < n; i++ {
				if fd, e := unix.Open(f[1], unix.O_RDONLY|unix.O_CLOEXEC, 0); e == nil {
					unix.Close(fd)
				} else {
					err = e
				}
			}
			if err == nil {
				fmt.Fprintf(w, "ns=%d\n", (mono()-t0)/int64(n))
				w.Flush()
				continue
			}
		case "race": // race PATH MS: hold PATH, then for MS ms pread the held fd and open+close PATH; stdin then gives the revoke's return time
			fd, e := unix.Open(f[1], unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if e != nil {
				err = e
				break
			}
			ms, _ := strconv.Atoi(f[2])
			fmt.Fprintln(w, "ok") // holding: the caller may revoke from now on
			w.Flush()
			var okRead, okOpen []int64
			buf := make([]byte, 1)
			iters := 0
			for end := mono() + int64(ms)*1e6; mono() < end; iters++ {
				t := mono()
				if _, e := unix.Pread(fd, buf, 0); e == nil {
					okRead = append(okRead, t)
				}
				t = mono()
				if g, e := unix.Open(f[1], unix.O_RDONLY|unix.O_CLOEXEC, 0); e == nil {
					unix.Close(g)
					okOpen = append(okOpen, t)
				}
			}
			l, _ := in.ReadString('\n')
			tRet, _ := strconv.ParseInt(strings.TrimSpace(l), 10, 64)
			after := func(ts []int64) (c int) {
				for _, x := range ts {
					if x > tRet {
						c++
					}
				}
				return
			}
			fmt.Fprintf(w, "iters=%d reads=%d opens=%d reads_after=%d opens_after=%d\n", iters, len(okRead), len(okOpen), after(okRead), after(okOpen))
			w.Flush()
			continue
		case "mmapx": // mmapx PATH: map the file as code
			err = mapFile(f[1], false)
		case "mprotectx": // mprotectx PATH: map it readable, then make it code
			err = mapFile(f[1], true)
		case "mkdir":
			err = unix.Mkdir(f[1], 0o755)
		case "rmdir":
			err = unix.Rmdir(f[1])
		case "unlink":
			err = unix.Unlink(f[1])
		case "mkfifo": // path_mknod
			err = unix.Mkfifo(f[1], 0o644)
		case "creat": // creat PATH: O_CREAT|O_RDONLY, a new file and no write (path_mknod alone decides)
			var fd int
			if fd, err = unix.Open(f[1], unix.O_RDONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o644); err == nil {
				unix.Close(fd)
			}
		case "symlink": // symlink NEW: a link to /
			err = unix.Symlink("/", f[1])
		case "link": // link OLD NEW
			err = unix.Link(f[1], f[2])
		case "rename": // rename OLD NEW
			err = unix.Rename(f[1], f[2])
		case "truncate":
			err = unix.Truncate(f[1], 0)
		case "rotrunc": // rotrunc PATH: O_RDONLY|O_TRUNC truncates with no write open
			var fd int
			if fd, err = unix.Open(f[1], unix.O_RDONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0); err == nil {
				unix.Close(fd)
			}
		case "holdw": // holdw PATH: open for writing and keep it
			var fd int
			if fd, err = unix.Open(f[1], unix.O_RDWR|unix.O_CLOEXEC, 0); err == nil {
				held[f[1]] = fd
			}
		case "ftruncheld": // ftruncheld PATH: ftruncate the held descriptor
			fd, ok := held[f[1]]
			if !ok {
				err = errors.New("not held")
				break
			}
			err = unix.Ftruncate(fd, 0)
		case "chmod":
			err = unix.Chmod(f[1], 0o640)
		case "chown": // to its own owner: DAC allows it, the hook still runs
			err = unix.Chown(f[1], os.Getuid(), os.Getgid())
		case "setxattr": // trusted.*: tmpfs has it on 6.1 too (user.* only from 6.6)
			err = unix.Setxattr(f[1], "trusted.coconut", []byte("x"), 0)
		case "removexattr":
			err = unix.Removexattr(f[1], "trusted.coconut")
		case "bpf":
			err = bpfMapCreate()
		case "mount":
			err = unix.Mount("none", f[1], "tmpfs", 0, "")
		default:
			err = fmt.Errorf("unknown op %q", f[0])
		}
		fmt.Fprintln(w, result(err))
		w.Flush()
	}
	return 0
}

func readFile(p string) error {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	_, err = unix.Read(fd, make([]byte, 1))
	return err
}

func ptraceAttach(pid int) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.PtraceAttach(pid); err != nil {
		return err
	}
	var ws unix.WaitStatus
	unix.Wait4(pid, &ws, unix.WALL, nil)
	return unix.PtraceDetach(pid)
}

func bpfMapCreate() error {
	// BPF_MAP_CREATE of a 1-entry array: refused before any privilege check
	// matters when the LSM hook denies.
	attr := struct{ typ, key, val, max, flags uint32 }{2, 4, 4, 1, 0}
	fd, _, e := unix.Syscall(unix.SYS_BPF, 0, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if e != 0 {
		return e
	}
	unix.Close(int(fd))
	return nil
}

// cgroup2Mount finds the unified hierarchy.
func cgroup2Mount(tb testing.TB) string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		for i, x := range f {
			if x == "-" && i+1 < len(f) && f[i+1] == "cgroup2" {
				return f[4]
			}
		}
	}
	tb.Skip("no cgroup2 hierarchy mounted")
	return ""
}

// mkCgroup makes a fresh cgroup under the unified hierarchy and returns it
// and its id.
func mkCgroup(tb testing.TB, name string) (string, uint64) {
	parent := filepath.Join(cgroup2Mount(tb), "coconut-bpflsm-test")
	dir := filepath.Join(parent, name)
	os.Remove(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	// Cleanups run last first: the agent's group, then the shared parent
	// once no other test's group is left in it.
	tb.Cleanup(func() { os.Remove(parent) })
	tb.Cleanup(func() { os.Remove(dir) })
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		tb.Fatal(err)
	}
	return dir, st.Ino
}

// helper starts the test binary in cgroup dir running ops. The caller
// reads its stdout lines and writes to stdin to release a "wait".
type helper struct {
	cmd *exec.Cmd
	out *bufio.Reader
	in  *os.File
}

func startHelper(tb testing.TB, dir string, ops ...string) *helper {
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer unix.Close(fd)
	self, _ := os.Executable()
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), helperEnv+"="+strings.Join(ops, ";"))
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	pr, pw, _ := os.Pipe()
	cmd.Stdin = pr
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	pr.Close()
	tb.Cleanup(func() { pw.Close(); cmd.Process.Kill(); cmd.Wait() })
	return &helper{cmd: cmd, out: bufio.NewReader(out), in: pw}
}

func (h *helper) line(tb testing.TB) string {
	s, err := h.out.ReadString('\n')
	if err != nil {
		tb.Fatalf("helper: %v (exit: %v)", err, h.cmd.Wait())
	}
	return strings.TrimSpace(s)
}

// run runs ops in dir and returns the result lines.
func run(tb testing.TB, dir string, ops ...string) []string {
	h := startHelper(tb, dir, ops...)
	var out []string
	for range ops {
		out = append(out, h.line(tb))
	}
	return out
}

func unixAddr(a string) *unix.SockaddrUnix {
	if strings.HasPrefix(a, "@") {
		return &unix.SockaddrUnix{Name: "\x00" + a[1:]}
	}
	return &unix.SockaddrUnix{Name: a}
}

func unixConnect(a string) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Connect(fd, unixAddr(a))
}

func unixSendto(a string) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Sendto(fd, []byte("x"), 0, unixAddr(a))
}

// mono is CLOCK_MONOTONIC in ns: the same clock in every process.
func mono() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

func mapFile(p string, later bool) error {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	prot := unix.PROT_READ | unix.PROT_EXEC
	if later {
		prot = unix.PROT_READ
	}
	b, err := unix.Mmap(fd, 0, 4096, prot, unix.MAP_PRIVATE)
	if err != nil {
		return err
	}
	defer unix.Munmap(b)
	if later {
		return unix.Mprotect(b, unix.PROT_READ|unix.PROT_EXEC)
	}
	return nil
}
