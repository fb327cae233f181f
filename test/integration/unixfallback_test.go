package integration

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// netClient connects to each TCP port given and sends one datagram to
// each Unix datagram socket given (dgram:PATH), printing "CASE tag: ...".
const netClient = `
import socket, sys
for a in sys.argv[1:]:
    try:
        if a.startswith("dgram:"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            s.sendto(b"x", a[6:])
        else:
            s = socket.create_connection(("127.0.0.1", int(a)), timeout=5)
        print("CASE %s: ok" % a, flush=True)
    except OSError as e:
        print("CASE %s: errno=%d" % (a, e.errno), flush=True)
print("NET-DONE", flush=True)
`

// TestUnixFallback: with the network guard's Unix socket hooks off
// (COCONUT_UNIX_HOOKS=off, as on a kernel before 6.7), the seccomp
// supervisor checks Unix addresses instead: the fd-passing escape still
// fails on a pathname and an abstract socket (ECAPABILITY, a cap.deny row
// with the unix object, the key never read) and so does a datagram to a
// socket not in the allowlist, while the API socket stays reachable; TCP
// is still the guard's (an allowed port connects, another gets
// ECAPABILITY); counters agree and doctor says the fallback is in use.
func TestUnixFallback(t *testing.T) {
	t.Setenv("COCONUT_UNIX_HOOKS", "off")
	e := newEnv(t)
	uid, home := e.demo()
	if d := e.must("doctor"); !strings.Contains(d, "unix-sockets") || !strings.Contains(d, "decided by the seccomp supervisor") {
		t.Fatalf("doctor does not say the fallback is in use:\n%s", d)
	}
	proj := filepath.Join(home, "projects/dream-team")
	key := filepath.Join(home, ".ssh/id_ed25519")
	f := newFdEscape(t, uid, key, "unixfb")
	dgram := filepath.Join(f.dir, "dgram.sock")
	pc, err := net.ListenPacket("unixgram", dgram)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	os.Chmod(dgram, 0o777)
	ports := make([]string, 2)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		ports[i] = strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	}
	nscript := filepath.Join(f.dir, "net.py")
	os.WriteFile(nscript, []byte(netClient), 0o644)

	cmd := python + " -I -S " + f.script + " --api=1 " + f.path + " " + f.abstract + "; " +
		python + " -I -S " + nscript + " " + ports[0] + " " + ports[1] + " dgram:" + dgram
	aid := mustAID(t, e.must("agent", "run", "--name", "unix-fallback", "--workdir", proj,
		"--cap", "fs.read:"+proj+"/**", "--cap", "fs.exec:/usr/bin/**", "--cap", "fs.read:"+f.dir+"/**",
		"--cap", "net.connect:127.0.0.1:"+ports[0],
		"--", "/bin/bash", "-c", cmd))
	id := strconv.FormatUint(aid, 10)
	logs := e.waitLog(aid, "NET-DONE")
	t.Logf("agent:\n%s", logs)
	f.checkAgent(t, logs)

	for _, a := range []string{"dgram:" + dgram, ports[1]} {
		if l := caseLine(logs, a); l != "errno=134" {
			t.Errorf("agent to %s: %q, want errno=134", a, l)
		}
	}
	if l := caseLine(logs, ports[0]); l != "ok" {
		t.Errorf("agent connect to its allowed port: %q, want ok", l)
	}

	denies := e.denyRows(id, "unix "+f.path, "unix "+f.abstract, "unix "+dgram, "tcp 127.0.0.1:"+ports[1])
	e.countersAgree(uint64(len(denies)))
	e.must("audit", "verify")
}
