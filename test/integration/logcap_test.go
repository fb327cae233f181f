package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestAgentLogCap: with agent_log_max = "64K" in coconut.toml an agent
// that writes far more keeps a log under the cap, holding the end of its
// output, and `coconut agent logs` serves it.
func TestAgentLogCap(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "coconut.toml")
	if err := os.WriteFile(cfg, []byte("agent_log_max = \"64K\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, func(c *exec.Cmd) {
		for i, a := range c.Args {
			if a == "/dev/null" && c.Args[i-1] == "--config" {
				c.Args[i] = cfg
			}
		}
	})
	// About 1.2 MB of shell builtins' output (an agent may not exec
	// what its manifest does not grant), then the last line; the cap
	// applies to ended agents' logs too.
	script := `i=0; while [ $i -lt 40 ]; do j=0; while [ $j -lt 1000 ]; do echo "output line $i $j of the agent"; j=$((j+1)); done; i=$((i+1)); done; echo THE-END`
	aid := mustAID(t, e.must("agent", "run", "--name", "chatty", "--workdir", "/", "--", "/bin/sh", "-c", script))
	log := filepath.Join(e.state, "agents", strconv.FormatUint(aid, 10)+".log")
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := os.Stat(log)
		out := e.must("agent", "logs", strconv.FormatUint(aid, 10))
		if err == nil && st.Size() <= 64<<10 && strings.HasSuffix(out, "THE-END\n") {
			if !strings.Contains(out, "output line 39 999 of the agent\n") {
				t.Fatalf("the kept tail lacks the lines before the end:\n%s", out[max(0, len(out)-300):])
			}
			break
		}
		if time.Now().After(deadline) {
			sz := int64(-1)
			if err == nil {
				sz = st.Size()
			}
			t.Fatalf("log %d bytes after 60 s, cap 64K; ends %q", sz, out[max(0, len(out)-100):])
		}
		time.Sleep(500 * time.Millisecond)
	}
}
