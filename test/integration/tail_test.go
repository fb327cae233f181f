package integration

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTailFollowsSpawn: `coconut audit tail -f` shows a new agent's spawn,
// attest and Active rows as they land; so does coconut-tail, which runs
// the same command from its own small binary (internal/tail).
func TestTailFollowsSpawn(t *testing.T) {
	for _, c := range []struct {
		name, bin string
		args      []string
	}{
		{"audit_tail", "coconut", []string{"audit", "tail", "-f", "--json"}},
		{"coconut-tail", "coconut-tail", []string{"--json"}},
	} {
		t.Run(c.name, func(t *testing.T) { tailFollowsSpawn(t, c.bin, c.args) })
	}
}

func tailFollowsSpawn(t *testing.T, bin string, args []string) {
	e := newEnv(t)
	e.demo()
	cmd := exec.Command(filepath.Join(bins, bin), args...)
	cmd.Env = append(os.Environ(), "COCONUT_SOCKET="+e.sock)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	lines := make(chan row, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var r row
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				lines <- r
			}
		}
		close(lines)
	}()
	aid := mustAID(t, e.must("agent", "run", "--name", "tailed", "--workdir", "/", "--", "/bin/sleep", "600"))
	want := []string{"agent.spawn:", "agent.attest:", "agent.state:Attested", "agent.state:Active"}
	var got []string
	deadline := time.After(10 * time.Second)
	for len(got) < len(want) {
		select {
		case r, ok := <-lines:
			if !ok {
				t.Fatalf("tail ended; got %v", got)
			}
			if r.AID != aid {
				continue
			}
			if r.Hash == "" || r.Time == "" {
				t.Errorf("row without hash or time: %+v", r)
			}
			key := r.Type + ":"
			if r.Type == "agent.state" {
				key += r.Object
			}
			got = append(got, key)
		case <-deadline:
			t.Fatalf("tail showed %v, want %v", got, want)
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("tail order %v, want %v", got, want)
	}
}
