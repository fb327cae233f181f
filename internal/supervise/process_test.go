package supervise

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/cgroup"
	"golang.org/x/sys/unix"
)

// plainEnv makes the test trampoline install the plain filter (no
// listener, no supervisor) instead of the supervised one.
const plainEnv = "COCONUT_SUPERVISE_PLAIN"

// probeChild is a process the probe started (the "child" target), killed
// by the "killchild" op.
var probeChild *os.Process

// probeTarget turns a target argument into a pid: "me" is the probe's own
// pid, "child" a child it starts on first use, anything else a number.
func probeTarget(s string) int {
	switch s {
	case "me":
		return os.Getpid()
	case "child":
		if probeChild == nil {
			p, err := os.StartProcess("/bin/sleep", []string{"sleep", "30"}, &os.ProcAttr{})
			if err != nil {
				return -1
			}
			probeChild = p
		}
		return probeChild.Pid
	}
	n, _ := strconv.Atoi(s)
	return n
}

func rawErrno(nr uintptr, args ...uintptr) int {
	var a [6]uintptr
	copy(a[:], args)
	_, _, e := unix.Syscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5])
	return int(e)
}

// Values the probe's calls set, checked unchanged on a target outside.
const (
	probeCore   = 4096 // RLIMIT_CORE, soft and hard
	probeNice   = 7
	probeIOPrio = 3 << 13 // IOPRIO_CLASS_IDLE
)

// pbuf holds what the probe's calls point to: a global is never moved
// or freed while the kernel reads it.
var pbuf struct {
	lim     unix.Rlimit
	set     unix.CPUSet
	param   [1]int32
	attr    unix.SchedAttr
	nodes   uint64
	buf     [8]byte
	local   unix.Iovec
	remote  unix.RemoteIovec
	head, n uintptr
	info    [128]byte
	fattr   [24]byte
	path    []byte
}

func ptr[T any](p *T) uintptr { return uintptr(unsafe.Pointer(p)) }

