package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/testutil"
)

// tmuxSession runs a command in a detached tmux session on a private
// server, 200x60, and reads the screen back.
type tmuxSession struct {
	t      *testing.T
	socket string
	name   string
}

func newTmux(t *testing.T, dir, name string, env []string, argv ...string) *tmuxSession {
	t.Helper()
	testutil.RequireCommand(t, "tmux", "apt-get install tmux; .ci/run does")
	s := &tmuxSession{t: t, socket: filepath.Join(dir, "tmux.sock"), name: name}
	script := filepath.Join(dir, "tmux-"+name+".sh")
	body := "#!/bin/sh\n"
	for _, kv := range env {
		body += "export " + kv + "\n"
	}
	body += "exec"
	for _, a := range argv {
		body += " '" + a + "'"
	}
	body += "\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	s.tmux("new-session", "-d", "-s", s.name, "-x", "200", "-y", "60", script)
	t.Cleanup(func() { exec.Command("tmux", "-S", s.socket, "kill-session", "-t", name).Run() })
	return s
}

func (s *tmuxSession) tmux(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", s.socket}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (s *tmuxSession) screen() string { return s.tmux("capture-pane", "-p", "-t", s.name) }

// screenEscapes is the screen with its colours as escape sequences.
func (s *tmuxSession) screenEscapes() string { return s.tmux("capture-pane", "-p", "-e", "-t", s.name) }

func (s *tmuxSession) keys(keys ...string) {
	s.tmux(append([]string{"send-keys", "-t", s.name}, keys...)...)
}

// waitFor polls the screen until ok accepts it.
func (s *tmuxSession) waitFor(what string, ok func(string) bool) string {
	s.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		scr := s.screen()
		if ok(scr) {
			return scr
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("screen never showed %s:\n%s", what, scr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *tmuxSession) alive() bool {
	return exec.Command("tmux", "-S", s.socket, "has-session", "-t", s.name).Run() == nil
}

// agentLines counts the table rows of agents named in names.
func agentLines(scr string, names map[string]bool) int {
	n := 0
	for _, l := range strings.Split(scr, "\n") {
		f := strings.Fields(l)
		if len(f) > 2 {
			if _, err := strconv.ParseUint(f[0], 10, 64); err == nil && names[f[1]] {
				n++
			}
		}
	}
	return n
}

// TestTopInteractive: `coconut top` on a terminal shows the 31 agents of
// the dream team with the top bar, `/nosy` filters them to the nosy
// reviewer, enter shows its detail, k asks before killing it, and q quits.
func TestTopInteractive(t *testing.T) {
	e := newEnv(t)
	_, home := e.demo()
	key := e.trustedKey("maya")
	path := e.writeSigned("dream-team.yaml", dreamTeam(t), key)
	if n := len(strings.Fields(e.must("agent", "spawn", path))); n != 31 {
		t.Fatalf("spawned %d agents", n)
	}
	names := map[string]bool{}
	var nosy uint64
	for _, a := range e.agents(false) {
		names[a.Name] = true
		if a.Name == "nosy-reviewer" {
			nosy = a.AID
		}
	}
	s := newTmux(t, e.dir, "top", []string{"COCONUT_SOCKET=" + e.sock, "TERM=xterm-256color"}, filepath.Join(bins, "coconut"), "top")
	scr := s.waitFor("31 agents and the top bar", func(scr string) bool {
		return agentLines(scr, names) == 31 && strings.Contains(scr, "31 agents")
	})
	if !strings.Contains(scr, "denies") || !strings.Contains(scr, "tokens") {
		t.Errorf("top bar without denies or tokens:\n%s", scr)
	}

	s.keys("/", "nosy", "Enter")
	// The table filters while the user types; the status line says
	// "filter /nosy" once Enter is read: wait for both.
	scr = s.waitFor("only the nosy reviewer", func(scr string) bool {
		return agentLines(scr, names) == 1 && strings.Contains(scr, "filter /nosy")
	})
	if !strings.Contains(scr, "nosy-reviewer") || !strings.Contains(scr, "filter /nosy") {
		t.Fatalf("filtered screen:\n%s", scr)
	}

	s.keys("Enter")
	s.waitFor("the nosy reviewer's detail", func(scr string) bool {
		return strings.Contains(scr, fmt.Sprintf("nosy-reviewer (AID %d)", nosy)) && strings.Contains(scr, "Capabilities") &&
			strings.Contains(scr, "fs.read:") && strings.Contains(scr, "Last rows") &&
			strings.Contains(scr, "Denies (") && strings.Contains(scr, "cap.deny deny fs.read "+home+"/.ssh/id_ed25519")
	})
	s.keys("Escape") // alone: ESC and a key at once read as alt+key
	s.waitFor("the table again", func(scr string) bool { return agentLines(scr, names) == 1 })
	s.keys("?")
	s.waitFor("the help", func(scr string) bool { return strings.Contains(scr, "quarantine the agent") })
	s.keys("x")

	// k asks; n keeps the agent, y kills it.
	s.keys("k")
	s.waitFor("the kill question", func(scr string) bool {
		return strings.Contains(scr, fmt.Sprintf("Kill nosy-reviewer (AID %d)? y/N", nosy))
	})
	s.keys("n")
	s.waitFor("the cancellation", func(scr string) bool { return strings.Contains(scr, "cancelled") })
	if st := e.agent(nosy).State; strings.HasPrefix(st, "Terminated") {
		t.Fatalf("n killed the agent: %s", st)
	}
	s.keys("k")
	s.waitFor("the kill question again", func(scr string) bool { return strings.Contains(scr, "? y/N") })
	s.keys("y")
	e.waitState(nosy, "Terminated-revoked")

	s.keys("q")
	deadline := time.Now().Add(5 * time.Second)
	for s.alive() {
		if time.Now().After(deadline) {
			t.Fatalf("q did not quit:\n%s", s.screen())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTopOnceAndPlain: --once prints one frame with the 31 agents; with
// stdout a pipe top prints the plain table as before.
func TestTopOnceAndPlain(t *testing.T) {
	e := newEnv(t)
	e.demo()
	key := e.trustedKey("maya")
	path := e.writeSigned("dream-team.yaml", dreamTeam(t), key)
	e.must("agent", "spawn", path)
	names := map[string]bool{}
	for _, a := range e.agents(false) {
		names[a.Name] = true
	}
	frame := e.must("top", "--once")
	if n := agentLines(frame, names); n != 31 || !strings.Contains(frame, "coconut top") || strings.Contains(frame, "\x1b[") {
		t.Fatalf("--once: %d agents, frame:\n%s", n, frame)
	}
	plain := e.must("top")
	if n := agentLines(plain, names); n != 31 || !strings.HasPrefix(plain, "inference:") {
		t.Fatalf("plain top: %d agents:\n%s", n, plain)
	}
}
