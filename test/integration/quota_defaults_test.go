package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// limitValue reads one limit of a running agent from its cgroup: the v1
// controller file where that controller is v1 here (hybrid hosts), its
// unified directory's file otherwise.
func limitValue(t *testing.T, a agentJSON, ctrl, v1file, v2file string) string {
	t.Helper()
	if v := v1Value(t, a.PID, ctrl, v1file); v != "" {
		return v
	}
	b, err := os.ReadFile(filepath.Join(a.CgroupPath, v2file))
	if err != nil {
		t.Fatalf("agent %d: %v", a.AID, err)
	}
	return strings.TrimSpace(string(b))
}

// memoryLimit reads the agent's memory limit in bytes; -1 is none.
func memoryLimit(t *testing.T, a agentJSON) int64 {
	t.Helper()
	v := limitValue(t, a, "memory", "memory.limit_in_bytes", "memory.max")
	if v == "max" {
		return -1
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("memory limit %q", v)
	}
	if n >= 1<<62 { // v1's "unlimited": PAGE_COUNTER_MAX pages
		return -1
	}
	return n
}

func hostRAM(t *testing.T) int64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		t.Fatal(err)
	}
	return int64(si.Totalram) * int64(si.Unit)
}

// forkLoop forks children that wait until it fails, reports how far it got
// and with which errno, then stays (the children with it).
const forkLoop = `
import os, signal, time
n = 0
try:
    while n < 20000:
        if os.fork() == 0:
            signal.pause()
            os._exit(0)
        n += 1
except OSError as e:
    print("FORK-STOPPED n=%d errno=%d" % (n, e.errno), flush=True)
print("FORK-END n=%d" % n, flush=True)
time.sleep(600)
`

type doctorDefaults struct {
	QuotaDefaults *struct {
		Pids      int    `json:"pids"`
		MemoryMax int64  `json:"memory_max"`
		Memory    string `json:"memory"`
		CPUWeight int    `json:"cpu_weight"`
		Enforced  bool   `json:"enforced"`
	} `json:"quota_defaults"`
}

// TestQuotaDefaults (issue 19, part 4): with no quota anywhere an agent
// gets the host's defaults (1024 tasks, a quarter of RAM, weight 100), so
// a fork loop stops at 1024 tasks with EAGAIN while the host forks on;
// `max` in a manifest is unlimited; a manifest agent without a quota gets
// the defaults too.
func TestQuotaDefaults(t *testing.T) {
	e := newEnv(t)
	ram := hostRAM(t)
	var doc doctorDefaults
	if err := json.Unmarshal([]byte(e.must("doctor", "--json")), &doc); err != nil {
		t.Fatal(err)
	}
	if d := doc.QuotaDefaults; d == nil || d.Pids != 1024 || d.MemoryMax != ram/4 || d.Memory != "25%" || d.CPUWeight != 100 || !d.Enforced {
		t.Fatalf("doctor quota_defaults %+v, want pids 1024, memory_max %d (25%%), cpu_weight 100, enforced", doc.QuotaDefaults, ram/4)
	}
	if out := e.must("doctor"); !regexp.MustCompile(`defaults: +pids 1024, memory \S+ \(25% of RAM\), cpu weight 100 per agent\n`).MatchString(out) {
		t.Errorf("doctor does not show the defaults:\n%s", out)
	}

	t.Run("fork loop stops at the default", func(t *testing.T) {
		hostForks := func() time.Duration {
			start := time.Now()
			for i := 0; i < 20; i++ {
				if err := exec.Command("/bin/true").Run(); err != nil {
					t.Fatalf("the host cannot fork: %v", err)
				}
			}
			return time.Since(start)
		}
		before := hostForks()
		aid := mustAID(t, e.must("agent", "run", "--name", "forker", "--workdir", "/", "--cap", "fs.exec:/usr/bin/**",
			"--", python, "-I", "-S", "-c", forkLoop))
		id := strconv.FormatUint(aid, 10)
		logs := e.waitLog(aid, "FORK-")
		a := e.agent(aid)
		if !alive(a.PID) {
			t.Fatalf("the fork loop is %s:\n%s", a.State, logs)
		}
		if got := limitValue(t, a, "pids", "pids.max", "pids.max"); got != "1024" {
			t.Errorf("pids.max = %q, want the default 1024", got)
		}
		if got, want := memoryLimit(t, a), ram/4&^4095; got != want {
			t.Errorf("memory limit %d, want a quarter of RAM %d", got, want)
		}
		logs = e.waitLog(aid, "FORK-END")
		m := regexp.MustCompile(`FORK-STOPPED n=(\d+) errno=(\d+)`).FindStringSubmatch(logs)
		if m == nil {
			t.Fatalf("the fork loop never failed:\n%s", logs)
		}
		n, _ := strconv.Atoi(m[1])
		if m[2] != "11" || n < 1000 || n >= 1024 {
			t.Errorf("fork loop stopped after %s children with errno %s, want EAGAIN (11) just below 1024", m[1], m[2])
		}
		if q := e.quota(aid); q.Budget.Pids != 1024 || q.Usage.Pids > 1024 || q.Usage.Pids < 1000 {
			t.Errorf("quota %+v: want budget 1024 and about 1024 tasks in use", q)
		}
		// The host is unharmed: it forks (a figure, not an assertion:
		// the ratio to before the loop), and the daemon answers.
		during := hostForks()
		t.Logf("20 host fork+exec: %v before the loop, %v with the agent at its pids limit (ratio %.2f)", before, during, float64(during)/float64(before))
		e.must("doctor")
		// Bounded and cleaned up: killing the agent ends every task.
		e.must("agent", "kill", id)
		e.waitState(aid, "Terminated-revoked")
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			procs, _ := os.ReadFile(filepath.Join(a.CgroupPath, "cgroup.procs"))
			if len(strings.TrimSpace(string(procs))) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("tasks left in the agent's cgroup 20s after the kill: %d", strings.Count(string(procs), "\n"))
			}
		}
	})

	t.Run("manifest max is unlimited", func(t *testing.T) {
		e.demo()
		key := e.trustedKey("maya")
		path := e.writeSigned("limits.yaml", `apiVersion: coconut/v1
kind: Workload
metadata:
  name: limits
agents:
  - name: unbounded
    command: ["/bin/sleep", "600"]
    workdir: /
    quota: {pids: max, memoryMax: max}
  - name: plain
    command: ["/bin/sleep", "600"]
    workdir: /
`, key)
		e.must("agent", "spawn", path)
		byName := map[string]agentJSON{}
		for _, a := range e.agents(false) {
			byName[a.Name] = a
		}
		unb, plain := byName["unbounded"], byName["plain"]
		if got := limitValue(t, unb, "pids", "pids.max", "pids.max"); got != "max" {
			t.Errorf("pids: max gave pids.max %q", got)
		}
		if got := memoryLimit(t, unb); got != -1 {
			t.Errorf("memoryMax: max gave a memory limit of %d bytes", got)
		}
		if q := e.quota(unb.AID); q.Budget.Pids != 0 || q.Budget.MemoryMax != 0 {
			t.Errorf("unbounded budget %+v, want unlimited (0)", q.Budget)
		}
		if got := limitValue(t, plain, "pids", "pids.max", "pids.max"); got != "1024" {
			t.Errorf("a manifest agent without a quota: pids.max %q, want 1024", got)
		}
		if got := memoryLimit(t, plain); got != ram/4&^4095 {
			t.Errorf("a manifest agent without a quota: memory limit %d, want %d", got, ram/4&^4095)
		}
	})
}

