package supervise

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/testutil"
	"golang.org/x/sys/unix"
)

func needRoot(t testing.TB) {
	t.Helper()
	testutil.RequireRoot(t, "the supervisor reads other processes' memory and mounts are tried")
}

func socketPair(t testing.TB) (*os.File, *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(fds[0]), "sup"), os.NewFile(uintptr(fds[1]), "agent")
}

func self(t testing.TB) string {
	t.Helper()
	p, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p, err = filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// agentCmd is the trampoline re-exec that becomes a probe running ops.
func agentCmd(t testing.TB, conn *os.File, ops ...string) *exec.Cmd {
	exe := self(t)
	cmd := exec.Command(exe, append([]string{exe}, ops...)...)
	cmd.Args[0] = exe
	cmd.Env = []string{modeEnv + "=trampoline", staticEnv + "=" + os.Getenv(staticEnv), trapUnixEnv + "=" + os.Getenv(trapUnixEnv), floorEnv + "=" + os.Getenv(floorEnv)}
	cmd.ExtraFiles = []*os.File{conn}
	return cmd
}

// runAgent runs ops in a supervised probe and returns each op's errno.
func runAgent(t testing.TB, agent AgentInfo, d Decider, ops ...string) (map[string]int, *Server) {
	t.Helper()
	return runAgentWith(t, agent, d, nil, ops...)
}

// runAgentWith is runAgent with prep applied to the agent's command first
// (a cgroup to start in).
func runAgentWith(t testing.TB, agent AgentInfo, d Decider, prep func(*exec.Cmd), ops ...string) (map[string]int, *Server) {
	t.Helper()
	sup, ag := socketPair(t)
	defer sup.Close()
	var out, errb bytes.Buffer
	cmd := agentCmd(t, ag, ops...)
	if prep != nil {
		prep(cmd)
	}
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ag.Close()
	s, err := Start(sup, agent, d)
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
	return parseProbe(t, out.String()), s
}

func parseProbe(t testing.TB, out string) map[string]int {
	got := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		n, err := strconv.Atoi(line[i+1:])
		if err != nil {
			t.Fatalf("probe line %q", line)
		}
		got[line[:i]] = n
	}
	return got
}

// tree builds dir/allowed and dir/denied with a file f in each, and returns
// dir with symlinks resolved.
func tree(t *testing.T) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"allowed", "denied"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, d, "f"), []byte(d), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	a := filepath.Join(dir, "allowed")
	must(os.Symlink("../denied/f", filepath.Join(a, "link")))
	must(os.Symlink("f", filepath.Join(a, "goodlink")))
	must(os.Symlink("/f", filepath.Join(a, "abs")))
	must(os.Symlink("loop", filepath.Join(a, "loop")))
	// A user's file, hard-linked into the allowed tree from outside.
	must(os.Chown(filepath.Join(dir, "denied", "f"), 65534, 65534))
	must(os.Link(filepath.Join(dir, "denied", "f"), filepath.Join(a, "hardlink")))
	tru, err := os.ReadFile("/bin/true")
	must(err)
	must(os.WriteFile(filepath.Join(a, "true"), tru, 0o755))
	must(os.WriteFile(filepath.Join(dir, "denied", "true"), tru, 0o755))
	must(os.Mkdir(filepath.Join(dir, "mnt"), 0o755))
	return dir
}

func bundle(t testing.TB, dir string) []capability.Cap {
	t.Helper()
	caps, err := capability.ParseAll([]string{
		"fs.exec:" + self(t),
		// The dynamic loader, when the test binary is linked dynamically
		// (-race).
		"fs.read:/etc/ld.so.cache",
		"fs.read:/usr/lib/**",
		"fs.read:" + dir + "/allowed/**",
		"fs.write:" + dir + "/allowed/**",
		"fs.exec:" + dir + "/allowed/true",
	})
	if err != nil {
		t.Fatal(err)
	}
	return caps
}

