package bpflsm

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBenchInGuest is make vmbench's workload (COCONUT_VMBENCH=1, inside the
// VM): open+close of one file, as ns per op, for a process in a cgroup
// that is no agent's with no programs loaded (the baseline), the same
// with the programs loaded, and a bpf-lsm agent allowed the file; rounds
// interleave the three so drift hits all alike, and each figure is the
// median. Then the revoke race: an agent holding the file open reads it
// and reopens it in a loop while the rule is revoked; successes that
// started after Bind returned are counted (goal 0). It prints one
// COCONUT-VMBENCH line of JSON. TCG times are not real times: only the
// ratios mean something.
func TestBenchInGuest(t *testing.T) {
	if os.Getenv("COCONUT_VMBENCH") == "" {
		t.Skip("make vmbench's workload (COCONUT_VMBENCH=1)")
	}
	const n, rounds = 5000, 5
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, []byte("x"), 0o644)
	self, _ := os.Executable()
	other, _ := mkCgroup(t, "bench-other")
	agent, cg := mkCgroup(t, "bench-agent")
	measure := func(cgdir string) float64 {
		l := run(t, cgdir, fmt.Sprintf("loop %s %d", file, n))[0]
		v, err := strconv.ParseFloat(strings.TrimPrefix(l, "ns="), 64)
		if err != nil {
			t.Fatalf("loop: %s", l)
		}
		return v
	}
	var base, nonagent, ag []float64
	for r := 0; r < rounds; r++ {
		base = append(base, measure(other))
		g := openGuard(t, "")
		bindCaps(t, g, cg, "fs.exec:"+self, "fs.read:"+dir+"/**")
		nonagent = append(nonagent, measure(other))
		ag = append(ag, measure(agent))
		g.Close()
	}
	med := func(v []float64) float64 { s := slices.Clone(v); slices.Sort(s); return s[len(s)/2] }

	g := openGuard(t, "")
	defer g.Close()
	bindCaps(t, g, cg, "fs.exec:"+self, "fs.read:"+dir+"/**")
	h := startHelper(t, agent, fmt.Sprintf("race %s %d", file, 1500))
	if l := h.line(t); l != "ok" {
		t.Fatalf("race: %s", l)
	}
	time.Sleep(500 * time.Millisecond) // the loop is running
	bindCaps(t, g, cg, "fs.exec:"+self)
	tRet := mono()
	fmt.Fprintf(h.in, "%d\n", tRet)
	res := h.line(t)
	var iters, reads, opens, readsAfter, opensAfter int
	if _, err := fmt.Sscanf(res, "iters=%d reads=%d opens=%d reads_after=%d opens_after=%d", &iters, &reads, &opens, &readsAfter, &opensAfter); err != nil {
		t.Fatalf("race: %s", res)
	}
	if reads == 0 || reads == iters {
		t.Errorf("the revoke did not land inside the loop (reads ok %d of %d): the race figures would be vacuous", reads, iters)
	}
	out := map[string]any{
		"kernel":            uname(),
		"ns_per_open_close": map[string]float64{"no_coconut": med(base), "nonagent": med(nonagent), "bpflsm_agent": med(ag)},
		"headline": map[string]any{
			"bpflsm_open_ratio":     med(ag) / med(base),
			"nonagent_open_ratio":   med(nonagent) / med(base),
			"ops_after_revoke":      opensAfter,
			"fd_reads_after_revoke": readsAfter,
		},
		"race": map[string]int{"iterations": iters, "reads_ok": reads, "opens_ok": opens},
	}
	b, _ := json.Marshal(out)
	fmt.Printf("COCONUT-VMBENCH %s\n", b)
	if readsAfter != 0 || opensAfter != 0 {
		t.Errorf("after the revoke returned: %d reads on the held descriptor and %d opens succeeded", readsAfter, opensAfter)
	}
}

func uname() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}
