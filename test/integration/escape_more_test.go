package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// loader is the ELF interpreter as programs name it; the supervisor
// decides on (and the chain names) the real file behind it.
const loader = "/lib64/ld-linux-x86-64.so.2"

// TestEscapeSuiteMore: the rest of the escape suite (issue 3, item 8),
// each attempt made by a real agent: running code through the dynamic
// loader or a memfd, ptrace and its relatives against a sibling agent and
// coconutd, loading BPF, unsharing a user namespace and retrying, killing.
// Each fails; the ones the supervisor refuses are cap.deny rows; doctor's
// kernel and chain counters stay equal.
func TestEscapeSuiteMore(t *testing.T) {
	e := newEnv(t)
	uid, home := e.demo()
	proj := filepath.Join(home, "projects/dream-team")
	notes := filepath.Join(proj, "notes/escape-more")
	key := filepath.Join(home, ".ssh/id_ed25519")
	os.RemoveAll(notes)
	os.MkdirAll(notes, 0o755)
	os.Chown(notes, int(uid), int(uid))
	t.Cleanup(func() { os.RemoveAll(notes) })
	ld, err := filepath.EvalSymlinks(loader)
	if err != nil {
		t.Fatal(err)
	}
	// A program the agent may read (it is in its project) but not run.
	readable := filepath.Join(proj, "true")
	copyFile(t, "/bin/true", readable, 0o755)
	t.Cleanup(func() { os.Remove(readable) })

	sib := mustAID(t, e.must("agent", "run", "--name", "sibling", "--workdir", "/", "--", "/bin/sleep", "600"))
	sibPID := e.waitState(sib, "Active").PID
	dPID := e.daemon.Process.Pid

	// memfd: /bin/true's bytes in an anonymous file, run by its
	// /proc/self/fd name or by execveat(fd, "", AT_EMPTY_PATH). The file
	// has no path a capability could name: refused like any file outside
	// the bundle.
	memfd := func(exec string) string {
		return `/usr/bin/perl -e 'my $n = "x"; my $fd = syscall(319, $n, 0); if ($fd < 0) { print STDERR "memfd errno=", $!+0, "\n"; exit 2 }
open(my $t, "<", "/bin/true") or die "read true: $!"; binmode $t; local $/; my $d = <$t>;
open(my $m, ">&=", $fd) or die "fdopen: $!"; binmode $m; syswrite($m, $d) == length($d) or die "write: $!";
` + exec + `; print STDERR "errno=", $!+0, "\n"; exit 1'`
	}
	// opath opens path with O_PATH (and flags) in perl as $n, then runs then.
	const oDirectory = 0x10000
	opath := func(path string, flags int, then string) string {
		return fmt.Sprintf(`/usr/bin/perl -e 'my $o = "%s"; sysopen(my $h, $o, 0x200000 | %d) or die "O_PATH open: $!"; my $n = fileno($h); %s'`, path, flags, then)
	}
	ptrace := func(req, pid int) string {
		return perlSyscall(fmt.Sprintf(`my $r = syscall(101, %d, %d, 0, 0)`, req, pid))
	}
	const (
		ptraceAttach = 16
		ptraceSeize  = 0x4206
	)
	cases := []escapeCase{
		// The loader is refused as a program: a direct execve of it is
		// decided on the bundle alone (the baseline keeps it in the floor
		// for the kernel's own loads inside execve).
		{"ld.so a denied binary", loader + ` /usr/sbin/nologin`, []string{ecap}, ld},
		{"ld.so a readable file", loader + ` ./true`, []string{ecap}, ld},
		{"readable file run directly", `./true`, []string{ecap}, readable},
		{"memfd exec by /proc/self/fd", memfd(`exec {"/proc/self/fd/$fd"} "true"`), []string{"errno=134"}, ""},
		{"memfd execveat AT_EMPTY_PATH", memfd(`my $e = ""; syscall(322, $fd, $e, 0, 0, 0x1000)`), []string{"errno=134"}, ""},
		{"ptrace attach sibling", ptrace(ptraceAttach, sibPID), []string{"errno=134"}, fmt.Sprintf("ptrace request=%d pid=%d", ptraceAttach, sibPID)},
		{"ptrace seize sibling", ptrace(ptraceSeize, sibPID), []string{"errno=134"}, fmt.Sprintf("ptrace request=%d pid=%d", ptraceSeize, sibPID)},
		{"ptrace attach coconutd", ptrace(ptraceAttach, dPID), []string{"errno=134"}, fmt.Sprintf("ptrace request=%d pid=%d", ptraceAttach, dPID)},
		{"ptrace seize coconutd", ptrace(ptraceSeize, dPID), []string{"errno=134"}, fmt.Sprintf("ptrace request=%d pid=%d", ptraceSeize, dPID)},
		// ptrace's relatives: the supervisor refuses another process's
		// /proc/PID entries and the cross-process calls on any target
		// outside the agent's cgroup, with a row; under it, Landlock's
		// ptrace scoping would answer EACCES or EPERM.
		{"/proc/PID/mem of sibling", fmt.Sprintf(`read -r l < /proc/%d/mem`, sibPID), []string{ecap}, fmt.Sprintf("/proc/%d/mem", sibPID)},
		{"process_vm_readv sibling", perlSyscall(fmt.Sprintf(`my $b = "\0" x 16; my $l = pack("QQ", unpack("Q", pack("p", $b)), 16); my $v = pack("QQ", 0x400000, 16); my $r = syscall(310, %d, $l, 1, $v, 1, 0)`, sibPID)), []string{"errno=134"}, fmt.Sprintf("process_vm_readv pid=%d", sibPID)},
		{"pidfd_getfd from sibling", perlSyscall(fmt.Sprintf(`my $p = syscall(434, %d, 0); my $r = $p < 0 ? $p : syscall(438, $p, 0, 0)`, sibPID)), []string{"errno=134"}, fmt.Sprintf("pidfd_getfd pid=%d", sibPID)},
		{"pidfd_getfd from coconutd", perlSyscall(fmt.Sprintf(`my $p = syscall(434, %d, 0); my $r = $p < 0 ? $p : syscall(438, $p, 0, 0)`, dPID)), []string{"errno=134"}, fmt.Sprintf("pidfd_getfd pid=%d", dPID)},
		// Signals: the floor's signal scoping, EPERM, unaudited.
		{"kill -9 sibling", fmt.Sprintf(`kill -KILL %d`, sibPID), []string{eperm}, ""},
		{"kill -9 coconutd", fmt.Sprintf(`kill -KILL %d`, dPID), []string{eperm}, ""},
		// O_PATH descriptors are not mediated (they give no access to
		// contents); every later use of one is, on the real file.
		{"open an O_PATH fd by /proc/self/fd", opath(key, 0, `open(my $f, "<", "/proc/self/fd/$n") or do { print STDERR "errno=", $!+0, "\n"; exit 1 }; exit 0`), []string{"errno=134"}, key},
		{"execveat an O_PATH fd", opath("/usr/sbin/nologin", 0, `my $e = ""; syscall(322, $n, $e, 0, 0, 0x1000); print STDERR "errno=", $!+0, "\n"; exit 1`), []string{"errno=134"}, "/usr/sbin/nologin"},
		{"openat2 RESOLVE_IN_ROOT from home", opath(home, oDirectory, `my $p = ".ssh/id_ed25519"; my $h = pack("QQQ", 0, 0, 0x10); my $r = syscall(437, $n, $p, $h, 24); if ($r < 0) { print STDERR "errno=", $!+0, "\n"; exit 1 } exit 0`), []string{"errno=134"}, key},
		{"openat2 RESOLVE_BENEATH from home", opath(home, oDirectory, `my $p = ".ssh/id_ed25519"; my $h = pack("QQQ", 0, 0, 0x8); my $r = syscall(437, $n, $p, $h, 24); if ($r < 0) { print STDERR "errno=", $!+0, "\n"; exit 1 } exit 0`), []string{"errno=134"}, key},
		{"load BPF", perlSyscall(`my $a = "\0" x 144; my $r = syscall(321, 5, $a, 144)`), []string{"errno=134"}, "bpf cmd=5"},
		{"unshare -Ur then read", `/usr/bin/unshare -Ur /bin/cat ` + key, []string{ecap}, "unshare flags=0x10000000"},
		{"retry the read", `read -r l < ` + key, []string{ecap}, key},
	}
	id, logs := runEscapes(t, e, proj, cases,
		"--cap", "fs.read:"+proj+"/**", "--cap", "fs.write:"+notes+"/**", "--cap", "fs.exec:/usr/bin/**",
		"--cap", "fs.read:/usr/share/perl/**")
	denies := e.rows("--aid", id, "--type", "cap.deny")
	checkEscapes(t, logs, denies, cases)
	// The memfd attempts: one exec deny each, on a file with no path,
	// named in the row as the kernel names it.
	if n := countRows(e.capRows("--aid", id, "--type", "cap.deny"), "fs.exec", "/memfd:x (deleted)"); n != 2 {
		t.Errorf("memfd execs: %d cap.deny rows, want 2", n)
	}
	if a := e.agent(sib); a.State != "Active" || !alive(a.PID) {
		t.Errorf("sibling after the escape attempts: %+v", a)
	}
	if !alive(dPID) {
		t.Error("coconutd is gone")
	}
	e.countersAgree(uint64(len(denies)))
	e.must("audit", "verify")
}