func TestSupervisedAgent(t *testing.T) {
	needRoot(t)
	dir := tree(t)
	a, dn := dir+"/allowed", dir+"/denied"
	tests := []struct {
		name, op string
		want     int
	}{
		{"read allowed", "read:" + a + "/f", 0},
		{"read denied", "read:" + dn + "/f", 134},
		{"symlink to denied", "read:" + a + "/link", 134},
		{"symlink to allowed", "read:" + a + "/goodlink", 0},
		{"symlink loop", "read:" + a + "/loop", int(unix.ELOOP)},
		{"dotdot walk", "read:" + a + "/../denied/f", 134},
		{"missing file", "read:" + a + "/nothing", int(unix.ENOENT)},
		{"hard link made outside", "read:" + a + "/hardlink", 134},
		{"openat dirfd allowed", "openat:" + a + ":f", 0},
		{"openat dirfd denied", "openat:" + dn + ":f", 134},
		{"openat dirfd dotdot", "openat:" + a + ":../denied/f", 134},
		{"openat2 in root", "openat2:" + a + ":abs", 0},
		{"proc root", "read:/proc/self/root" + dn + "/f", 134},
		{"create allowed", "write:" + a + "/new", 0},
		{"create denied", "write:" + dn + "/new", 134},
		{"create through symlink", "write:" + a + "/link", 134},
		{"mkdir allowed", "mkdir:" + a + "/d", 0},
		{"mkdir denied", "mkdir:" + dn + "/d", 134},
		{"symlink in allowed", "symlink:" + dn + "/f:" + a + "/sl", 0},
		{"link denied into allowed", "link:" + dn + "/f:" + a + "/stolen", 134},
		{"rename denied into allowed", "rename:" + dn + "/f:" + a + "/moved", 134},
		{"unlink denied", "unlink:" + dn + "/true", 134},
		{"exec allowed", "exec:" + a + "/true", 0},
		{"exec denied", "exec:" + dn + "/true", 134},
		{"exec not granted", "exec:/bin/true", 134},
		{"chdir", "chdir:" + a, 0},
		{"relative allowed", "read:f", 0},
		{"relative dotdot", "read:../denied/f", 134},
		{"proc self cwd", "read:/proc/self/cwd/f", 0},
		{"proc self cwd dotdot", "read:/proc/self/cwd/../denied/f", 134},
		{"proc thread-self cwd", "read:/proc/thread-self/cwd/f", 0},
		{"mount", "mount:" + dir + "/mnt", 134},
		{"bpf", "bpf", 134},
		{"unshare user", "unshare-user", 134},
		{"ptrace", "ptrace", 134},
		{"packet socket", "packet", 134},
		{"clone3", "clone3", int(unix.ENOSYS)},
	}
	ops := make([]string, len(tests))
	for i, tt := range tests {
		ops[i] = tt.op
	}
	d := newTestDecider(bundle(t, dir))
	got, s := runAgent(t, AgentInfo{AID: 42}, d, ops...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, ok := got[tt.op]
			if !ok {
				t.Fatalf("no result for %q", tt.op)
			}
			if n != tt.want {
				t.Errorf("%s: errno %d, want %d", tt.op, n, tt.want)
			}
		})
	}
	t.Run("events", func(t *testing.T) {
		var denied, allowedRead bool
		for _, ev := range d.Events() {
			if ev.AID != 42 || ev.Seq == 0 {
				t.Errorf("bad event %+v", ev)
			}
			if !ev.Allowed && ev.Path == dn+"/f" && ev.Errno == ECapability && ev.Access == Read {
				denied = true
			}
			if ev.Allowed && ev.Path == a+"/f" && ev.Access == Read {
				allowedRead = true
			}
		}
		if !denied || !allowedRead {
			t.Errorf("missing deny (%v) or first-read (%v) event in %+v", denied, allowedRead, d.Events())
		}
		// The calls refused whatever the bundle are rows too.
		for _, want := range []struct{ syscall, cap, object string }{
			{"mount", "sys.mount", "mount " + dir + "/mnt"},
			{"bpf", "sys.bpf", "bpf cmd=0"},
			{"unshare", "sys.namespace", "unshare flags=0x10000000"},
			{"ptrace", "sys.ptrace", "ptrace request=16 pid=1"},
			{"socket", "net.socket", "socket family=17 type=2 protocol=0"},
		} {
			found := false
			for _, ev := range d.Events() {
				if ev.Syscall == want.syscall && ev.Cap == want.cap && ev.Object == want.object && !ev.Allowed && ev.Errno == ECapability {
					found = true
				}
			}
			if !found {
				t.Errorf("no %s row %+v in %+v", want.syscall, want, d.Events())
			}
		}
		c := s.Counters()
		if c.Denied == 0 || c.Allowed == 0 || c.Notifications < c.Denied+c.Allowed {
			t.Errorf("counters %+v", c)
		}
	})
	if _, err := os.Stat(dir + "/allowed/stolen"); err == nil {
		t.Error("the denied file was linked into the allowed tree")
	}
}

// TestRevokeTakesEffect: a bundle changed with Set applies to the next call.
func TestRevokeTakesEffect(t *testing.T) {
	needRoot(t)
	dir := tree(t)
	d := newTestDecider(bundle(t, dir))
	sup, ag := socketPair(t)
	defer sup.Close()
	cmd := agentCmd(t, ag, "read:"+dir+"/allowed/f", "wait", "read:"+dir+"/allowed/f")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ag.Close()
	s, err := Start(sup, AgentInfo{}, d)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	first, _ := r.ReadString('\n')
	d.Set(bundle(t, dir)[:1]) // keep only the probe's own exec
	io.WriteString(stdin, "\n")
	rest, _ := io.ReadAll(r)
	cmd.Wait()
	s.Wait()
	got := parseProbe(t, first+string(rest))
	if got["read:"+dir+"/allowed/f"] != 134 || !strings.HasSuffix(strings.TrimSpace(first), " 0") {
		t.Fatalf("before revoke %q, after %q", first, rest)
	}
}

