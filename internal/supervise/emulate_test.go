package supervise

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/testutil"
	"golang.org/x/sys/unix"
)

// credsEnv makes the test trampoline take an agent's credentials,
// "UID:GID:G1,G2…", before installing the filter (as launch's does).
const credsEnv = "COCONUT_SUPERVISE_CREDS"

// attropsGIDEnv is the group testdata/attrops.c gives files with chown.
const attropsGIDEnv = "ATTROPS_GID"

// The agent's uid, primary and supplementary group, and another user.
const (
	agentUID  = 4242
	agentGID  = 4242
	agentGID2 = 4243
	otherUID  = 4343
)

func becomeAgentUser(v string) error {
	parts := strings.Split(v, ":")
	if len(parts) != 3 {
		return fmt.Errorf("bad %s %q", credsEnv, v)
	}
	uid, _ := strconv.Atoi(parts[0])
	gid, _ := strconv.Atoi(parts[1])
	var groups []int
	for _, g := range strings.Split(parts[2], ",") {
		n, _ := strconv.Atoi(g)
		groups = append(groups, n)
	}
	// A fresh single-purpose process: the syscall package's all-thread
	// forms are what is wanted here. A non-root uid loses every capability.
	if err := syscall.Setgroups(groups); err != nil {
		return err
	}
	if err := syscall.Setresgid(gid, gid, gid); err != nil {
		return err
	}
	return syscall.Setresuid(uid, uid, uid)
}

// attrWorld is a directory every user may search, with the attrops
// helper built in it: the agent runs as agentUID.
func attrWorld(t testing.TB) (dir, bin string) {
	t.Helper()
	cc := testutil.RequireCommand(t, "cc", "a C compiler to build testdata/attrops.c; .ci/run installs gcc")
	dir, err := os.MkdirTemp("", "coconut-attr-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(dir, "attrops")
	out, err := exec.Command(cc, "-O2", "-pthread", "-o", bin, "testdata/attrops.c").CombinedOutput()
	if err != nil {
		t.Fatalf("build attrops: %v\n%s", err, out)
	}
	return dir, bin
}

func attrCaps(t testing.TB, bin string, rw ...string) []capability.Cap {
	t.Helper()
	s := []string{"fs.exec:" + bin, "fs.read:/etc/ld.so.cache", "fs.read:/usr/lib/**"}
	for _, p := range rw {
		s = append(s, "fs.read:"+p, "fs.write:"+p)
	}
	caps, err := capability.ParseAll(s)
	if err != nil {
		t.Fatal(err)
	}
	return caps
}

// runAttrAgent runs attrops with ops as a supervised agent of agentUID.
func runAttrAgent(t testing.TB, d Decider, bin string, ops ...string) (string, *Server) {
	t.Helper()
	sup, ag := socketPair(t)
	defer sup.Close()
	var out, errb bytes.Buffer
	cmd := exec.Command(self(t), append([]string{bin}, ops...)...)
	cmd.Env = []string{modeEnv + "=trampoline", attropsGIDEnv + "=" + strconv.Itoa(agentGID2),
		fmt.Sprintf("%s=%d:%d:%d,%d", credsEnv, agentUID, agentGID, agentGID, agentGID2)}
	cmd.ExtraFiles = []*os.File{ag}
	cmd.Stdout, cmd.Stderr = &out, &errb
	s := superviseToEnd(t, cmd, sup, ag, 44, d, &out, &errb)
	return attropsDone(t, out.String()), s
}

// superviseToEnd starts the trampoline cmd (its end of the pair is ag),
// serves it as agent aid until it has exited and returns the server.
func superviseToEnd(t testing.TB, cmd *exec.Cmd, sup, ag *os.File, aid uint64, d Decider, out, errb *bytes.Buffer) *Server {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ag.Close()
	s, err := Start(sup, AgentInfo{AID: aid}, d)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("start supervisor: %v\n%s", err, errb.String())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("agent: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	if err := s.Wait(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	return s
}

// attropsDone checks that attrops ran to its end and drops its last line.
func attropsDone(t testing.TB, out string) string {
	t.Helper()
	rest, ok := strings.CutSuffix(out, "attrops done\n")
	if !ok {
		t.Fatalf("attrops did not finish:\n%s", out)
	}
	return rest
}

// runAttrPlain runs attrops with ops as agentUID without any filter: what
// the kernel itself answers.
func runAttrPlain(t testing.TB, bin string, ops ...string) string {
	t.Helper()
	cmd := exec.Command(bin, ops...)
	cmd.Env = []string{attropsGIDEnv + "=" + strconv.Itoa(agentGID2)}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: agentUID, Gid: agentGID, Groups: []uint32{agentGID, agentGID2}}}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("plain attrops: %v\n%s", err, errb.String())
	}
	return attropsDone(t, string(out))
}

