package supervise

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/testutil/leakcheck"
	"golang.org/x/sys/unix"
)

// modeEnv selects what a re-executed test binary does.
const modeEnv = "COCONUT_SUPERVISE_TEST"

// staticEnv makes the test trampoline install the static filter.
const staticEnv = "COCONUT_SUPERVISE_STATIC"

// trapUnixEnv makes the test trampoline's filter trap connect and send
// (Options.TrapUnixConnect).
const trapUnixEnv = "COCONUT_SUPERVISE_TRAP_UNIX"

func TestMain(m *testing.M) {
	if len(os.Args) > 0 && os.Args[0] == HolderArg0 {
		Hold(3) // started by OpenHolder in TestHolderHandover
	}
	switch os.Getenv(modeEnv) {
	case "trampoline":
		trampolineMain()
	case "trampoline-memfd":
		memfdTrampolineMain()
	case "probe":
		probeMain()
	case "supervisor":
		supervisorMain()
	}
	os.Exit(leakcheck.Main(m)) // issue 18: nothing left behind
}

// trampolineMain is the tiny trampoline: install on this locked thread,
// then exec os.Args[1:] with the probe environment.
func trampolineMain() {
	runtime.LockOSThread()
	if trees := floorTrees(); trees != nil {
		if err := applyReadFloor(trees); err != nil {
			fmt.Fprintln(os.Stderr, "floor:", err)
			os.Exit(119)
		}
	}
	if v := os.Getenv(credsEnv); v != "" {
		if err := becomeAgentUser(v); err != nil {
			fmt.Fprintln(os.Stderr, "creds:", err)
			os.Exit(118)
		}
	}
	o := Options{Static: os.Getenv(staticEnv) != "", TrapUnixConnect: os.Getenv(trapUnixEnv) != ""}
	install := func() error { return Install(os.NewFile(3, "conn"), o) }
	if os.Getenv(plainEnv) != "" {
		install = func() error { return InstallPlain(o) } // no supervisor (process_test.go)
	}
	if err := install(); err != nil {
		fmt.Fprintln(os.Stderr, "install:", err)
		os.Exit(120)
	}
	env := []string{modeEnv + "=probe"}
	if v := os.Getenv(attropsGIDEnv); v != "" {
		env = append(env, attropsGIDEnv+"="+v)
	}
	err := syscall.Exec(os.Args[1], os.Args[1:], env)
	fmt.Fprintln(os.Stderr, "exec:", err)
	os.Exit(121)
}

// memfdTrampolineMain execs the measured memfd at fd 4, as the real
// trampoline does.
func memfdTrampolineMain() {
	runtime.LockOSThread()
	if err := Install(os.NewFile(3, "conn"), Options{}); err != nil {
		fmt.Fprintln(os.Stderr, "install:", err)
		os.Exit(120)
	}
	argv, _ := syscall.SlicePtrFromStrings(os.Args)
	env, _ := syscall.SlicePtrFromStrings([]string{modeEnv + "=probe"})
	empty, _ := syscall.BytePtrFromString("")
	_, _, e := syscall.RawSyscall6(unix.SYS_EXECVEAT, 4, uintptr(unsafe.Pointer(empty)),
		uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&env[0])), unix.AT_EMPTY_PATH, 0)
	fmt.Fprintf(os.Stderr, "exec: %d\n", int(e))
	os.Exit(121)
}

// supervisorMain serves a listener in its own process, so a test can kill
// the supervisor. Its capabilities come from the arguments.
func supervisorMain() {
	caps := parseCaps(os.Args[1:])
	s, err := Start(os.NewFile(3, "conn"), AgentInfo{AID: 7}, newTestDecider(caps))
	if err != nil {
		fmt.Fprintln(os.Stderr, "start:", err)
		os.Exit(122)
	}
	fmt.Println("serving")
	s.Wait()
	os.Exit(0)
}

func errnoOfErr(err error) int {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return int(e)
	}
	return -1
}