// TestQuotaDefaultsConfig: coconut.toml's [quota.defaults] replaces the
// built-in defaults, flags still win, and --pids max is unlimited.
func TestQuotaDefaultsConfig(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "coconut.toml")
	if err := os.WriteFile(cfg, []byte("[quota.defaults]\npids = 64\nmemory = \"256M\"\ncpu_weight = 50\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, func(c *exec.Cmd) {
		for i, a := range c.Args {
			if a == "/dev/null" && c.Args[i-1] == "--config" {
				c.Args[i] = cfg
			}
		}
	})
	var doc doctorDefaults
	json.Unmarshal([]byte(e.must("doctor", "--json")), &doc)
	if d := doc.QuotaDefaults; d == nil || d.Pids != 64 || d.MemoryMax != 256<<20 || d.CPUWeight != 50 {
		t.Fatalf("doctor quota_defaults %+v, want the config's", doc.QuotaDefaults)
	}
	tests := []struct {
		name  string
		flags []string
		pids  string
		mem   int64
	}{
		{"config", nil, "64", 256 << 20},
		{"flags win", []string{"--pids", "100", "--memory", "128M"}, "100", 128 << 20},
		{"max", []string{"--pids", "max", "--memory", "max"}, "max", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"agent", "run", "--name", "cfg", "--workdir", "/"}, tt.flags...)
			aid := mustAID(t, e.must(append(args, "--", "/bin/sleep", "600")...))
			a := e.agent(aid)
			if got := limitValue(t, a, "pids", "pids.max", "pids.max"); got != tt.pids {
				t.Errorf("pids.max %q, want %s", got, tt.pids)
			}
			if got := memoryLimit(t, a); got != tt.mem {
				t.Errorf("memory limit %d, want %d", got, tt.mem)
			}
			if tt.flags == nil {
				if got := limitValue(t, a, "cpu", "cpu.shares", "cpu.weight"); got != "50" && !sharesFor(got, 50) {
					t.Errorf("cpu %q, want weight 50", got)
				}
			}
			e.must("agent", "kill", strconv.FormatUint(aid, 10))
		})
	}
	_, errs, code := e.cli("agent", "run", "--workdir", "/", "--pids", "0", "--", "/bin/true")
	if code == 0 || !strings.Contains(errs, `--pids "0": want a positive number or max`) {
		t.Errorf("--pids 0: exit %d: %s", code, errs)
	}
}