// fileState is everything an attribute call can change, read from outside.
type fileState struct {
	mode, uid, gid uint32
	atime, mtime   unix.Timespec
	ctime          unix.Timespec
	xattrs         map[string]string
}

func stateOf(t *testing.T, p string) fileState {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	fs := fileState{mode: st.Mode, uid: st.Uid, gid: st.Gid, atime: st.Atim, mtime: st.Mtim, ctime: st.Ctim, xattrs: map[string]string{}}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return fs
	}
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		v := make([]byte, 256)
		m, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			t.Fatal(err)
		}
		fs.xattrs[name] = string(v[:m])
	}
	return fs
}

func mustDo(t *testing.T, errs ...error) {
	t.Helper()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// agentFile makes a file of the agent's user with the extended attributes
// the remove calls take away and fixed times.
func agentFile(t *testing.T, p string, uid, gid int, mode os.FileMode) {
	t.Helper()
	mustDo(t, os.WriteFile(p, []byte("data"), mode), os.Chmod(p, mode), os.Chown(p, uid, gid))
	for _, x := range []string{"user.keep", "user.r1", "user.r2", "user.r3"} {
		mustDo(t, unix.Setxattr(p, x, []byte("orig"), 0))
	}
	ts := []unix.Timespec{{Sec: 500000000}, {Sec: 500000000}}
	mustDo(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, 0))
}

var attrRaceCalls = []string{
	"chmod", "fchmodat", "fchmodat2",
	"chown", "lchown", "fchownat",
	"utime", "utimes", "futimesat", "utimensat",
	"setxattr", "lsetxattr", "setxattrat",
	"removexattr", "lremovexattr", "removexattrat",
}

// TestEmulatedAttrRace: every emulated call, made thousands of times on a
// path that a second thread, or a process made with clone(CLONE_VM),
// flips between an allowed file and a protected one (outside the bundle,
// owned by the agent's own user, so the kernel would let the change
// through). The protected file is unchanged seen from outside — mode,
// owner, times (ctime included: nothing at all was done to it), extended
// attributes — while the allowed file carries every change, each with a
// row naming it.
func TestEmulatedAttrRace(t *testing.T) {
	needRoot(t)
	const n = 2000
	for _, how := range []string{"thread", "vm"} {
		t.Run(how, func(t *testing.T) {
			dir, bin := attrWorld(t)
			allowedDir, protDir := filepath.Join(dir, "A"), filepath.Join(dir, "B")
			allowed, prot := filepath.Join(allowedDir, "f"), filepath.Join(protDir, "f")
			for _, d := range []string{allowedDir, protDir} {
				mustDo(t, os.Mkdir(d, 0o755), os.Chown(d, agentUID, agentGID))
			}
			agentFile(t, allowed, agentUID, agentGID, 0o644)
			agentFile(t, prot, agentUID, agentGID, 0o644)
			before := stateOf(t, prot)

			d := newTestDecider(attrCaps(t, bin, allowedDir+"/**"))
			op := func(c string) string { return fmt.Sprintf("race:%s:%s:%d:%s:%s", how, c, n, allowed, prot) }
			emulated := raceRounds(t, d, bin, attrRaceCalls, op, "race:"+how+":", n, nil)

			if after := stateOf(t, prot); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("the protected file changed:\nbefore %+v\nafter  %+v", before, after)
			}
			a := stateOf(t, allowed)
			// The last of each kind wins: which one depends on the rounds.
			if m := a.mode & 0o7777; m != 0o600 && m != 0o640 && m != 0o604 || a.gid != agentGID2 ||
				a.mtime.Sec < 1000000001 || a.mtime.Sec > 1000000004 {
				t.Errorf("the allowed file did not take the changes: %+v", a)
			}
			for _, x := range []string{"user.s1", "user.s2", "user.s3"} {
				if a.xattrs[x] != "1" {
					t.Errorf("allowed file lacks %s: %v", x, a.xattrs)
				}
			}
			for _, x := range []string{"user.r1", "user.r2", "user.r3"} {
				if _, ok := a.xattrs[x]; ok {
					t.Errorf("allowed file still has %s", x)
				}
			}
			// Rows: the allowed change names the allowed file; the refusals
			// name the protected one.
			for _, c := range attrRaceCalls {
				var allowRow, denyRow bool
				for _, ev := range d.Events() {
					if ev.Syscall != c {
						continue
					}
					allowRow = allowRow || ev.Allowed && ev.Path == allowed && ev.Access == Write
					denyRow = denyRow || !ev.Allowed && ev.Path == prot && ev.Errno == ECapability
					if ev.Allowed && ev.Path != allowed || !ev.Allowed && ev.Path != prot {
						t.Errorf("%s: row for %q (allowed %v)", c, ev.Path, ev.Allowed)
					}
				}
				if !allowRow || !denyRow {
					t.Errorf("%s: allowed row %v, deny row %v", c, allowRow, denyRow)
				}
			}
			if emulated == 0 {
				t.Error("no call was emulated")
			}
		})
	}
}