// TestEscapeLoaderStatic: with `enforcement: static` the loader trick is
// still refused. Static mode leaves only read-only opens to the floor; the
// execve of the loader is still trapped and decided on the bundle. (The
// floor alone would not stop it: the loader is EXECUTE-allowed there, and
// it maps the readable file with read access only.)
func TestEscapeLoaderStatic(t *testing.T) {
	e := newEnv(t)
	_, home := e.demo()
	proj := filepath.Join(home, "projects/dream-team")
	readable := filepath.Join(proj, "true-static")
	copyFile(t, "/bin/true", readable, 0o755)
	t.Cleanup(func() { os.Remove(readable) })
	ld, err := filepath.EvalSymlinks(loader)
	if err != nil {
		t.Fatal(err)
	}
	cases := []escapeCase{
		{"ld.so a readable file", loader + ` ` + readable, []string{ecap}, ld},
		{"ld.so a denied binary", loader + ` /usr/sbin/nologin`, []string{ecap}, ld},
		{"allowed program still runs", `/usr/bin/true`, nil, ""},
	}
	script := escapeScript(cases) + "exec /usr/bin/sleep 600\n"
	manifest := fmt.Sprintf(`apiVersion: coconut/v1
kind: Workload
metadata:
  name: static-loader
agents:
  - name: loader
    command: ["/bin/bash", "-c", %q]
    workdir: %s
    enforcement: static
    capabilities: ["fs.read:%s/**", "fs.exec:/usr/bin/**"]
`, script, proj, proj)
	key := e.trustedKey("static-loader")
	id := strings.TrimSpace(e.must("agent", "spawn", e.writeSigned("static-loader.yaml", manifest, key)))
	logs := e.waitLog(mustAID(t, id), "CASES-DONE")
	denies := e.rows("--aid", id, "--type", "cap.deny")
	checkEscapes(t, logs, denies, cases)
	e.countersAgree(uint64(len(denies)))
	e.must("agent", "kill", id)
}