// TestSupervisorDeathFailsClosed kills a supervisor running in its own
// process: the agent's trapped calls must then fail, never pass.
func TestSupervisorDeathFailsClosed(t *testing.T) {
	needRoot(t)
	dir := tree(t)
	sup, ag := socketPair(t)
	exe := self(t)
	var capArgs []string
	for _, c := range bundle(t, dir) {
		capArgs = append(capArgs, c.String())
	}
	sc := exec.Command(exe, capArgs...)
	sc.Env = []string{modeEnv + "=supervisor"}
	sc.ExtraFiles = []*os.File{sup}
	supOut, _ := sc.StdoutPipe()
	var supErr bytes.Buffer
	sc.Stderr = &supErr
	if err := sc.Start(); err != nil {
		t.Fatal(err)
	}
	sup.Close()
	f := dir + "/allowed/f"
	cmd := agentCmd(t, ag, "read:"+f, "wait", "read:"+f, "getpid", "exec:"+dir+"/allowed/true")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var agErr bytes.Buffer
	cmd.Stderr = &agErr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ag.Close()
	defer cmd.Process.Kill()
	if line, err := bufio.NewReader(supOut).ReadString('\n'); line != "serving\n" {
		t.Fatalf("supervisor: %q %v %s", line, err, supErr.String())
	}
	r := bufio.NewReader(stdout)
	first, err := r.ReadString('\n')
	if first != "read:"+f+" 0\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("before the kill: %q %v %s", first, err, agErr.String())
	}
	sc.Process.Kill()
	sc.Wait()
	io.WriteString(stdin, "\n")
	rest, _ := io.ReadAll(r)
	cmd.Wait()
	got := parseProbe(t, string(rest))
	tests := []struct {
		op   string
		want int
	}{
		{"read:" + f, int(unix.ENOSYS)},
		{"getpid", 0},
		{"exec:" + dir + "/allowed/true", int(unix.ENOSYS)},
	}
	for _, tt := range tests {
		t.Run(tt.op, func(t *testing.T) {
			if got[tt.op] != tt.want {
				t.Errorf("errno %d, want %d (output %q)", got[tt.op], tt.want, rest)
			}
		})
	}
}

// TestMeasuredExec: the trampoline execs a memfd, which has no path; only
// the measured file the supervisor was told about may be run.
func TestMeasuredExec(t *testing.T) {
	needRoot(t)
	bin, err := os.ReadFile(self(t))
	if err != nil {
		t.Fatal(err)
	}
	mfd, err := unix.MemfdCreate("coconut-measured", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	memfd := os.NewFile(uintptr(mfd), "memfd")
	defer memfd.Close()
	if _, err := memfd.Write(bin); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		measured []*os.File
		ok       bool
	}{
		{"measured", []*os.File{memfd}, true},
		{"not measured", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sup, ag := socketPair(t)
			defer sup.Close()
			cmd := agentCmd(t, ag, "getpid")
			cmd.Args = []string{"probe", "getpid"}
			cmd.Env = []string{modeEnv + "=trampoline-memfd"}
			cmd.ExtraFiles = []*os.File{ag, memfd}
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			ag.Close()
			// Only the dynamic loader (-race links dynamically): no fs.exec.
			loader, _ := capability.ParseAll([]string{"fs.read:/etc/ld.so.cache", "fs.read:/usr/lib/**"})
			d := newTestDecider(loader)
			s, err := Start(sup, AgentInfo{Measured: tt.measured}, d)
			if err != nil {
				t.Fatal(err)
			}
			err = cmd.Wait()
			s.Wait()
			if tt.ok && (err != nil || out.String() != "getpid 0\n") {
				t.Fatalf("measured exec refused: %v %q %q", err, out.String(), errb.String())
			}
			if !tt.ok && !strings.Contains(errb.String(), "exec: 134") {
				t.Fatalf("unmeasured memfd ran: %v %q %q", err, out.String(), errb.String())
			}
			if tt.ok {
				return
			}
			// The deny names the file by the kernel's name: it has no path.
			for _, ev := range d.Events() {
				if !ev.Allowed && ev.Access == Exec {
					if ev.Path != "" || ev.Object != "/memfd:coconut-measured (deleted)" {
						t.Fatalf("memfd exec deny: path %q object %q", ev.Path, ev.Object)
					}
					return
				}
			}
			t.Fatalf("no exec deny recorded: %+v", d.Events())
		})
	}
}

func TestReceiveRefusesNonListener(t *testing.T) {
	sup, ag := socketPair(t)
	defer sup.Close()
	defer ag.Close()
	f, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Sendmsg(int(ag.Fd()), []byte{'l'}, unix.UnixRights(int(f.Fd())), nil, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := Receive(sup); err != ErrNotListener {
		t.Fatalf("got %v, want ErrNotListener", err)
	}
	if _, err := ag.Write([]byte{'x'}); err != nil {
		t.Fatal(err)
	}
	if _, err := Receive(sup); err == nil {
		t.Fatal("a message without a descriptor was accepted")
	}
}