// attrTree builds the same files under root for the supervised and the
// plain run of TestEmulatedAttrErrnos.
func attrTree(t *testing.T, root string) {
	t.Helper()
	mustDo(t, os.Mkdir(root, 0o755))
	agentFile(t, root+"/own", agentUID, agentGID, 0o644)
	agentFile(t, root+"/other644", otherUID, otherUID, 0o644)
	agentFile(t, root+"/other666", otherUID, otherUID, 0o666)
	mustDo(t, os.Symlink("own", root+"/ownlink"), os.Lchown(root+"/ownlink", agentUID, agentGID))
	mustDo(t, os.Mkdir(root+"/sub", 0o755), os.Chown(root+"/sub", agentUID, agentGID))
	agentFile(t, root+"/sub/g", agentUID, agentGID, 0o644)
	mustDo(t, os.Symlink("sub", root+"/dirlink"))
	// A file of the agent's in a directory it may not search.
	mustDo(t, os.Mkdir(root+"/locked", 0o700), os.Chown(root+"/locked", otherUID, otherUID))
	agentFile(t, root+"/locked/h", agentUID, agentGID, 0o644)
	// For the relative calls of an agent that made itself non-dumpable.
	mustDo(t, os.Mkdir(root+"/nd", 0o755), os.Chown(root+"/nd", agentUID, agentGID))
	agentFile(t, root+"/nd/g", agentUID, agentGID, 0o644)
}

// nodumpOps, last: an agent that made itself non-dumpable (ssh-agent
// does) changes files by relative path and through descriptors. Its
// /proc/PID is closed to other processes of its user, so the supervisor
// reaches its cwd and descriptors as itself, and only walks on from
// there as the agent.
func nodumpOps(root string) []string {
	return []string{"nodump:-", "cd:" + root + "/nd", "chmod:g", "fchownat:g", "utimensat:g", "setxattr:g",
		"fd-fchmod:g", "fd-fsetxattr:g", "futimens:g", "fchmodat-dirfd:" + root + "/nd/g"}
}

var attrErrnoCalls = []string{
	"chmod", "fchmodat", "fchmodat2", "fchmodat2-nofollow", "fchmodat2-badflags", "chmod-suid", "fchmodat-dirfd",
	"chown", "lchown", "fchownat", "chown-uid", "chown-self", "chgrp-root",
	"utime", "utime-now", "utimes", "utimes-now", "utimes-badusec", "futimesat",
	"utimensat", "utimensat-nofollow", "utimensat-omit", "utimensat-now", "utimensat-badns", "futimens", "futimens-opath",
	"setxattr", "lsetxattr", "setxattrat", "setxattrat-empty", "setxattrat-empty-opath", "fchownat-empty-opath", "setxattr-create", "setxattr-replace", "setxattr-badflags",
	"setxattr-trusted", "setxattr-emptyname", "setxattr-big",
	"removexattr", "lremovexattr", "removexattrat", "removexattr-missing",
	"fd-fchmod", "fd-fchown", "fd-fsetxattr", "fd-fremovexattr", "fdpath-fchmod", "fdpath-fchown", "fdpath-fsetxattr", "fdpath-fremovexattr",
}

var attrErrnoTargets = []string{"own", "other644", "other666", "ownlink", "missing", "own/x", "locked/h", "dirlink/g", "sub"}

