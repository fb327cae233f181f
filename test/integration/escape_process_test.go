package integration

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// processState is what the cross-process calls would change on pid, read
// from outside the agent.
func processState(t *testing.T, pid int) string {
	t.Helper()
	limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
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
	io, _, e := unix.Syscall(unix.SYS_IOPRIO_GET, 1 /* IOPRIO_WHO_PROCESS */, uintptr(pid), 0)
	if e != 0 {
		t.Fatal(e)
	}
	return fmt.Sprintf("%s\nnice=%d cpus=%d policy=%d ioprio=%d", limits, nice, set.Count(), attr.Policy, io)
}

// fsxflags reads a file's fsxattr flags (FS_IOC_FSGETXATTR).
func fsxflags(t *testing.T, path string) uint32 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const fsIocFsgetxattr = 0x801c581f
	fsx := new([28]byte)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fsIocFsgetxattr, uintptr(unsafe.Pointer(fsx))); e != 0 {
		t.Fatal(e)
	}
	return binary.LittleEndian.Uint32(fsx[:4])
}

// TestEscapeOtherProcesses (issue 11, items 2 and 4): an agent tries to
// change the limits, priority, scheduling, memory and descriptors of a
// process of its own uid that coconut did not start, and of a sibling
// agent; reads their /proc entries; calls file_setattr on the user's key
// and a system call number no kernel has. Each is ECAPABILITY with a row,
// and the targets are unchanged. The same calls on the agent's own
// processes (renice, taskset, prlimit, ulimit on its shell) still work.
func TestEscapeOtherProcesses(t *testing.T) {
	e := newEnv(t)
	uid, home := e.demo()
	proj := filepath.Join(home, "projects/dream-team")
	key := filepath.Join(home, ".ssh/id_ed25519")

	// The user's own process, outside coconut: what prlimit --cpu=1
	// would have killed.
	holder := exec.Command("/bin/sleep", "120")
	holder.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}, Setpgid: true}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	hp := holder.Process.Pid
	sib := mustAID(t, e.must("agent", "run", "--name", "sibling", "--workdir", "/", "--", "/bin/sleep", "600"))
	sp := e.waitState(sib, "Active").PID
	before := map[int]string{hp: processState(t, hp), sp: processState(t, sp)}
	keyFlags := fsxflags(t, key)

	sc := func(expr string) string { return perlSyscall(expr) }
	pidfd := func(pid int, call string) string {
		return sc(fmt.Sprintf(`my $p = syscall(434, %d, 0); my $r = $p < 0 ? $p : %s`, pid, call))
	}
	var cases []escapeCase
	for _, pid := range []int{hp, sp} {
		who := map[int]string{hp: "outsider", sp: "sibling"}[pid]
		c := func(name, cmd string, want []string, chain string) {
			cases = append(cases, escapeCase{name + " " + who, cmd, want, chain})
		}
		c("prlimit --cpu=1", fmt.Sprintf(`/usr/bin/prlimit --pid %d --cpu=1:1`, pid), []string{ecap}, fmt.Sprintf("prlimit64 pid=%d", pid))
		// renice and taskset read the old value first: refused too (the
		// priority and affinity of a process outside are its own).
		c("renice", fmt.Sprintf(`/usr/bin/renice -n 19 -p %d`, pid), []string{ecap}, fmt.Sprintf("getpriority which=0 who=%d", pid))
		c("renice -g", fmt.Sprintf(`/usr/bin/renice -n 19 -g %d`, pid), []string{ecap}, fmt.Sprintf("getpriority which=1 who=%d", pid))
		c("taskset", fmt.Sprintf(`/usr/bin/taskset -p 1 %d`, pid), []string{ecap}, fmt.Sprintf("sched_getaffinity pid=%d", pid))
		c("setpriority", sc(fmt.Sprintf(`my $r = syscall(141, 0, %d, 19)`, pid)), []string{"errno=134"}, fmt.Sprintf("setpriority which=0 who=%d", pid))
		c("setpriority PRIO_PGRP", sc(fmt.Sprintf(`my $r = syscall(141, 1, %d, 19)`, pid)), []string{"errno=134"}, fmt.Sprintf("setpriority which=1 who=%d", pid))
		c("sched_setaffinity", sc(fmt.Sprintf(`my $m = pack("Q", 1); my $r = syscall(203, %d, 8, $m)`, pid)), []string{"errno=134"}, fmt.Sprintf("sched_setaffinity pid=%d", pid))
		c("sched_setscheduler", sc(fmt.Sprintf(`my $a = pack("l", 0); my $r = syscall(144, %d, 3, $a)`, pid)), []string{"errno=134"}, fmt.Sprintf("sched_setscheduler pid=%d", pid))
		c("sched_setparam", sc(fmt.Sprintf(`my $a = pack("l", 0); my $r = syscall(142, %d, $a)`, pid)), []string{"errno=134"}, fmt.Sprintf("sched_setparam pid=%d", pid))
		c("sched_setattr", sc(fmt.Sprintf(`my $a = pack("LLQlLQQQ", 48, 0, 0, 19, 0, 0, 0, 0); my $r = syscall(314, %d, $a, 0)`, pid)), []string{"errno=134"}, fmt.Sprintf("sched_setattr pid=%d", pid))
		c("ioprio_set", sc(fmt.Sprintf(`my $r = syscall(251, 1, %d, 24576)`, pid)), []string{"errno=134"}, fmt.Sprintf("ioprio_set which=1 who=%d", pid))
		c("migrate_pages", sc(fmt.Sprintf(`my $n = pack("Q", 1); my $r = syscall(256, %d, 64, $n, $n)`, pid)), []string{"errno=134"}, fmt.Sprintf("migrate_pages pid=%d", pid))
		c("move_pages", sc(fmt.Sprintf(`my $r = syscall(279, %d, 0, 0, 0, 0, 0)`, pid)), []string{"errno=134"}, fmt.Sprintf("move_pages pid=%d", pid))
		c("kcmp", sc(fmt.Sprintf(`my $r = syscall(312, %d, $$, 1, 0, 0)`, pid)), []string{"errno=134"}, "")
		c("get_robust_list", sc(fmt.Sprintf(`my ($h, $l) = ("\0" x 8, "\0" x 8); my $r = syscall(274, %d, $h, $l)`, pid)), []string{"errno=134"}, fmt.Sprintf("get_robust_list pid=%d", pid))
		c("rt_sigqueueinfo", sc(fmt.Sprintf(`my $i = pack("iii", 0, 0, -1) . ("\0" x 116); my $r = syscall(129, %d, 0, $i)`, pid)), []string{"errno=134"}, fmt.Sprintf("rt_sigqueueinfo pid=%d", pid))
		c("process_madvise", pidfd(pid, `syscall(440, $p, 0, 0, 20, 0)`), []string{"errno=134"}, fmt.Sprintf("process_madvise pid=%d", pid))
		c("process_mrelease", pidfd(pid, `syscall(448, $p, 0)`), []string{"errno=134"}, fmt.Sprintf("process_mrelease pid=%d", pid))
		c("/proc/PID/cmdline", fmt.Sprintf(`read -r -d '' l < /proc/%d/cmdline`, pid), []string{ecap}, fmt.Sprintf("/proc/%d/cmdline", pid))
		c("/proc/PID/status", fmt.Sprintf(`read -r l < /proc/%d/status`, pid), []string{ecap}, fmt.Sprintf("/proc/%d/status", pid))
	}
	cases = append(cases,
		escapeCase{"setpriority PRIO_USER", sc(`my $r = syscall(141, 2, 54321, 19)`), []string{"errno=134"}, "setpriority which=2 who=54321"},
		escapeCase{"file_setattr the key", sc(`my $p = "` + key + `"; my $a = pack("Q", 0x80) . ("\0" x 16); my $r = syscall(469, -100, $p, $a, 24, 0)`), []string{"errno=134"}, "file_setattr " + key},
		escapeCase{"syscall 600", sc(`my $r = syscall(600)`), []string{"errno=134"}, "syscall 600"},
		// The agent's own processes: its shell, from a child.
		escapeCase{"prlimit its shell", `/usr/bin/prlimit --pid $$ --core=0:`, nil, ""},
		escapeCase{"ulimit", `ulimit -c 0`, nil, ""},
		escapeCase{"renice its shell", `/usr/bin/renice -n 1 -p $$`, nil, ""},
		escapeCase{"nice", `/usr/bin/nice -n 2 /usr/bin/true`, nil, ""},
		escapeCase{"taskset its shell", `/usr/bin/taskset -p 1 $$`, nil, ""},
		escapeCase{"read its own /proc", `read -r l < /proc/$$/status && read -r l < /proc/self/stat`, nil, ""},
	)
	id, logs := runEscapes(t, e, proj, cases,
		"--cap", "fs.read:"+proj+"/**", "--cap", "fs.exec:/usr/bin/**", "--cap", "fs.read:/usr/share/perl/**")
	denies := e.rows("--aid", id, "--type", "cap.deny")
	checkEscapes(t, logs, denies, cases)
	for pid, was := range before {
		if now := processState(t, pid); now != was {
			t.Errorf("process %d changed:\n%s\nwas:\n%s", pid, now, was)
		}
	}
	if !alive(hp) || !alive(sp) {
		t.Error("a target is gone")
	}
	if f := fsxflags(t, key); f != keyFlags {
		t.Errorf("the key's attributes changed: %#x, were %#x", f, keyFlags)
	}
	// kcmp's row names the caller's own pid too.
	for _, pid := range []int{hp, sp} {
		found := false
		for _, r := range denies {
			found = found || strings.HasPrefix(r.Object, fmt.Sprintf("kcmp pid=%d pid2=", pid))
		}
		if !found {
			t.Errorf("no kcmp row for target %d", pid)
		}
	}
	e.countersAgree(uint64(len(denies)))
	e.must("audit", "verify")
}