// processProbe runs the cross-process ops of the probe: VERB:TARGET, the
// call made on that target with values that change it (or, for reads and
// calls that need more setup, harmless ones). ok is false for other verbs.
func processProbe(verb, arg string) (errno int, ok bool) {
	b := &pbuf
	tgt := func() uintptr { return uintptr(probeTarget(arg)) }
	switch verb {
	case "prlimit":
		b.lim = unix.Rlimit{Cur: probeCore, Max: probeCore}
		return rawErrno(unix.SYS_PRLIMIT64, tgt(), unix.RLIMIT_CORE, ptr(&b.lim), 0), true
	case "setpriority":
		return rawErrno(unix.SYS_SETPRIORITY, unix.PRIO_PROCESS, tgt(), probeNice), true
	case "setpriority-pgrp":
		return rawErrno(unix.SYS_SETPRIORITY, unix.PRIO_PGRP, tgt(), probeNice), true
	case "setpriority-user": // a uid
		return rawErrno(unix.SYS_SETPRIORITY, unix.PRIO_USER, tgt(), probeNice), true
	case "getpriority":
		return rawErrno(unix.SYS_GETPRIORITY, unix.PRIO_PROCESS, tgt()), true
	case "sched_setaffinity":
		b.set.Zero()
		b.set.Set(0)
		return rawErrno(unix.SYS_SCHED_SETAFFINITY, tgt(), unsafe.Sizeof(b.set), ptr(&b.set)), true
	case "sched_getaffinity":
		return rawErrno(unix.SYS_SCHED_GETAFFINITY, tgt(), unsafe.Sizeof(b.set), ptr(&b.set)), true
	case "sched_setscheduler":
		b.param[0] = 0
		return rawErrno(unix.SYS_SCHED_SETSCHEDULER, tgt(), 3 /* SCHED_BATCH */, ptr(&b.param)), true
	case "sched_setparam":
		b.param[0] = 0
		return rawErrno(unix.SYS_SCHED_SETPARAM, tgt(), ptr(&b.param)), true
	case "sched_setattr":
		b.attr = unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: 0, Nice: probeNice}
		return rawErrno(unix.SYS_SCHED_SETATTR, tgt(), ptr(&b.attr), 0), true
	case "ioprio_set":
		return rawErrno(unix.SYS_IOPRIO_SET, ioprioWhoProcess, tgt(), probeIOPrio), true
	case "ioprio_set-user":
		return rawErrno(unix.SYS_IOPRIO_SET, 3 /* IOPRIO_WHO_USER */, tgt(), probeIOPrio), true
	case "migrate_pages":
		b.nodes = 1
		return rawErrno(unix.SYS_MIGRATE_PAGES, tgt(), 64, ptr(&b.nodes), ptr(&b.nodes)), true
	case "move_pages": // no pages: the permission check only
		return rawErrno(unix.SYS_MOVE_PAGES, tgt(), 0, 0, 0, 0, 0), true
	case "kcmp":
		return rawErrno(unix.SYS_KCMP, uintptr(os.Getpid()), tgt(), 1 /* KCMP_VM */, 0, 0), true
	case "process_vm_readv", "process_vm_writev":
		b.local = unix.Iovec{Base: &b.buf[0], Len: 8}
		b.remote = unix.RemoteIovec{Base: ptr(&b.buf), Len: 8}
		nr := uintptr(unix.SYS_PROCESS_VM_READV)
		if verb == "process_vm_writev" {
			b.remote.Base = 0 // harmless even if it got through
			nr = unix.SYS_PROCESS_VM_WRITEV
		}
		return rawErrno(nr, tgt(), ptr(&b.local), 1, ptr(&b.remote), 1, 0), true
	case "get_robust_list":
		return rawErrno(unix.SYS_GET_ROBUST_LIST, tgt(), ptr(&b.head), ptr(&b.n)), true
	case "rt_sigqueueinfo": // signal 0: an existence check
		b.info = [128]byte{8: 0xff, 9: 0xff, 10: 0xff, 11: 0xff} // si_code = SI_QUEUE (-1)
		return rawErrno(unix.SYS_RT_SIGQUEUEINFO, tgt(), 0, ptr(&b.info)), true
	case "pidfd_getfd", "process_madvise", "process_mrelease":
		fd, err := unix.PidfdOpen(probeTarget(arg), 0)
		if err != nil {
			return int(err.(syscall.Errno)), true
		}
		defer unix.Close(fd)
		switch verb {
		case "pidfd_getfd":
			r, _, e := unix.Syscall(unix.SYS_PIDFD_GETFD, uintptr(fd), 1, 0)
			if e == 0 {
				unix.Close(int(r))
			}
			return int(e), true
		case "process_madvise": // no ranges: the permission check only
			return rawErrno(unix.SYS_PROCESS_MADVISE, uintptr(fd), 0, 0, unix.MADV_COLD, 0), true
		}
		return rawErrno(unix.SYS_PROCESS_MRELEASE, uintptr(fd), 0), true
	case "file_setattr": // FS_XFLAG_NODUMP on a path
		b.fattr = [24]byte{0: 0x80}
		b.path = append([]byte(arg), 0)
		atFDCWD := int64(unix.AT_FDCWD)
		return rawErrno(unix.SYS_FILE_SETATTR, uintptr(atFDCWD), ptr(&b.path[0]), ptr(&b.fattr), 24, 0), true
	case "syscall": // a bare number, every argument 0
		n, _ := strconv.Atoi(arg)
		return rawErrno(uintptr(n)), true
	case "childproc": // the child's own /proc entry
		fd, err := unix.Open("/proc/"+strconv.Itoa(probeTarget("child"))+"/status", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return int(err.(syscall.Errno)), true
		}
		unix.Close(fd)
		return 0, true
	case "ploop": // ploop:N:VERB:TARGET runs VERB:TARGET N times; prints ns per call
		ns, rest, _ := strings.Cut(arg, ":")
		inner, target, _ := strings.Cut(rest, ":")
		n, _ := strconv.Atoi(ns)
		start := time.Now()
		for i := 0; i < n && errno == 0; i++ {
			errno, _ = processProbe(inner, target)
		}
		fmt.Printf("ns %d\n", time.Since(start).Nanoseconds()/int64(max(n, 1)))
		return errno, true
	case "killchild":
		if probeChild != nil {
			probeChild.Kill()
			probeChild.Wait()
		}
		return 0, true
	}
	return 0, false
}