// TestEmulatedAttrErrnos: what an emulated call returns, and what it does
// to the file, is what the kernel itself returns and does for the same
// user: every call against files of the agent's and of another user,
// symlinks, missing names, a directory the agent may not search, bad
// flags and values. Two differences are documented: a symlink's own
// extended attributes cannot be reached through a descriptor, so
// lsetxattr and lremovexattr on a symlink are refused (ECAPABILITY) where
// the kernel says EPERM to an agent without capabilities; and utimensat
// with both times UTIME_OMIT, which the kernel answers 0 without walking
// the path, gets the walk's error when the path does not resolve.
func TestEmulatedAttrErrnos(t *testing.T) {
	needRoot(t)
	dir, bin := attrWorld(t)
	supRoot, refRoot := dir+"/s", dir+"/r"
	attrTree(t, supRoot)
	attrTree(t, refRoot)
	ops := func(root string) []string {
		var o []string
		for _, c := range attrErrnoCalls {
			for _, tg := range attrErrnoTargets {
				o = append(o, c+":"+root+"/"+tg)
			}
		}
		return append(o, nodumpOps(root)...)
	}
	d := newTestDecider(attrCaps(t, bin, supRoot+"/**"))
	supOut, _ := runAttrAgent(t, d, bin, ops(supRoot)...)
	refOut := runAttrPlain(t, bin, ops(refRoot)...)
	sup := parseProbe(t, strings.ReplaceAll(supOut, supRoot, "ROOT"))
	ref := parseProbe(t, strings.ReplaceAll(refOut, refRoot, "ROOT"))
	if len(ref) != len(attrErrnoCalls)*len(attrErrnoTargets)+len(nodumpOps("")) {
		t.Fatalf("plain run: %d results", len(ref))
	}
	kinds := map[int]bool{}
	for op, want := range ref {
		got, ok := sup[op]
		kinds[want] = true
		switch {
		case !ok:
			t.Errorf("%s: no supervised result", op)
		case (strings.HasPrefix(op, "lsetxattr:") || strings.HasPrefix(op, "lremovexattr:")) && strings.HasSuffix(op, "/ownlink"):
			if got != int(ECapability) || want != int(unix.EPERM) {
				t.Errorf("%s: errno %d (kernel %d), want ECAPABILITY where the kernel says EPERM", op, got, want)
			}
		case strings.HasPrefix(op, "utimensat-omit:") && want == 0 && got != 0:
			// Both times UTIME_OMIT: the kernel returns 0 before it even
			// walks the path; the supervisor walks and decides first.
			if got != int(unix.ENOENT) && got != int(unix.ENOTDIR) && got != int(unix.EACCES) {
				t.Errorf("%s: errno %d, want 0 or the walk's error", op, got)
			}
		case got != want:
			t.Errorf("%s: errno %d, the kernel's %d", op, got, want)
		}
	}
	// The comparison covered success and the usual failures.
	for _, e := range []unix.Errno{0, unix.EPERM, unix.EACCES, unix.ENOENT, unix.ENOTDIR, unix.EINVAL, unix.EBADF, unix.EEXIST, unix.ENODATA, unix.ERANGE, unix.E2BIG, unix.EOPNOTSUPP} {
		if !kinds[int(e)] {
			t.Errorf("no case where the kernel answered %v", e)
		}
	}
	// And the files ended up the same. Times set to "now" differ between
	// the two runs by construction; explicit ones (around 2001) must not.
	for _, op := range nodumpOps("ROOT") {
		if ref[op] != 0 {
			t.Errorf("%s: the kernel answered %d to the non-dumpable agent", op, ref[op])
		}
	}
	for _, p := range []string{"own", "other644", "other666", "ownlink", "sub", "sub/g", "locked/h", "nd/g"} {
		s, r := stateOf(t, supRoot+"/"+p), stateOf(t, refRoot+"/"+p)
		s.ctime, r.ctime = unix.Timespec{}, unix.Timespec{}
		for _, ts := range []*unix.Timespec{&s.atime, &s.mtime, &r.atime, &r.mtime} {
			if ts.Sec > 1600000000 {
				*ts = unix.Timespec{Sec: -1} // "now"
			}
		}
		if fmt.Sprint(s) != fmt.Sprint(r) {
			t.Errorf("%s: supervised %+v, kernel %+v", p, s, r)
		}
	}
}

