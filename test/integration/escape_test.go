package integration

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// escapeCase is one way out of the bundle, run by a real agent.
type escapeCase struct {
	name string
	cmd  string // bash, run with eval; its stderr is the verdict
	// want lists acceptable refusals, as they appear in bash's or perl's
	// message: "134" for ECAPABILITY, or the floor's EACCES/EPERM where
	// the refusal comes from a layer below the supervisor.
	want []string
	// chain is the object expected in a cap.deny row ("" if the refusing
	// layer does not audit: the plain seccomp filter, Landlock).
	chain string
}

const (
	ecap   = "134"
	eacces = "Permission denied"
	eperm  = "Operation not permitted"
)

// perlSyscall runs one raw system call in perl and prints errno=N on
// failure: bash cannot make openat2, mount or unshare calls itself. (perl
// passes strings to syscall by address: they must be variables.)
func perlSyscall(expr string) string {
	return fmt.Sprintf(`/usr/bin/perl -e '%s; if ($r < 0) { print STDERR "errno=", $!+0, "\n"; exit 1 } exit 0'`, expr)
}

// TestEscapeSuite: an agent that may read its project and write its own
// notes tries every known way to reach ~/.ssh/id_ed25519, run what it may
// not, talk where it may not and leave its box. Each attempt fails; the
// ones the supervisor or the network guard refuse are cap.deny rows; and
// doctor's kernel and chain counters stay equal.
func TestEscapeSuite(t *testing.T) {
	e := newEnv(t)
	uid, home := e.demo()
	proj := filepath.Join(home, "projects/dream-team")
	notes := filepath.Join(proj, "notes/escape")
	key := filepath.Join(home, ".ssh/id_ed25519")
	os.RemoveAll(notes)
	os.MkdirAll(notes, 0o755)
	os.Chown(notes, int(uid), int(uid))
	t.Cleanup(func() { os.RemoveAll(notes) })

	// A hard link to the key, made outside the agent, inside its project.
	leak := filepath.Join(proj, "leak")
	os.Remove(leak)
	if err := os.Link(key, leak); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(leak) })
	// A script the agent may run whose interpreter it may not.
	shebang := filepath.Join(proj, "shebang.sh")
	os.WriteFile(shebang, []byte("#!/usr/sbin/nologin\n"), 0o755)
	t.Cleanup(func() { os.Remove(shebang) })

	// A process of the same user, outside coconut, holding the key open.
	kf, err := os.Open(key)
	if err != nil {
		t.Fatal(err)
	}
	holder := exec.Command("/bin/sleep", "60")
	holder.ExtraFiles = []*os.File{kf}
	holder.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	kf.Close()
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })

	denied, _ := net.Listen("tcp", "127.0.0.1:0")
	defer denied.Close()
	port := denied.Addr().(*net.TCPAddr).Port
	sib := mustAID(t, e.must("agent", "run", "--name", "sibling", "--workdir", "/", "--", "/bin/sleep", "600"))
	sibPID := e.waitState(sib, "Active").PID
	cgroot := e.cgroupRoot()

	cases := []escapeCase{
		{"direct read", `read -r l < ` + key, []string{ecap}, key},
		{"symlink", `ln -s ` + key + ` ` + notes + `/sym && read -r l < ` + notes + `/sym`, []string{ecap}, key},
		{"hard link made outside", `read -r l < ` + leak, []string{ecap}, leak},
		{"/proc/self/root", `read -r l < /proc/self/root` + key, []string{ecap}, key},
		{"dot-dot walk", `read -r l < ` + proj + `/../../.ssh/id_ed25519`, []string{ecap}, key},
		{"/proc/PID/fd of another process", fmt.Sprintf(`read -r l < /proc/%d/fd/3`, holder.Process.Pid), []string{ecap, eacces}, ""},
		{"openat2 RESOLVE_NO_SYMLINKS", perlSyscall(`my $p = "` + key + `"; my $h = pack("QQQ", 0, 0, 4); my $r = syscall(437, -100, $p, $h, 24)`), []string{"errno=134"}, key},
		{"openat2 RESOLVE_NO_MAGICLINKS", perlSyscall(`my $p = "` + key + `"; my $h = pack("QQQ", 0, 0, 2); my $r = syscall(437, -100, $p, $h, 24)`), []string{"errno=134"}, key},
		{"link into allowed dir", `ln ` + key + ` ` + notes + `/hard`, []string{ecap}, key},
		{"rename into allowed dir", `mv ` + key + ` ` + notes + `/moved`, []string{ecap}, key},
		{"exec denied binary", `/usr/sbin/nologin`, []string{ecap}, "/usr/sbin/nologin"},
		{"exec through shebang", shebang, []string{eacces}, ""},
		{"tcp connect", fmt.Sprintf(`exec 7<>/dev/tcp/127.0.0.1/%d`, port), []string{ecap}, fmt.Sprintf("tcp 127.0.0.1:%d", port)},
		{"udp", fmt.Sprintf(`echo x > /dev/udp/127.0.0.1/%d`, port), []string{ecap}, fmt.Sprintf("udp 127.0.0.1:%d", port)},
		{"ipv6", fmt.Sprintf(`exec 7<>/dev/tcp/::1/%d`, port), []string{ecap}, fmt.Sprintf("tcp [::1]:%d", port)},
		{"signal sibling agent", fmt.Sprintf(`kill -TERM %d`, sibPID), []string{eperm}, ""},
		{"signal coconutd", fmt.Sprintf(`kill -TERM %d`, e.daemon.Process.Pid), []string{eperm}, ""},
		{"write cgroup.procs", `echo $$ > ` + cgroot + `/cgroup.procs`, []string{ecap}, cgroot + "/cgroup.procs"},
		{"mount", perlSyscall(`my ($s, $t, $f) = ("none", "` + notes + `", "tmpfs"); my $r = syscall(165, $s, $t, $f, 0, 0)`), []string{"errno=134"}, "mount " + notes},
		{"unshare user namespace", perlSyscall(`my $r = syscall(272, 0x10000000)`), []string{"errno=134"}, "unshare flags=0x10000000"},
	}
	id, logs := runEscapes(t, e, proj, cases,
		"--cap", "fs.read:"+proj+"/**", "--cap", "fs.write:"+notes+"/**", "--cap", "fs.exec:/usr/bin/**",
		"--cap", "fs.exec:"+shebang, "--cap", "fs.read:/usr/share/perl/**")
	if b, err := os.ReadFile(key); err != nil || string(b) != "not a real key\n" {
		t.Fatalf("the key was moved or changed: %q %v", b, err)
	}
	denies := e.rows("--aid", id, "--type", "cap.deny")
	checkEscapes(t, logs, denies, cases) // escape_more_test.go
	if a := e.agent(sib); a.State != "Active" || !alive(a.PID) {
		t.Errorf("sibling after the escape attempts: %+v", a)
	}
	e.countersAgree(uint64(len(denies)))
	e.must("audit", "verify")
}

// shQuote quotes s for bash: nothing inside single quotes is expanded.
func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