// outsider is a process of the test's uid that coconut knows nothing of:
// the target of every cross-process call. It has its own process group.
func outsider(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("/bin/sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

// targetState is what the probe's calls would change on a process, read
// from outside.
func targetState(t *testing.T, pid int) string {
	t.Helper()
	var lim unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_CORE, nil, &lim); err != nil {
		t.Fatal(err)
	}
	nice, err := unix.Getpriority(unix.PRIO_PROCESS, pid)
	if err != nil {
		t.Fatal(err)
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(pid, &set); err != nil {
		t.Fatal(err)
	}
	attr, err := unix.SchedGetAttr(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	io, _, e := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(pid), 0)
	if e != 0 {
		t.Fatal(e)
	}
	return fmt.Sprintf("core=%d/%d nice=%d cpus=%d policy=%d ioprio=%d", lim.Cur, lim.Max, nice, set.Count(), attr.Policy, io)
}

// crossCalls are the calls of the family, each tried on a target.
var crossCalls = []string{"prlimit", "setpriority", "getpriority", "sched_setaffinity", "sched_getaffinity",
	"sched_setscheduler", "sched_setparam", "sched_setattr", "ioprio_set", "migrate_pages", "move_pages",
	"kcmp", "process_vm_readv", "process_vm_writev", "get_robust_list", "rt_sigqueueinfo",
	"pidfd_getfd", "process_madvise", "process_mrelease"}

// procBundle may run the probe and sleep and read all of procfs: only
// the supervisor's /proc/PID check stands between an agent and another
// process's entries.
func procBundle(t *testing.T, extra ...string) *testDecider {
	t.Helper()
	caps, err := capability.ParseAll(append([]string{"fs.exec:" + self(t), "fs.exec:/usr/bin/sleep",
		"fs.read:/etc/ld.so.cache", "fs.read:/usr/lib/**", "fs.read:/proc/**"}, extra...))
	if err != nil {
		t.Fatal(err)
	}
	return newTestDecider(caps)
}

// TestCrossProcessRefused: a supervised agent makes each call of the
// family on a process of its uid outside coconut: ECAPABILITY, a
// sys.process row naming the call and target, and the target unchanged.
// The same calls on itself (pid 0 and its own pid) work.
func TestCrossProcessRefused(t *testing.T) {
	needRoot(t)
	pid := outsider(t)
	before := targetState(t, pid)
	p := strconv.Itoa(pid)
	want := map[string]int{}
	for _, c := range crossCalls {
		want[c+":"+p] = int(ECapability)
	}
	want["setpriority-pgrp:"+p] = int(ECapability)
	want["setpriority-user:54321"] = int(ECapability) // an unused uid: harmless had it passed
	want["ioprio_set-user:54321"] = int(ECapability)
	want["read:/proc/"+p+"/cmdline"] = int(ECapability)
	want["read:/proc/"+p+"/status"] = int(ECapability)
	want["read:/proc/"+p+"/task/"+p+"/stat"] = int(ECapability)
	want["read:/proc/1/cmdline"] = int(ECapability)
	// The agent itself: what many programs do.
	for _, op := range []string{"prlimit:0", "prlimit:me", "setpriority:0", "setpriority:me", "getpriority:me",
		"sched_setaffinity:0", "sched_setaffinity:me", "sched_getaffinity:me", "ioprio_set:0", "ioprio_set:me",
		"get_robust_list:0", "get_robust_list:me", "kcmp:me", "process_vm_readv:me", "pidfd_getfd:me",
		"rt_sigqueueinfo:me", "move_pages:0", "read:/proc/self/cmdline", "read:/proc/self/status",
		"read:/proc/thread-self/stat", "read:/proc/meminfo"} {
		want[op] = 0
	}
	var ops []string
	for op := range want {
		ops = append(ops, op)
	}
	d := procBundle(t)
	got, _ := runAgent(t, AgentInfo{AID: 9}, d, ops...)
	for op, w := range want {
		if g, ok := got[op]; !ok || g != w {
			t.Errorf("%s: errno %d (ran %v), want %d", op, g, ok, w)
		}
	}
	if after := targetState(t, pid); after != before {
		t.Errorf("the outsider changed: %s, was %s", after, before)
	}
	rows := map[string]bool{}
	for _, ev := range d.Events() {
		if !ev.Allowed && ev.Errno == ECapability {
			rows[ev.Cap+" "+ev.Object] = true
			if ev.Path != "" {
				rows["path "+ev.Path] = true
			}
		}
	}
	for _, c := range crossCalls {
		prefix, suffix := c+" pid=", p
		switch c {
		case "setpriority", "getpriority":
			prefix, suffix = c+" which=0 who=", p
		case "ioprio_set":
			prefix, suffix = c+" which=1 who=", p
		case "prlimit":
			prefix = "prlimit64 pid="
		case "kcmp":
			suffix = " pid2=" + p
		}
		if !rowLike(rows, processCap+" "+prefix, suffix) {
			t.Errorf("no row %q…%q", prefix, suffix)
		}
	}
	for _, obj := range []string{"setpriority which=1 who=" + p, "setpriority which=2 who=54321", "ioprio_set which=3 who=54321"} {
		if !rows[processCap+" "+obj] {
			t.Errorf("no row %q", obj)
		}
	}
	if !rows["path /proc/"+p+"/cmdline"] || !rows["path /proc/1/cmdline"] {
		t.Errorf("no /proc row: %v", rows)
	}
	if t.Failed() {
		t.Logf("rows: %v", rows)
	}
}

// rowLike: a row that starts with prefix and ends with suffix (around a
// descriptor or pid the test cannot know).
func rowLike(rows map[string]bool, prefix, suffix string) bool {
	for r := range rows {
		if strings.HasPrefix(r, prefix) && strings.HasSuffix(r, suffix) && len(r) >= len(prefix)+len(suffix) {
			return true
		}
	}
	return false
}

// TestCrossProcessOwnCgroup: an agent in its own cgroup (as coconutd
// starts every agent) may act on its own child: it is in the same cgroup.
// The outsider is still refused.
func TestCrossProcessOwnCgroup(t *testing.T) {
	needRoot(t)
	tr, err := cgroup.OpenTree(cgroup.SubtreeName(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Remove() })
	g, err := tr.Create(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Remove() })
	fd, err := g.FD()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	pid := strconv.Itoa(outsider(t))
	want := map[string]int{
		"setpriority:child": 0, "prlimit:child": 0, "sched_setaffinity:child": 0, "ioprio_set:child": 0,
		"kcmp:child": 0, "read:/proc/self/status": 0,
		"setpriority:" + pid: int(ECapability), "prlimit:" + pid: int(ECapability),
		"read:/proc/" + pid + "/cmdline": int(ECapability),
	}
	ops := []string{"setpriority:child"} // starts the child
	for op := range want {
		if op != ops[0] {
			ops = append(ops, op)
		}
	}
	// The child's own /proc entry, once it exists.
	ops = append(ops, "childproc", "killchild")
	got, _ := runAgentWith(t, AgentInfo{AID: 10}, procBundle(t), func(c *exec.Cmd) {
		c.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	}, ops...)
	for op, w := range want {
		if g, ok := got[op]; !ok || g != w {
			t.Errorf("%s: errno %d (ran %v), want %d", op, g, ok, w)
		}
	}
	if got["childproc"] != 0 {
		t.Errorf("the child's /proc/PID/status: errno %d", got["childproc"])
	}
}

// TestPlainFilterProcess: without a supervisor the plain filter refuses
// every target but the caller's pid 0, unknown numbers and file_setattr.
func TestPlainFilterProcess(t *testing.T) {
	needRoot(t)
	pid := strconv.Itoa(outsider(t))
	dir, _ := filepath.EvalSymlinks(t.TempDir())
	f := dir + "/f"
	os.WriteFile(f, nil, 0o644)
	want := map[string]int{
		"prlimit:0": 0, "setpriority:0": 0, "sched_setaffinity:0": 0, "getpriority:0": 0,
		"prlimit:" + pid: int(ECapability), "setpriority:" + pid: int(ECapability), "prlimit:me": int(ECapability),
		"setpriority-user:54321": int(ECapability), "kcmp:me": int(ECapability),
		"syscall:600": int(ECapability), "syscall:" + strconv.Itoa(int(maxSyscall)+1): int(ECapability),
		"file_setattr:" + f: int(ECapability), "getpid": 0, "read:" + f: 0,
	}
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
	if xflags(t, f)&0x80 != 0 {
		t.Error("file_setattr changed the file")
	}
}

// xflags reads a file's fsxattr flags (FS_IOC_FSGETXATTR).
func xflags(t *testing.T, path string) uint32 {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	const fsIocFsgetxattr = 0x801c581f // _IOR('X', 31, struct fsxattr)
	fsx := new([28]byte)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), fsIocFsgetxattr, uintptr(unsafe.Pointer(fsx))); e != 0 {
		t.Fatal(e)
	}
	return binary.LittleEndian.Uint32(fsx[:4])
}