// TestAsAgentRestores: the thread that performed a call as an agent gets
// the supervisor's credentials back, and no thread of the process keeps
// the agent's (fsuid, fsgid, groups, effective capabilities), whatever
// the call did.
func TestAsAgentRestores(t *testing.T) {
	needRoot(t)
	before := threadCredLines(t)
	c := agentCreds{fsuid: agentUID, fsgid: agentGID, groups: []uint32{agentGID, agentGID2}}
	done := make(chan error)
	for i := 0; i < 8; i++ {
		go func() {
			var err error
			for k := 0; k < 50 && err == nil; k++ {
				var saw agentCreds
				var e unix.Errno
				e, err = asAgent(c, func() unix.Errno {
					var ce unix.Errno
					saw, ce = credsOf(unix.Gettid())
					return ce
				})
				if err == nil && (e != 0 || saw.fsuid != agentUID || saw.fsgid != agentGID || saw.capEff != 0 ||
					fmt.Sprint(saw.groups) != fmt.Sprint(c.groups)) {
					err = fmt.Errorf("during the call: %+v (errno %d)", saw, e)
				}
			}
			done <- err
		}()
	}
	for i := 0; i < 8; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if after := threadCredLines(t); after != before {
		t.Fatalf("a thread kept other credentials:\nbefore %s\nafter  %s", before, after)
	}
}

// threadCredLines lists the distinct credentials of this process's
// threads.
func threadCredLines(t *testing.T) string {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/status")
		if err != nil {
			continue // gone
		}
		var keep []string
		for _, l := range strings.Split(string(b), "\n") {
			for _, k := range []string{"Uid:", "Gid:", "Groups:", "CapEff:", "CapPrm:"} {
				if strings.HasPrefix(l, k) {
					keep = append(keep, strings.Join(strings.Fields(l), " "))
				}
			}
		}
		seen[strings.Join(keep, "; ")] = true
	}
	var out []string
	for k := range seen {
		out = append(out, k)
	}
	return strings.Join(out, " | ")
}

// TestCredsOfFixed: a thread without capabilities, with no_new_privs and
// one uid and gid can never change its credentials (its entry may be
// kept); the test process, root with capabilities, can.
func TestCredsOfFixed(t *testing.T) {
	needRoot(t)
	c, e := credsOf(unix.Gettid())
	if e != 0 || c.fsuid != 0 || c.capEff == 0 || c.fixed {
		t.Fatalf("test process: %+v %v", c, e)
	}
	cmd := exec.Command("/bin/sleep", "10")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: agentUID, Gid: agentGID, Groups: []uint32{agentGID2}}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	c, e = credsOf(cmd.Process.Pid)
	// No no_new_privs: a setuid program could still change them.
	if e != 0 || c.fsuid != agentUID || c.fsgid != agentGID || fmt.Sprint(c.groups) != "[4243]" || c.capEff != 0 || c.fixed {
		t.Fatalf("sleep: %+v %v", c, e)
	}
	var cc credCache
	defer cc.closeAll()
	if got, e := cc.get(cmd.Process.Pid); e != 0 || got.fsuid != agentUID || len(cc.m) != 0 {
		t.Fatalf("cache: %+v %v, %d entries (nothing that can change is kept)", got, e, len(cc.m))
	}
}

// TestFloorless: where Landlock has no TRUNCATE right (ABI < 3), the calls
// that truncate without opening for writing are refused rather than
// continued; from ABI 3 the floor covers them.
func TestFloorless(t *testing.T) {
	tests := []struct {
		name  string
		nr    int32
		flags uint64
		want  map[int]unix.Errno // by ABI
	}{
		{"truncate", unix.SYS_TRUNCATE, 0, map[int]unix.Errno{1: ECapability, 2: ECapability, 3: 0, 7: 0}},
		{"open O_RDONLY|O_TRUNC", unix.SYS_OPENAT, unix.O_RDONLY | unix.O_TRUNC, map[int]unix.Errno{2: ECapability, 3: 0}},
		{"open O_WRONLY|O_TRUNC", unix.SYS_OPENAT, unix.O_WRONLY | unix.O_TRUNC, map[int]unix.Errno{2: 0, 3: 0}},
		{"open O_RDONLY", unix.SYS_OPENAT, unix.O_RDONLY, map[int]unix.Errno{1: 0}},
		{"chmod", unix.SYS_CHMOD, 0, map[int]unix.Errno{1: 0}}, // emulated, never continued
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &seccompData{Nr: tt.nr}
			d.Args[2] = tt.flags
			ops, _, _ := operands(d, nil)
			for abi, want := range tt.want {
				if got := floorless(abi, d, ops); got != want {
					t.Errorf("ABI %d: %v, want %v", abi, got, want)
				}
			}
		})
	}
	if landlockABI() < landlockTruncateABI {
		t.Logf("this kernel's Landlock ABI %d has no TRUNCATE", landlockABI())
	}
}

