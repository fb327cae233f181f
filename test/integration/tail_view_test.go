package integration

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTailView: coconut-tail (`coconut audit tail -f`) starts with a header
// naming the chain head and the latest checkpoint, then each agent's spawn,
// attestation and Active rows, then live rows from the event stream; on a
// terminal denies are red, and NO_COLOR turns colour off.
func TestTailView(t *testing.T) {
	e := newEnv(t)
	uid, _ := e.demo()
	cred := &syscall.Credential{Uid: uid, Gid: uid}
	run := func(name, script string) uint64 {
		out, errs, code := e.cliAs(cred, "agent", "run", "--name", name, "--workdir", "/",
			"--cap", "fs.read:~/projects/**", "--cap", "fs.exec:/usr/bin/sleep", "--", "/bin/bash", "-c", script)
		if code != 0 {
			t.Fatalf("agent %s: %d %s", name, code, errs)
		}
		return mustAID(t, out)
	}
	sleeper := run("sleeper", "exec sleep 600")
	e.waitState(sleeper, "Active")

	cmd := exec.Command(filepath.Join(bins, "coconut"), "audit", "tail", "-f")
	cmd.Env = append(os.Environ(), "COCONUT_SOCKET="+e.sock)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func(what string) string {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("tail ended waiting for %s", what)
			}
			return l
		case <-time.After(10 * time.Second):
			t.Fatalf("no line for %s", what)
		}
		return ""
	}
	header := next("the header")
	if !regexp.MustCompile(`^== coconut-tail · chain head \d+ \([0-9a-f]{16}…\) · (latest checkpoint \d+ signed by ed25519:[0-9a-f]+|no signed checkpoint yet) · enforcer portable ==$`).MatchString(header) {
		t.Fatalf("header %q", header)
	}
	if l := next("the agent's section"); l != "== sleeper (AID "+strconv.FormatUint(sleeper, 10)+") · default · Active ==" &&
		!strings.HasPrefix(l, "== sleeper (AID "+strconv.FormatUint(sleeper, 10)+") · ") {
		t.Fatalf("agent section %q", l)
	}
	for _, want := range []string{"agent.spawn", "agent.attest", "agent.state"} {
		l := next(want)
		if !strings.Contains(l, "aid="+strconv.FormatUint(sleeper, 10)) || !strings.Contains(l, want) {
			t.Fatalf("want the %s row, got %q", want, l)
		}
		if want == "agent.state" && !strings.Contains(l, "Active") {
			t.Fatalf("want the Active row, got %q", l)
		}
	}
	if l := next("the live line"); !strings.HasPrefix(l, "== live from row ") {
		t.Fatalf("live line %q", l)
	}
	nosy := run("nosy", readKey)
	for {
		l := next("the live deny")
		if strings.Contains(l, "aid="+strconv.FormatUint(nosy, 10)) && strings.Contains(l, "cap.deny") {
			if !strings.Contains(l, " deny ") || strings.Contains(l, "\x1b[") {
				t.Fatalf("piped deny line %q", l)
			}
			break
		}
	}

	// On a terminal: denies in red; NO_COLOR: none.
	colour := newTmux(t, e.dir, "tail-colour", []string{"COCONUT_SOCKET=" + e.sock, "TERM=xterm-256color"}, filepath.Join(bins, "coconut"), "audit", "tail", "-f")
	plain := newTmux(t, e.dir, "tail-plain", []string{"COCONUT_SOCKET=" + e.sock, "TERM=xterm-256color", "NO_COLOR=1"}, filepath.Join(bins, "coconut"), "audit", "tail", "-f")
	for _, s := range []*tmuxSession{colour, plain} {
		s.waitFor("the live line", func(scr string) bool { return strings.Contains(scr, "live from row") })
	}
	nosy2 := run("nosy-2", readKey)
	aidField := "aid=" + strconv.FormatUint(nosy2, 10)
	colour.waitFor("the red deny", func(string) bool {
		for _, l := range strings.Split(colour.screenEscapes(), "\n") {
			if strings.Contains(l, aidField) && strings.Contains(l, "cap.deny") && strings.Contains(l, "\x1b[31mdeny") {
				return true
			}
		}
		return false
	})
	plain.waitFor("the plain deny", func(scr string) bool { return strings.Contains(scr, aidField) && strings.Contains(scr, "cap.deny") })
	if esc := plain.screenEscapes(); strings.Contains(esc, "\x1b[31m") || strings.Contains(esc, "\x1b[1m") {
		t.Errorf("NO_COLOR screen has colour:\n%q", esc)
	}
}