// TestFileSetattrRefused: file_setattr (Linux 6.17) changes attributes by
// path with no Landlock right under it; an agent's call on a file outside
// its bundle is refused with a row and the file keeps its flags. An
// unknown number is refused as sys.unknown. A control call from the test
// shows the kernel would have changed the file.
func TestFileSetattrRefused(t *testing.T) {
	needRoot(t)
	dir := tree(t)
	control, target := dir+"/allowed/f", dir+"/denied/f"
	if e, _ := processProbe("file_setattr", control); e != 0 { // here, outside any agent
		e := unix.Errno(e)
		if e == unix.ENOSYS {
			t.Skip("file_setattr needs Linux 6.17")
		}
		t.Fatalf("control file_setattr: %v", e)
	}
	if xflags(t, control)&0x80 == 0 {
		t.Fatal("control file_setattr changed nothing")
	}
	d := newTestDecider(bundle(t, dir))
	ops := []string{"file_setattr:" + target, "file_setattr:" + control, "syscall:600", "syscall:" + strconv.Itoa(int(maxSyscall)+1)}
	got, _ := runAgent(t, AgentInfo{AID: 11}, d, ops...)
	for _, op := range ops {
		if got[op] != int(ECapability) {
			t.Errorf("%s: errno %d, want 134", op, got[op])
		}
	}
	if xflags(t, target)&0x80 != 0 {
		t.Error("the denied file's attributes changed")
	}
	want := map[string]bool{"sys.file_setattr file_setattr " + target: false, "sys.unknown syscall 600": false,
		fmt.Sprintf("sys.unknown syscall %d", maxSyscall+1): false}
	for _, ev := range d.Events() {
		k := ev.Cap + " " + ev.Object
		if _, ok := want[k]; ok && !ev.Allowed && ev.Errno == ECapability {
			want[k] = true
		}
	}
	for k, ok := range want {
		if !ok {
			t.Errorf("no row %q in %+v", k, d.Events())
		}
	}
}