// TestEmulatedAttrFDRace: the descriptor forms (fchmod, fchown, fsetxattr,
// fremovexattr) on one descriptor number that a second thread keeps
// dup2()ing between a file the agent may write and one it may only read
// (of its own user, so the kernel would let the change through). Reading
// is not enough to change attributes, and the number swapped after the
// check does not move the change: the read-only file is unchanged.
func TestEmulatedAttrFDRace(t *testing.T) {
	needRoot(t)
	const n = 2000
	dir, bin := attrWorld(t)
	allowedDir, roDir := filepath.Join(dir, "A"), filepath.Join(dir, "B")
	allowed, ro := filepath.Join(allowedDir, "f"), filepath.Join(roDir, "f")
	for _, d := range []string{allowedDir, roDir} {
		mustDo(t, os.Mkdir(d, 0o755), os.Chown(d, agentUID, agentGID))
	}
	agentFile(t, allowed, agentUID, agentGID, 0o644)
	agentFile(t, ro, agentUID, agentGID, 0o644)
	before := stateOf(t, ro)
	calls := []string{"fchmod", "fchown", "fsetxattr", "fremovexattr"}
	caps := attrCaps(t, bin, allowedDir+"/**")
	ro1, _ := capability.ParseAll([]string{"fs.read:" + roDir + "/**"})
	d := newTestDecider(append(caps, ro1...))
	op := func(c string) string { return fmt.Sprintf("fdrace:%s:%d:%s:%s", c, n, allowed, ro) }
	// EBADF: between the two halves of a dup2 the number may be closed,
	// as without Coconut.
	raceRounds(t, d, bin, calls, op, "fdrace:", n, []int{int(unix.EBADF)})
	if after := stateOf(t, ro); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the read-only file changed:\nbefore %+v\nafter  %+v", before, after)
	}
	for _, c := range calls {
		for _, ev := range d.Events() {
			if ev.Syscall == c && (ev.Allowed && ev.Path != allowed || !ev.Allowed && ev.Path != ro) {
				t.Errorf("%s: row for %q (allowed %v)", c, ev.Path, ev.Allowed)
			}
		}
	}
	if a := stateOf(t, allowed); a.mode&0o777 != 0o600 || a.gid != agentGID2 || a.xattrs["user.s5"] != "1" {
		t.Errorf("the writable file did not take the changes: %+v", a)
	}
}

// raceRounds runs one attrops race op per call class and checks that each
// class met both files (successes on the allowed one, ECAPABILITY on the
// other) and nothing else but the errnos in also (and ENODATA for the
// remove calls, which succeed once). On a loaded machine the racer can go
// unscheduled for a whole class, so a class that met only one file runs
// again, up to three rounds; the protected file is checked by the caller
// after all of them. It returns how many calls the supervisors emulated.
func raceRounds(t *testing.T, d Decider, bin string, classes []string, op func(string) string, prefix string, n int, also []int) uint64 {
	t.Helper()
	var emulated uint64
	todo := classes
	for round := 1; len(todo) > 0; round++ {
		var ops []string
		for _, c := range todo {
			ops = append(ops, op(c))
		}
		out, s := runAttrAgent(t, d, bin, ops...)
		emulated += s.Counters().Emulated
		counts := map[string]map[int]int{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(line)
			if len(f) != 3 || !strings.HasPrefix(f[0], prefix) {
				t.Fatalf("attrops line %q", line)
			}
			e, _ := strconv.Atoi(f[1])
			k, _ := strconv.Atoi(f[2])
			c := strings.TrimPrefix(f[0], prefix)
			if counts[c] == nil {
				counts[c] = map[int]int{}
			}
			counts[c][e] += k
		}
		var again []string
		for _, c := range todo {
			got := counts[c]
			ok, denied, other := 0, got[int(ECapability)], 0
			for e, k := range got {
				switch {
				case e == 0 || e == int(unix.ENODATA) && strings.Contains(c, "remove"):
					ok += k
				case e == int(ECapability) || slices.Contains(also, e):
				default:
					other += k
				}
			}
			if other != 0 || len(got) == 0 {
				t.Errorf("%s: errnos %v: want only successes on the allowed file and ECAPABILITY on the other", c, got)
			} else if ok == 0 || denied == 0 {
				if round == 3 {
					t.Errorf("%s: errnos %v after %d rounds of %d calls: the race never met both files", c, got, round, n)
				} else {
					again = append(again, c)
				}
			}
		}
		todo = again
		if round == 3 {
			break
		}
	}
	return emulated
}
