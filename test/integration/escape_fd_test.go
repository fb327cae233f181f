package integration

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// fdPasser listens on a Unix socket (a path, or @name) as a process
// outside coconut and hands every client an open fd of file with
// SCM_RIGHTS: the fd-smuggling escape of issue 3. It counts clients.
func fdPasser(t *testing.T, addr, file string) *atomic.Int64 {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: addr, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if !strings.HasPrefix(addr, "@") {
		os.Chmod(addr, 0o777)
	}
	var n atomic.Int64
	go func() {
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				return
			}
			n.Add(1)
			if f, err := os.Open(file); err == nil {
				c.WriteMsgUnix([]byte("x"), unix.UnixRights(int(f.Fd())), nil)
				f.Close()
			}
			c.Close()
		}
	}()
	return &n
}

// fdClient is the python program both the control run and the agent use:
// for each ADDR argument it connects, takes a passed fd if any and reads
// it, printing one "CASE ADDR: ..." line. --api=1 also connects to the
// daemon's socket; --wait=M1,M2 then waits for each marker file and
// connects to --late=ADDR once per marker.
const fdClient = `
import os, socket, sys, time
def attempt(tag, addr):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(addr.replace("@", "\0", 1) if addr.startswith("@") else addr)
    except OSError as e:
        print("CASE %s: errno=%d" % (tag, e.errno), flush=True)
        return
    try:
        msg, fds, fl, ad = socket.recv_fds(s, 16, 4)
        data = os.read(fds[0], 100) if fds else msg
        print("CASE %s: connected read=%r" % (tag, data), flush=True)
    except OSError as e:
        print("CASE %s: connected errno=%d" % (tag, e.errno), flush=True)
opts = dict(a.split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
for a in sys.argv[1:]:
    if not a.startswith("--"):
        attempt(a, a)
if "--api" in opts:
    attempt("api", os.environ["COCONUT_SOCKET"])
for i, m in enumerate(opts.get("--wait", "").split(",") if "--wait" in opts else []):
    print("WAITING %d" % i, flush=True)
    while not os.path.exists(m):
        time.sleep(0.02)
    attempt("late%d" % i, opts["--late"])
print("CASES-DONE", flush=True)
`

// caseLine returns the "CASE tag: ..." line of out.
func caseLine(out, tag string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "CASE "+tag+": ") {
			return strings.TrimPrefix(l, "CASE "+tag+": ")
		}
	}
	return ""
}

// fdEscape is the fd-smuggling setup the escape tests share: a fresh
// directory, passers of the demo user's key on a pathname and an abstract
// socket, the client program, and a control run of the demo user outside
// coconut that gets the key (so an agent's refusal is the guard's doing,
// not a broken passer).
type fdEscape struct {
	dir, path, abstract, script string
	pathN, absN                 *atomic.Int64
	before                      int64 // passer connections after the control run
}

const python = "/usr/bin/python3"

func newFdEscape(t *testing.T, uid uint32, key, name string) *fdEscape {
	t.Helper()
	dir, err := os.MkdirTemp("", "coconut-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	f := &fdEscape{dir: dir, path: filepath.Join(dir, "passer.sock"),
		abstract: "@coconut-" + name + "-test-" + strconv.Itoa(os.Getpid()), script: filepath.Join(dir, "client.py")}
	f.pathN, f.absN = fdPasser(t, f.path, key), fdPasser(t, f.abstract, key)
	os.WriteFile(f.script, []byte(fdClient), 0o644)
	ctl := exec.Command(python, "-I", "-S", f.script, f.path, f.abstract)
	ctl.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	out, err := ctl.CombinedOutput()
	if err != nil {
		t.Fatalf("control run: %v\n%s", err, out)
	}
	for _, a := range []string{f.path, f.abstract} {
		if l := caseLine(string(out), a); !strings.Contains(l, "not a real key") {
			t.Fatalf("control run did not get the key from %s: %q\n%s", a, l, out)
		}
	}
	f.before = f.pathN.Load() + f.absN.Load()
	return f
}

