package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// denies is how many denies a deny row counts (issue 19): an aggregate
// row's Detail["count"], or 1.
func (r row) denies() int {
	if n, err := strconv.Atoi(r.Detail["count"]); err == nil && n > 0 {
		return n
	}
	return 1
}

// TestDenyAggregation (issue 19): an agent looping without pause on the
// same denied calls adds a few rows a second in all (the bound is per
// agent, whatever the calls), not one per deny;
// the first deny of each object is a row of its own, the others are
// counted by aggregate rows whose counts add up to exactly the denies the
// agent saw, and doctor's kernel_denies equals that sum. (Its supervised
// denies each wait for the aggregate row that counts them, which paces
// this one-thread loop.)
func TestDenyAggregation(t *testing.T) {
	e := newEnv(t)
	uid, _ := e.demo()
	port, unixPath, secret, allowed := denyTargets(t, e)
	w := filepath.Join(e.dir, "w")
	os.Mkdir(w, 0o755)
	os.Chown(w, int(uid), int(uid))
	ledger := filepath.Join(w, "ledger")
	aid := mustAID(t, e.must("agent", "run", "--name", "storm", "--workdir", w,
		"--cap", "fs.read:"+allowed, "--cap", "fs.write:"+w+"/**", "--",
		filepath.Join(bins, "denyloop"), ledger, secret, allowed, strconv.Itoa(port), unixPath, "0s"))
	pid := e.waitState(aid, "Capability-denied").PID
	const storm = 4 * time.Second
	time.Sleep(storm)
	syscall.Kill(pid, syscall.SIGTERM)
	for deadline := time.Now().Add(20 * time.Second); !gone(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("agent %d did not stop on SIGTERM", aid)
		}
	}
	counters := e.countersAgree(1)

	saw, other := readLedger(t, ledger)
	for _, o := range other {
		t.Error(o)
	}
	objects := map[string]string{"open-denied": secret, "connect-tcp": fmt.Sprintf("tcp 127.0.0.1:%d", port), "connect-unix": "unix " + unixPath}
	sum, rows, singles := map[string]int{}, map[string]int{}, map[string]int{}
	total, aggRows := 0, 0
	for _, r := range e.rows("--aid", strconv.FormatUint(aid, 10), "--type", "cap.deny") {
		total += r.denies()
		if r.Detail["count"] != "" {
			aggRows++
		}
		for kind, obj := range objects {
			if r.Object != obj {
				continue
			}
			sum[kind] += r.denies()
			rows[kind]++
			if r.Detail["count"] == "" {
				singles[kind]++
			}
		}
	}
	for kind := range objects {
		if saw[kind] < 10 {
			t.Errorf("%s: only %d denies in %v: no storm to aggregate", kind, saw[kind], storm)
		}
		if saw[kind] != sum[kind] {
			t.Errorf("%s: the agent saw %d denies, the chain's rows count %d", kind, saw[kind], sum[kind])
		}
		if singles[kind] != 1 {
			t.Errorf("%s: %d rows of their own, want 1 (the first deny)", kind, singles[kind])
		}
	}
	// One aggregate row per 100 ms per agent (the bound: ten a
	// second), and one per key at the counters snapshot.
	if max := len(objects) + int(storm/(100*time.Millisecond)); aggRows > max {
		t.Errorf("%d aggregate rows in %v for one agent over %d objects, want at most %d (per agent, not per object)", aggRows, storm, len(objects), max)
	}
	t.Logf("aggregate rows per second: %.1f", float64(aggRows)/storm.Seconds())
	if uint64(total) != counters["kernel_denies"] {
		t.Errorf("kernel_denies %d, the deny rows count %d", counters["kernel_denies"], total)
	}
	t.Logf("denies seen %v, rows %v, kernel_denies %d", saw, rows, counters["kernel_denies"])
	e.must("audit", "verify")
}