// probeMain runs each argument as an operation and prints one line per
// operation: "op errno".
func probeMain() {
	out := bufio.NewWriter(os.Stdout)
	for _, op := range os.Args[1:] {
		verb, arg, _ := strings.Cut(op, ":")
		a, b, _ := strings.Cut(arg, ":")
		if e, ok := argProbe(verb, arg); ok { // argcheck_test.go
			fmt.Fprintf(out, "%s %d\n", op, e)
			continue
		}
		if e, ok := processProbe(verb, arg); ok { // process_test.go
			fmt.Fprintf(out, "%s %d\n", op, e)
			continue
		}
		var err error
		switch verb {
		case "read":
			var fd int
			if fd, err = unix.Open(arg, unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
				unix.Close(fd)
			}
		case "write":
			var fd int
			if fd, err = unix.Open(arg, unix.O_WRONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o644); err == nil {
				unix.Close(fd)
			}
		case "rdwr":
			var fd int
			if fd, err = unix.Open(arg, unix.O_RDWR|unix.O_CLOEXEC, 0); err == nil {
				unix.Close(fd)
			}
		case "openat": // openat:DIR:NAME through a directory descriptor
			var dfd, fd int
			if dfd, err = unix.Open(a, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
				if fd, err = unix.Openat(dfd, b, unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
					unix.Close(fd)
				}
				unix.Close(dfd)
			}
		case "openat2": // openat2:DIR:NAME with RESOLVE_IN_ROOT
			var dfd, fd int
			if dfd, err = unix.Open(a, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
				if fd, err = unix.Openat2(dfd, b, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT}); err == nil {
					unix.Close(fd)
				}
				unix.Close(dfd)
			}
		case "chdir":
			err = unix.Chdir(arg)
		case "exec":
			err = probeExec(arg)
		case "link":
			err = unix.Link(a, b)
		case "rename":
			err = unix.Rename(a, b)
		case "symlink":
			err = unix.Symlink(a, b)
		case "unlink":
			err = unix.Unlink(arg)
		case "mkdir":
			err = unix.Mkdir(arg, 0o755)
		case "mount":
			err = unix.Mount("none", arg, "tmpfs", 0, "")
		case "bpf":
			_, _, e := unix.Syscall(unix.SYS_BPF, 0, 0, 0)
			err = errnoOrNil(e)
		case "unshare-user":
			err = unix.Unshare(unix.CLONE_NEWUSER)
		case "ptrace":
			_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_ATTACH, 1, 0, 0, 0, 0)
			err = errnoOrNil(e)
		case "packet":
			var fd int
			if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, 0); err == nil {
				unix.Close(fd)
			}
		case "clone3":
			_, _, e := unix.Syscall(unix.SYS_CLONE3, 0, 0, 0)
			err = errnoOrNil(e)
		case "getpid":
			unix.Getpid()
		case "uconnect", "usendto", "usendmsg": // a Unix socket (a path or @name)
			err = unixProbe(verb, arg)
		case "tcp": // tcp:PORT on 127.0.0.1
			var fd int
			if fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err == nil {
				port, _ := strconv.Atoi(arg)
				err = unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}})
				unix.Close(fd)
			}
		case "loop": // loop:N:PATH open+close N times; prints ns per iteration
			n, _ := strconv.Atoi(a)
			start := time.Now()
			for i := 0; i < n && err == nil; i++ {
				var fd int
				if fd, err = unix.Open(b, unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
					unix.Close(fd)
				}
			}
			fmt.Fprintf(out, "ns %d\n", time.Since(start).Nanoseconds()/int64(max(n, 1)))
		case "uloop": // uloop:N:ADDR Unix connect+close N times; prints ns per iteration
			n, _ := strconv.Atoi(a)
			start := time.Now()
			for i := 0; i < n && err == nil; i++ {
				err = unixProbe("uconnect", b)
			}
			fmt.Fprintf(out, "ns %d\n", time.Since(start).Nanoseconds()/int64(max(n, 1)))
		case "wait": // wait for a line on stdin
			out.Flush()
			bufio.NewReader(os.Stdin).ReadString('\n')
			continue
		default:
			err = fmt.Errorf("unknown op")
		}
		fmt.Fprintf(out, "%s %d\n", op, errnoOfErr(err))
	}
	out.Flush()
	os.Exit(0)
}

// unixProbe connects a stream socket, or sends one datagram, to addr.
func unixProbe(verb, addr string) error {
	typ := unix.SOCK_STREAM
	if verb != "uconnect" {
		typ = unix.SOCK_DGRAM
	}
	fd, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	sa := &unix.SockaddrUnix{Name: addr} // a leading @ becomes NUL
	switch verb {
	case "uconnect":
		return unix.Connect(fd, sa)
	case "usendto":
		return unix.Sendto(fd, []byte("x"), 0, sa)
	}
	return unix.Sendmsg(fd, []byte("x"), nil, sa, 0)
}

func errnoOrNil(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// probeExec runs path in a child; the exec's errno comes back, 0 when the
// program started (whatever it did next).
func probeExec(path string) error {
	pid, err := syscall.ForkExec(path, []string{path}, &syscall.ProcAttr{Env: []string{}})
	if err != nil {
		return err
	}
	var ws unix.WaitStatus
	_, err = unix.Wait4(pid, &ws, 0, nil)
	return err
}

// parseCaps parses capability strings or exits: for helper processes.
func parseCaps(ss []string) []capability.Cap {
	caps, err := capability.ParseAll(ss)
	if err != nil {
		fmt.Fprintln(os.Stderr, "caps:", err)
		os.Exit(123)
	}
	return caps
}