// escapeScript turns cases into a bash script that runs each and prints
// its verdict, then CASES-DONE.
func escapeScript(cases []escapeCase) string {
	var script strings.Builder
	script.WriteString(`try() { if out=$(eval "$2" 2>&1 </dev/null); then echo "CASE $1: ok"; else echo "CASE $1: fail: $(echo $out | tr '\n' ' ')"; fi; }` + "\n")
	for _, c := range cases {
		fmt.Fprintf(&script, "try %s %s\n", shQuote(c.name), shQuote(c.cmd))
	}
	script.WriteString("echo CASES-DONE\n")
	return script.String()
}

// runEscapes runs cases in one agent made by `agent run` with the given
// flags and returns its AID and its output.
func runEscapes(t *testing.T, e *env, workdir string, cases []escapeCase, flags ...string) (string, string) {
	t.Helper()
	args := append([]string{"agent", "run", "--name", "escaper", "--workdir", workdir}, flags...)
	args = append(args, "--", "/bin/bash", "-c", escapeScript(cases))
	aid := mustAID(t, e.must(args...))
	logs := e.waitLog(aid, "CASES-DONE")
	t.Logf("agent %d:\n%s", aid, logs)
	return strconv.FormatUint(aid, 10), logs
}

// checkEscapes checks each case's verdict line: refused as wanted (or ok
// when want is empty), and as many cap.deny rows for each object as cases
// expect one.
func checkEscapes(t *testing.T, logs string, denies []row, cases []escapeCase) {
	t.Helper()
	need := map[string]int{}
	for _, c := range cases {
		if c.chain != "" {
			need[c.chain]++
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			line := ""
			for _, l := range strings.Split(logs, "\n") {
				if strings.HasPrefix(l, "CASE "+c.name+": ") {
					line = l
				}
			}
			if len(c.want) == 0 {
				if !strings.HasSuffix(line, ": ok") {
					t.Fatalf("want ok: %q", line)
				}
				return
			}
			if !strings.Contains(line, ": fail: ") {
				t.Fatalf("not refused: %q", line)
			}
			ok := false
			for _, w := range c.want {
				if strings.Contains(line, w) {
					ok = true
				}
			}
			if !ok {
				t.Errorf("refused, but not as expected (want one of %q): %q", c.want, line)
			}
			if c.chain == "" {
				return
			}
			n := 0
			for _, r := range denies {
				if r.Object == c.chain {
					n++
				}
			}
			if n < need[c.chain] {
				t.Errorf("%d cap.deny rows for %s, want %d", n, c.chain, need[c.chain])
			}
		})
	}
}

// countRows counts the events of the rows with capability cap on object:
// an aggregate row (issue 19: detail.count) counts its count, any other 1.
func countRows(rows []capRow, cap, object string) int {
	n := 0
	for _, r := range rows {
		if r.Cap == cap && r.Object == object {
			n += row{Detail: r.Detail}.denies()
		}
	}
	return n
}

// capRow is an audit row with the capability it was about (the harness's
// row leaves it out).
type capRow struct {
	Type   string            `json:"type"`
	Cap    string            `json:"cap"`
	Object string            `json:"object"`
	Detail map[string]string `json:"detail"`
}

func (e *env) capRows(args ...string) []capRow {
	e.t.Helper()
	out := e.must(append([]string{"audit", "query", "--json"}, args...)...)
	var rows []capRow
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var r capRow
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			e.t.Fatalf("audit row %q: %v", line, err)
		}
		rows = append(rows, r)
	}
	return rows
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(to)
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}
