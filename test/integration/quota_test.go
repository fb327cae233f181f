package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

const quotaManifest = `apiVersion: coconut/v1
kind: Workload
metadata:
  name: quota
agents:
  - name: hog
    command: ["/bin/sh", "-c", "sleep 0.5; x=$(head -c 268435456 /dev/zero | tr '\\0' a); echo survived ${#x}"]
    workdir: /
    capabilities: ["fs.exec:/usr/bin/**"]
    quota: {memoryMax: 32Mi}
  - name: sibling
    command: ["/bin/sleep", "600"]
    workdir: /
  - name: spinner
    command: ["/bin/sh", "-c", "while :; do :; done"]
    workdir: /
    quota: {cpuWeight: 200, pids: 32, memoryMax: 64Mi}
    memory: {hbm: 1Gi}
  - name: filler
    command: ["/bin/sh", "-c", "dd if=/dev/zero of=$COCONUT_SCRATCH/fill bs=1M count=16; echo dd-exit=$?; sleep 600"]
    workdir: /
    capabilities: ["fs.exec:/usr/bin/**"]
    memory: {ssd: 4Mi}
`

type quotaJSON struct {
	Budget struct {
		CPUWeight int   `json:"cpu_weight"`
		MemoryMax int64 `json:"memory_max"`
		Pids      int   `json:"pids"`
	} `json:"budget"`
	Usage struct {
		CPUUsec       uint64 `json:"cpu_usec"`
		MemoryCurrent int64  `json:"memory_current"`
		Pids          int    `json:"pids"`
	} `json:"usage"`
	Controllers string `json:"controllers"`
}

func (e *env) quota(aid uint64, args ...string) quotaJSON {
	e.t.Helper()
	var q quotaJSON
	out := e.must(append([]string{"agent", "quota", strconv.FormatUint(aid, 10), "--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), &q); err != nil {
		e.t.Fatalf("quota json %q: %v", out, err)
	}
	return q
}

// v1Value reads a v1 controller file of the agent whose pid is given,
// following /proc/PID/cgroup, or "" when that controller is not v1 here.
func v1Value(t *testing.T, pid int, ctrl, file string) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) == 3 && f[1] == ctrl {
			v, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", ctrl, f[2], file))
			if err != nil {
				t.Fatalf("agent pid %d is in v1 %s group %s: %v", pid, ctrl, f[2], err)
			}
			if !strings.Contains(f[2], "/agent-") {
				t.Fatalf("agent pid %d is in v1 %s group %s, not its own", pid, ctrl, f[2])
			}
			return strings.TrimSpace(string(v))
		}
	}
	return ""
}

