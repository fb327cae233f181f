package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestBenchSpawnUnsigned: `coconut bench spawn` on an unsigned manifest
// signs it in memory with a throwaway key it trusts for the run (the
// file gets no .sig), and an agent that moved on from Active before the
// spawn call returned (the nosy reviewer's refused probe) counts as
// started, not as a failed spawn.
func TestBenchSpawnUnsigned(t *testing.T) {
	e := newEnv(t)
	e.demo()
	path := e.writeSigned("dream-team.yaml", dreamTeam(t), "")
	out, errs, code := e.cli("bench", "spawn", "--runs", "2", "--manifest", path, "--json")
	if code != 0 {
		t.Fatalf("bench spawn: exit %d: %s", code, errs)
	}
	if !strings.Contains(errs, "throwaway key") {
		t.Errorf("stderr does not say it signed with a throwaway key: %q", errs)
	}
	var res struct {
		Agents   int                `json:"agents"`
		Headline map[string]float64 `json:"headline"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Agents != 31 || res.Headline["team_ms_median"] <= 0 {
		t.Fatalf("bench spawn --json: %v %q", err, out)
	}
	if _, err := os.Stat(path + ".sig"); !os.IsNotExist(err) {
		t.Errorf("bench spawn wrote %s.sig: %v", path, err)
	}
	if trust := e.must("trust", "ls"); !strings.Contains(trust, "throwaway key, private half deleted") {
		t.Errorf("trust ls lacks the throwaway key:\n%s", trust)
	}
	if left, _ := filepath.Glob(filepath.Join(os.TempDir(), "coconut-bench-key-*", "bench.key")); len(left) != 0 {
		t.Errorf("throwaway private keys left behind: %v", left)
	}
}

// TestRunDefaultNameAndIdempotentKill: the default name of `agent run` is
// derived validly from the command (python3.11 → python3-11), and killing
// an agent that already ended says so and exits 0.
func TestRunDefaultNameAndIdempotentKill(t *testing.T) {
	e := newEnv(t)
	e.demo()
	prog := filepath.Join(e.dir, "Python3.11")
	b, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(prog, b, 0o755); err != nil {
		t.Fatal(err)
	}
	aid := mustAID(t, e.must("agent", "run", "--workdir", "/", "--", prog))
	a := e.waitState(aid, "Terminated-clean")
	if a.Name != "python3-11" {
		t.Errorf("default name %q, want python3-11", a.Name)
	}
	id := strconv.FormatUint(aid, 10)
	out, errs, code := e.cli("agent", "kill", id)
	if code != 0 || !strings.Contains(out, "already ended (Terminated-clean)") {
		t.Fatalf("kill of an ended agent: exit %d %q %q", code, out, errs)
	}
	if a := e.agent(aid); a.State != "Terminated-clean" {
		t.Errorf("kill changed an ended agent to %s", a.State)
	}
}
