package supervise

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// argProbe runs the probe ops of the argument-checked calls (socket,
// socketpair, seccomp, ioctl); ok is false for other verbs.
//
//	sock:FAMILY,TYPE,PROTO   socket(), closed at once
//	sockpair:FAMILY          socketpair(FAMILY, SOCK_STREAM)
//	seccomp:FLAGS            seccomp(SET_MODE_FILTER, FLAGS, allow-all)
//	setflags:PATH            FS_IOC_SETFLAGS |= FS_NODUMP_FL on PATH opened O_RDONLY
//	tcgets                   TCGETS on a pipe (ENOTTY from the kernel)
func argProbe(verb, arg string) (int, bool) {
	switch verb {
	case "sock":
		var v [3]int
		for i, f := range strings.SplitN(arg, ",", 3) {
			v[i], _ = strconv.Atoi(f)
		}
		fd, err := unix.Socket(v[0], v[1]|unix.SOCK_CLOEXEC, v[2])
		if err == nil {
			unix.Close(fd)
		}
		return errnoOfErr(err), true
	case "sockpair":
		fam, _ := strconv.Atoi(arg)
		fds, err := unix.Socketpair(fam, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			unix.Close(fds[0])
			unix.Close(fds[1])
		}
		return errnoOfErr(err), true
	case "seccomp":
		flags, _ := strconv.Atoi(arg)
		prog := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW}}
		fp := unix.SockFprog{Len: 1, Filter: &prog[0]}
		r, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(flags), uintptr(unsafe.Pointer(&fp)))
		if e == 0 && flags&seccompNewListener != 0 {
			unix.Close(int(r)) // a listener: the hole this probe looks for
		}
		return int(e), true
	case "setflags":
		fd, err := unix.Open(arg, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return errnoOfErr(err), true
		}
		defer unix.Close(fd)
		flags, err := unix.IoctlGetInt(fd, unix.FS_IOC_GETFLAGS)
		if err != nil {
			return errnoOfErr(err), true
		}
		return errnoOfErr(unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, flags|0x40 /* FS_NODUMP_FL */)), true
	case "tcgets":
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			return errnoOfErr(err), true
		}
		defer unix.Close(p[0])
		defer unix.Close(p[1])
		_, err := unix.IoctlGetTermios(p[0], unix.TCGETS)
		return errnoOfErr(err), true
	}
	return 0, false
}

func sockOp(family, typ, proto int) string {
	return "sock:" + strconv.Itoa(family) + "," + strconv.Itoa(typ) + "," + strconv.Itoa(proto)
}

// argCheckWant is what an agent gets for each argument-checked op, with
// a supervisor or with the plain filter: refused forms get ECAPABILITY,
// the rest what the kernel answers (ENOTTY for TCGETS on a pipe).
func argCheckWant(f string) map[string]int {
	capErr := int(ECapability)
	return map[string]int{
		sockOp(unix.AF_VSOCK, unix.SOCK_STREAM, 0):                 capErr,
		sockOp(unix.AF_ALG, unix.SOCK_SEQPACKET, 0):                capErr,
		sockOp(unix.AF_TIPC, unix.SOCK_RDM, 0):                     capErr,
		sockOp(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP):     capErr,
		sockOp(unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_AUDIT): capErr,
		"sockpair:" + strconv.Itoa(unix.AF_TIPC):                   capErr,
		sockOp(unix.AF_INET, unix.SOCK_STREAM, 0):                  0,
		sockOp(unix.AF_INET6, unix.SOCK_DGRAM, 0):                  0,
		sockOp(unix.AF_UNIX, unix.SOCK_STREAM, 0):                  0,
		sockOp(unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE): 0,
		"sockpair:" + strconv.Itoa(unix.AF_UNIX):                   0,
		"seccomp:" + strconv.Itoa(seccompNewListener):              capErr,
		"seccomp:0":     0,
		"setflags:" + f: capErr,
		"tcgets":        int(unix.ENOTTY),
	}
}

// TestArgCheckedCalls: an agent cannot open sockets of other families
// than Unix, inet and route netlink, cannot install a seccomp filter with
// a listener of its own, and cannot change a file's flags through a
// descriptor opened for reading; the allowed forms still work. Refusals
// are rows.
func TestArgCheckedCalls(t *testing.T) {
	needRoot(t)
	dir := tree(t)
	f := filepath.Join(dir, "allowed", "f")
	flagsBefore := fileFlags(t, f)
	want := argCheckWant(f)
	var ops []string
	for op := range want {
		ops = append(ops, op)
	}
	d := newTestDecider(bundle(t, dir))
	got, _ := runAgent(t, AgentInfo{AID: 9}, d, ops...)
	for op, w := range want {
		if g, ok := got[op]; !ok || g != w {
			t.Errorf("%s: errno %d (ran %v), want %d", op, g, ok, w)
		}
	}
	if after := fileFlags(t, f); after != flagsBefore {
		t.Errorf("file flags changed: %#x -> %#x", flagsBefore, after)
	}
	rows := map[string]bool{}
	for _, ev := range d.Events() {
		if !ev.Allowed && ev.Errno == ECapability {
			rows[ev.Cap+" "+ev.Syscall] = true
		}
	}
	for _, r := range []string{"net.socket socket", "net.socket socketpair", "sys.seccomp seccomp", "sys.ioctl ioctl"} {
		if !rows[r] {
			t.Errorf("no deny row %q: %v", r, rows)
		}
	}
}

// TestArgCheckedCallsPlain: the plain filter (no supervisor) refuses the
// same forms in the kernel.
func TestArgCheckedCallsPlain(t *testing.T) {
	needRoot(t)
	dir := tree(t)
	f := filepath.Join(dir, "allowed", "f")
	flagsBefore := fileFlags(t, f)
	want := argCheckWant(f)
	var ops []string
	for op := range want {
		ops = append(ops, op)
	}
	exe := self(t)
	cmd := exec.Command(exe, append([]string{exe}, ops...)...)
	cmd.Env = []string{modeEnv + "=trampoline", plainEnv + "=1"}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("agent: %v\n%s", err, errb.String())
	}
	got := parseProbe(t, out.String())
	for op, w := range want {
		if g, ok := got[op]; !ok || g != w {
			t.Errorf("%s: errno %d (ran %v), want %d", op, g, ok, w)
		}
	}
	if after := fileFlags(t, f); after != flagsBefore {
		t.Errorf("file flags changed: %#x -> %#x", flagsBefore, after)
	}
}

// fileFlags reads a file's inode flags (FS_IOC_GETFLAGS).
func fileFlags(t *testing.T, path string) int {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	v, err := unix.IoctlGetInt(int(fh.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