// TestQuota runs real agents: limits applied at spawn, changed live, an OOM
// kill that ends one agent revoked while its sibling runs on, ENOSPC past
// the SSD tier, the HBM ledger, and freeze/thaw with CPU time flat while
// frozen.
func TestQuota(t *testing.T) {
	e := newEnv(t)
	e.demo()
	key := e.trustedKey("maya")
	path := e.writeSigned("quota.yaml", quotaManifest, key)
	e.must("agent", "spawn", path)
	e.cgroupRoot()
	byName := map[string]agentJSON{}
	for _, a := range e.agents(true) {
		byName[a.Name] = a
	}
	hog, sib, spin, fill := byName["hog"], byName["sibling"], byName["spinner"], byName["filler"]

	t.Run("limits at spawn", func(t *testing.T) {
		q := e.quota(spin.AID)
		if q.Controllers == "none" || q.Budget.CPUWeight != 200 || q.Budget.Pids != 32 || q.Budget.MemoryMax != 64<<20 {
			t.Fatalf("quota %+v", q)
		}
		if q.Controllers == "v1" {
			for ctrl, want := range map[string][2]string{"memory": {"memory.limit_in_bytes", strconv.Itoa(64 << 20)}, "pids": {"pids.max", "32"}} {
				if got := v1Value(t, spin.PID, ctrl, want[0]); got != want[1] {
					t.Errorf("%s = %q, want %s", want[0], got, want[1])
				}
			}
			if got := v1Value(t, spin.PID, "cpu", "cpu.shares"); !sharesFor(got, 200) {
				t.Errorf("cpu.shares = %q, want the shares of weight 200 (2048), or of 200/16 while the governor demotes the spinner", got)
			}
		}
	})

	t.Run("live change", func(t *testing.T) {
		q := e.quota(spin.AID, "--cpu-weight", "500", "--pids", "16", "--memory", "128M")
		if q.Budget.CPUWeight != 500 || q.Budget.Pids != 16 || q.Budget.MemoryMax != 128<<20 {
			t.Fatalf("after change %+v", q)
		}
		if q.Controllers == "v1" {
			if got := v1Value(t, spin.PID, "cpu", "cpu.shares"); !sharesFor(got, 500) {
				t.Errorf("cpu.shares = %s after --cpu-weight 500", got)
			}
			if got := v1Value(t, spin.PID, "pids", "pids.max"); got != "16" {
				t.Errorf("pids.max = %s after --pids 16", got)
			}
		}
		_, errs, code := e.cli("agent", "quota", strconv.FormatUint(spin.AID, 10), "--cpu-weight", "20000")
		if code != 1 || !strings.Contains(errs, "cpu_weight 20000: must be 1..10000") {
			t.Fatalf("bad weight: exit %d: %s", code, errs)
		}
		if rows := e.rows("--aid", strconv.FormatUint(spin.AID, 10), "--type", "agent.quota"); len(rows) != 1 || !strings.Contains(rows[0].Object, "cpu_weight=500") {
			t.Fatalf("agent.quota rows: %+v", rows)
		}
	})

	t.Run("oom kill inside the agent", func(t *testing.T) {
		a := e.waitState(hog.AID, "Terminated-revoked")
		if !strings.Contains(a.Reason, "out of memory") {
			t.Fatalf("reason %q", a.Reason)
		}
		if s := e.agent(sib.AID); s.State != "Active" || !alive(s.PID) {
			t.Fatalf("sibling %+v after the hog's OOM kill", s)
		}
	})

	t.Run("ssd tier ENOSPC", func(t *testing.T) {
		deadline := time.Now().Add(10 * time.Second)
		var logs string
		for time.Now().Before(deadline) {
			logs = e.must("agent", "logs", strconv.FormatUint(fill.AID, 10))
			if strings.Contains(logs, "dd-exit=") {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if !strings.Contains(logs, "No space left on device") || strings.Contains(logs, "dd-exit=0") {
			t.Fatalf("writing 16 MiB into a 4 MiB tier:\n%s", logs)
		}
		var m struct {
			SSD struct {
				Used, Limit int64
				Path        string
			} `json:"ssd"`
		}
		json.Unmarshal([]byte(e.must("agent", "memory", strconv.FormatUint(fill.AID, 10), "--json")), &m)
		if m.SSD.Limit == 0 || m.SSD.Limit > 4<<20 || m.SSD.Used < m.SSD.Limit/2 || m.SSD.Path == "" {
			t.Fatalf("ssd tier %+v", m.SSD)
		}
		e.must("agent", "kill", strconv.FormatUint(fill.AID, 10))
		if _, err := os.Stat(m.SSD.Path + ".img"); !os.IsNotExist(err) {
			t.Fatalf("scratch image left after the agent ended: %v", err)
		}
	})

	t.Run("hbm ledger", func(t *testing.T) {
		id := strconv.FormatUint(spin.AID, 10)
		e.must("agent", "memory", id, "--tier", "hbm", "--alloc", "512M")
		_, errs, code := e.cli("agent", "memory", id, "--tier", "hbm", "--alloc", "600M")
		if code != 1 || !strings.Contains(errs, "over budget") || !strings.Contains(errs, "536870912 of 1073741824 bytes used") {
			t.Fatalf("allocation past the budget: exit %d: %s", code, errs)
		}
		out := e.must("agent", "memory", id)
		if !strings.Contains(out, "512Mi") || !strings.Contains(out, "1Gi") {
			t.Fatalf("memory table:\n%s", out)
		}
	})

	t.Run("quarantine and release", func(t *testing.T) {
		id := strconv.FormatUint(spin.AID, 10)
		e.must("agent", "quarantine", id)
		if a := e.agent(spin.AID); a.State != "Quarantined" {
			t.Fatalf("state %s", a.State)
		}
		c0 := e.quota(spin.AID).Usage.CPUUsec
		time.Sleep(500 * time.Millisecond)
		c1 := e.quota(spin.AID).Usage.CPUUsec
		if c1 != c0 {
			t.Fatalf("frozen agent used %d µs of CPU", c1-c0)
		}
		if _, _, code := e.cli("agent", "quarantine", id); code != 1 {
			t.Fatal("quarantine of a quarantined agent accepted")
		}
		e.must("agent", "release", id)
		time.Sleep(300 * time.Millisecond)
		if a, c2 := e.agent(spin.AID), e.quota(spin.AID).Usage.CPUUsec; a.State != "Active" || c2 <= c1 {
			t.Fatalf("after release: %s, cpu %d → %d", a.State, c1, c2)
		}
		var states []string
		for _, r := range e.rows("--aid", id, "--type", "agent.state") {
			states = append(states, r.Object)
		}
		if got := strings.Join(states, ","); !strings.HasSuffix(got, "Active,Quarantined,Active") {
			t.Fatalf("state rows %s", got)
		}
	})
}

// cpuCap is the CPU cap (in CPUs) on the agent whose pid is given, -1 for
// none: v1 cpu.cfs_quota_us / cfs_period_us, or the unified cpu.max.
func cpuCap(t *testing.T, pid int) float64 {
	t.Helper()
	q, p := v1Value(t, pid, "cpu", "cpu.cfs_quota_us"), v1Value(t, pid, "cpu", "cpu.cfs_period_us")
	if q == "" {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "0::"); ok {
				for _, m := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
					if v, err := os.ReadFile(filepath.Join(m, rest, "cpu.max")); err == nil {
						f := strings.Fields(string(v))
						q, p = f[0], f[1]
						break
					}
				}
			}
		}
	}
	if q == "-1" || q == "max" {
		return -1
	}
	qn, err1 := strconv.ParseFloat(q, 64)
	pn, err2 := strconv.ParseFloat(p, 64)
	if err1 != nil || err2 != nil || pn == 0 {
		t.Fatalf("agent pid %d: cpu quota %q period %q", pid, q, p)
	}
	return qn / pn
}

