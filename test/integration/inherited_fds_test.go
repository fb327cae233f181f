package integration

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// inheritScript is the agent: it lists the descriptors it holds (through
// ls for the log, and by number), then tries to read descriptors 3, 4 and
// 9 through their numbers, which is how an agent would use what coconutd
// inherited.
const inheritScript = `ls -l /proc/$$/fd
fds=""; n=0
while [ $n -lt 1024 ]; do [ -e /proc/$$/fd/$n ] && fds="$fds $n"; n=$((n+1)); done
echo "FDS$fds"
for n in 3 4 9; do
  if read -r x <&$n; then echo "READ$n ok $x"; else echo "READ$n failed"; fi
done 2>/dev/null
echo DONE`

// TestInheritedDescriptorsStayOut starts coconutd the way a careless
// script would: a socket-activation listener on fd 3 (LISTEN_FDS=1 with
// LISTEN_PID naming coconutd), a pipe with data on fd 4 and a key file
// only root may open on fd 9. coconutd keeps the listener and closes the
// other two; the agent holds 0, 1 and 2 only, and reading 3, 4 or 9 fails
// (issue 11, part 3).
func TestInheritedDescriptorsStayOut(t *testing.T) {
	dir := t.TempDir() // 0700: the agent's user cannot open the key by name
	secret := filepath.Join(dir, "id_key")
	if err := os.WriteFile(secret, []byte("inherited-key-material\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := os.Open(secret)
	if err != nil {
		t.Fatal(err)
	}
	defer key.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	pw.Write([]byte("piped-secret\n"))
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "activation.sock"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	lf, err := l.File()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	lsock, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(lf.Fd())))
	pipeIno, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(pr.Fd())))

	e := newEnvWith(t, func(c *exec.Cmd) {
		// systemd sets LISTEN_PID to the service's pid: the shell's,
		// which exec keeps.
		c.Args = append([]string{"sh", "-c", `export LISTEN_PID=$$ LISTEN_FDS=1; exec "$0" "$@"`, c.Path}, c.Args[1:]...)
		c.Path = "/bin/sh"
		c.ExtraFiles = []*os.File{lf, pr, nil, nil, nil, nil, key}
	})

	t.Run("coconutd", func(t *testing.T) {
		fdDir := "/proc/" + strconv.Itoa(e.daemon.Process.Pid) + "/fd"
		ents, err := os.ReadDir(fdDir)
		if err != nil {
			t.Fatal(err)
		}
		var three string
		for _, ent := range ents {
			target, _ := os.Readlink(filepath.Join(fdDir, ent.Name()))
			if target == secret || target == pipeIno {
				t.Errorf("coconutd still holds fd %s -> %s", ent.Name(), target)
			}
			if ent.Name() == "3" {
				three = target
			}
		}
		if three != lsock {
			t.Errorf("coconutd fd 3 is %q, want the activation socket %q kept", three, lsock)
		}
		if log, _ := os.ReadFile(e.logPath); !strings.Contains(string(log), "closed inherited descriptors") {
			t.Errorf("coconutd did not log what it closed:\n%s", log)
		}
	})

	t.Run("agent", func(t *testing.T) {
		aid := mustAID(t, e.must("agent", "run", "--name", "inheritor", "--workdir", "/",
			"--cap", "fs.exec:/usr/bin/**", "--", "/bin/sh", "-c", inheritScript))
		logs := e.waitLog(aid, "DONE")
		t.Logf("agent:\n%s", logs)
		for _, w := range []string{"FDS 0 1 2\n", "READ3 failed\n", "READ4 failed\n", "READ9 failed\n"} {
			if !strings.Contains(logs, w) {
				t.Errorf("want %q in the agent's log", strings.TrimSpace(w))
			}
		}
		for _, leak := range []string{"inherited-key-material", "piped-secret"} {
			if strings.Contains(logs, leak) {
				t.Errorf("the agent read %q through an inherited descriptor", leak)
			}
		}
	})
}