// FuzzProcPID: any path gets an answer, and a PID only for /proc/PID or
// what lies below it, spelled as the kernel spells it.
func FuzzProcPID(f *testing.F) {
	for _, s := range []string{"/proc/1", "/proc/123/cmdline", "/proc/self", "/proc/+1/x", "/proc/01", "/proc/", "/proc/99999999999999999999", "/etc/passwd"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		n := procPID(path)
		if n == 0 {
			return
		}
		p := "/proc/" + strconv.Itoa(n)
		if path != p && !strings.HasPrefix(path, p+"/") {
			t.Fatalf("%q: pid %d", path, n)
		}
	})
}

// BenchmarkProcessCall measures setpriority(PRIO_PROCESS, who, nice) in a
// supervised agent (agent-ns/op): on itself by pid 0, which the filter
// passes, and by its own pid, which the supervisor checks (sameAgent).
//
//	go test -run XXX -bench ProcessCall -benchtime 5000x ./internal/supervise/
func BenchmarkProcessCall(b *testing.B) {
	needRoot(b)
	caps, _ := capability.ParseAll([]string{"fs.exec:" + self(b), "fs.read:/etc/ld.so.cache", "fs.read:/usr/lib/**"})
	for _, target := range []string{"0", "me"} {
		b.Run("pid-"+target, func(b *testing.B) {
			loop := "ploop:" + strconv.Itoa(b.N) + ":setpriority:" + target
			got, _ := runAgent(b, AgentInfo{}, newTestDecider(caps), loop)
			if got[loop] != 0 {
				b.Fatalf("loop failed: %v", got)
			}
			b.ReportMetric(float64(got["ns"]), "agent-ns/op")
		})
	}
}