// TestFairShareGovernor: an agent of eight busy processes is capped near
// its fair share while three one-process agents are busy beside it, and
// uncapped when it is alone again (the governor is work-conserving). Its
// memory limit, given to `agent run`, is in place from the start.
func TestFairShareGovernor(t *testing.T) {
	e := newEnv(t)
	e.demo()
	spin := "while :; do :; done"
	flood := mustAID(t, e.must("agent", "run", "--name", "flooder", "--workdir", "/", "--memory", "64M", "--",
		"/bin/sh", "-c", "for i in 1 2 3 4 5 6 7 8; do ("+spin+") & done; wait"))
	f := e.waitState(flood, "Active")
	if q := e.quota(flood); q.Budget.MemoryMax != 64<<20 {
		t.Fatalf("flooder budget %+v, want memory max 64 MiB from spawn", q.Budget)
	}
	if q := e.quota(flood); q.Controllers == "v1" {
		if got := v1Value(t, f.PID, "memory", "memory.limit_in_bytes"); got != strconv.Itoa(64<<20) {
			t.Fatalf("memory.limit_in_bytes = %s, want 64 MiB", got)
		}
	}
	waitCap := func(ok func(float64) bool, what string) float64 {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			c := cpuCap(t, f.PID)
			if ok(c) {
				return c
			}
			if time.Now().After(deadline) {
				t.Fatalf("flooder cap %v: want %s", c, what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	time.Sleep(time.Second)
	if c := cpuCap(t, f.PID); c != -1 {
		t.Fatalf("flooder alone is capped at %v CPUs", c)
	}
	var light []uint64
	for i := range 3 {
		aid := mustAID(t, e.must("agent", "run", "--name", "light-"+strconv.Itoa(i), "--workdir", "/", "--", "/bin/sh", "-c", spin))
		light = append(light, aid)
	}
	// Four agents of equal weight on the machine: each one's fair share
	// is at most a quarter of it (less while other processes run).
	share := float64(runtime.NumCPU()) / 4
	c := waitCap(func(c float64) bool { return c > 0 && c <= share*1.1 }, "capped at most near its fair share")
	t.Logf("flooder capped at %.2f CPUs beside three busy agents", c)
	before := e.quota(flood).Usage.CPUUsec
	var lb uint64
	for _, a := range light {
		lb += e.quota(a).Usage.CPUUsec
	}
	time.Sleep(2 * time.Second)
	fu := float64(e.quota(flood).Usage.CPUUsec - before)
	var la uint64
	for _, a := range light {
		la += e.quota(a).Usage.CPUUsec
	}
	if got := fu / (fu + float64(la-lb)); got > 0.35 {
		t.Errorf("flooder took %.2f of the agents' CPU, want about 0.25", got)
	}
	for _, a := range light {
		e.must("agent", "kill", strconv.FormatUint(a, 10))
	}
	waitCap(func(c float64) bool { return c == -1 }, "uncapped once alone")
	e.must("agent", "kill", strconv.FormatUint(flood, 10))
}

// sharesFor says whether a v1 cpu.shares value is what coconut writes for
// weight: weight*1024/100, or the same for weight/16 while the fair-share
// governor demotes an agent running above its share (the spinner does, as
// soon as others want the CPU: see internal/quota/cpucap.go).
func sharesFor(got string, weight int) bool {
	return got == strconv.Itoa(weight*1024/100) || got == strconv.Itoa(max(weight/16, 1)*1024/100)
}