// checkAgent checks the agent's client output: both passers refused with
// ECAPABILITY and never reached, the key never read, the API socket
// reached (the client ran with --api=1).
func (f *fdEscape) checkAgent(t *testing.T, logs string) {
	t.Helper()
	for _, a := range []string{f.path, f.abstract} {
		if l := caseLine(logs, a); l != "errno=134" {
			t.Errorf("agent connect to %s: %q, want errno=134", a, l)
		}
	}
	if n := f.pathN.Load() + f.absN.Load(); n != f.before {
		t.Errorf("the passers saw %d connections from the agent, want none", n-f.before)
	}
	if strings.Contains(logs, "not a real key") {
		t.Errorf("the agent read the key:\n%s", logs)
	}
	if l := caseLine(logs, "api"); !strings.HasPrefix(l, "connected") {
		t.Errorf("agent connect to the API socket: %q, want connected", l)
	}
}

// denyRows returns the agent's cap.deny rows, failing the test for each
// object that has none.
func (e *env) denyRows(id string, objects ...string) []row {
	e.t.Helper()
	denies := e.rows("--aid", id, "--type", "cap.deny")
	for _, obj := range objects {
		found := false
		for _, r := range denies {
			found = found || r.Object == obj
		}
		if !found {
			e.t.Errorf("no cap.deny row for %q in %+v", obj, denies)
		}
	}
	return denies
}

// TestEscapeFdPassing: a process outside coconut that hands out an fd of
// ~/.ssh/id_ed25519 to whoever connects works for a plain process of the
// demo user (the control), but an agent cannot connect to it, on a
// pathname or an abstract socket: ECAPABILITY, a cap.deny row with the
// unix object, the key never read, counters equal. The same agent reaches
// the daemon's API socket, and a revoke then a grant of
// net.connect:unix: take effect on its next connect.
func TestEscapeFdPassing(t *testing.T) {
	e := newEnv(t)
	uid, home := e.demo()
	proj := filepath.Join(home, "projects/dream-team")
	key := filepath.Join(home, ".ssh/id_ed25519")
	f := newFdEscape(t, uid, key, "fd")
	benign := filepath.Join(f.dir, "benign.sock")
	benignN := fdPasser(t, benign, "/dev/null")

	go1, go2 := filepath.Join(proj, ".fdtest-go1"), filepath.Join(proj, ".fdtest-go2")
	os.Remove(go1)
	os.Remove(go2)
	t.Cleanup(func() { os.Remove(go1); os.Remove(go2) })
	aid := mustAID(t, e.must("agent", "run", "--name", "fd-smuggler", "--workdir", proj,
		"--cap", "fs.read:"+proj+"/**", "--cap", "fs.exec:/usr/bin/**", "--cap", "fs.read:"+f.dir+"/**",
		"--cap", "net.connect:unix:"+benign,
		"--", python, "-I", "-S", f.script, "--api=1", "--wait="+go1+","+go2, "--late="+benign, f.path, f.abstract))
	id := strconv.FormatUint(aid, 10)
	f.checkAgent(t, e.waitLog(aid, "WAITING 0"))

	// Revoke, next connect refused; grant back (within the ceiling the
	// spawn set), next connect allowed.
	e.must("agent", "revoke", id, "net.connect:unix:"+benign)
	os.WriteFile(go1, nil, 0o644)
	logs := e.waitLog(aid, "WAITING 1")
	if l := caseLine(logs, "late0"); l != "errno=134" || benignN.Load() != 0 {
		t.Errorf("after revoke: %q (%d connections), want errno=134", l, benignN.Load())
	}
	e.must("agent", "grant", id, "net.connect:unix:"+benign)
	os.WriteFile(go2, nil, 0o644)
	logs = e.waitLog(aid, "CASES-DONE")
	if l := caseLine(logs, "late1"); !strings.HasPrefix(l, "connected") || benignN.Load() != 1 {
		t.Errorf("after grant: %q (%d connections), want connected", l, benignN.Load())
	}
	t.Logf("agent:\n%s", logs)

	denies := e.denyRows(id, "unix "+f.path, "unix "+f.abstract, "unix "+benign)
	e.countersAgree(uint64(len(denies)))
	e.must("audit", "verify")
}
