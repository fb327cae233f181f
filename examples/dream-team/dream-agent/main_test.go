package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binDir holds the binary built once for all tests; TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var buildOnce = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "dream-agent-test")
	if err != nil {
		return "", err
	}
	binDir = dir
	bin := filepath.Join(dir, "dream-agent")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
})

// buildAgent returns the static binary, built on first use.
func buildAgent(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a binary; skipped in -short mode")
	}
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// agentEnv is a clean environment: a temp HOME and the given extras.
func agentEnv(home string, extra ...string) []string {
	return append([]string{"HOME=" + home, "PATH=/usr/bin:/bin"}, extra...)
}

func TestBinaryRunsForDuration(t *testing.T) {
	bin := buildAgent(t)
	home := t.TempDir()
	project := newProject(t)
	mustMkdir(t, filepath.Join(home, ".ssh"))
	mustWrite(t, filepath.Join(home, ".ssh", "id_ed25519"), "fake key\n")

	cmd := exec.Command(bin, "--role", "researcher", "--project", project,
		"--duration", "2s", "--interval", "200ms", "--probe-ssh")
	cmd.Env = agentEnv(home, "COCONUT_AID=7", "COCONUT_AGENT_NAME=researcher-3", "COCONUT_AGENT_CLASS=research")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if took := time.Since(start); took < 2*time.Second || took > 6*time.Second {
		t.Errorf("ran for %v, want about 2s", took)
	}
	out := stdout.String()
	for _, want := range []string{
		"researcher[researcher-3] dream-agent started: role=researcher aid=7 name=researcher-3 class=research",
		"inference: disabled: neither OPENAI_BASE_URL nor COCONUT_BROKER_SOCKET is set",
		"probe: read " + filepath.Join(home, ".ssh", "id_ed25519") + ": succeeded (9 bytes) — nothing stopped me",
		"research: read README.md (3 lines, 6 words)",
		"wrote notes/researcher/research-researcher-3-000.md",
		"stopping after ",
		"duration 2s reached",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "fake key") {
		t.Error("the key's content was printed")
	}
	if steps := strings.Count(out, "wrote notes/researcher/"); steps < 8 || steps > 12 {
		t.Errorf("%d steps in 2s at 200ms, want about 10", steps)
	}
}

func TestBinaryExitsOnSignal(t *testing.T) {
	bin := buildAgent(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			home := t.TempDir()
			cmd := exec.Command(bin, "--role", "coder", "--project", t.TempDir(), "--duration", "0", "--interval", "50ms")
			cmd.Env = agentEnv(home)
			pipe, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(pipe)
			var lines []string
			for sc.Scan() {
				lines = append(lines, sc.Text())
				if strings.Contains(sc.Text(), "wrote ") {
					break
				}
			}
			sent := time.Now()
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			for sc.Scan() {
				lines = append(lines, sc.Text())
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("exit: %v\n%s", err, strings.Join(lines, "\n"))
			}
			if took := time.Since(sent); took > time.Second {
				t.Errorf("took %v to stop", took)
			}
			last := lines[len(lines)-1]
			if !strings.Contains(last, "stopping after") || !strings.Contains(last, "received "+sig.String()) {
				t.Errorf("last line %q", last)
			}
		})
	}
}

func TestBinaryBadUsage(t *testing.T) {
	bin := buildAgent(t)
	cmd := exec.Command(bin, "--role", "boss")
	cmd.Env = agentEnv(t.TempDir())
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("err = %v, want exit 2", err)
	}
	if !strings.Contains(string(out), `unknown role "boss"`) {
		t.Errorf("output %q", out)
	}
}

func TestRealMainUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := realMain([]string{"--interval", "1s"}, envOf(nil), &stdout, &stderr); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), "--role is required") || stdout.Len() != 0 {
		t.Errorf("stdout %q stderr %q", stdout.String(), stderr.String())
	}
}

func mustMkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
}
