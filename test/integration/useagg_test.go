package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// count is how many events a row stands for: an aggregate row's
// detail.count (issue 19), or 1.
func (r row) count() int { return r.denies() }

// endSeq is the seq of the agent's terminal agent.state row.
func (e *env) endSeq(aid uint64) uint64 {
	e.t.Helper()
	for _, r := range e.rows("--aid", strconv.FormatUint(aid, 10), "--type", "agent.state") {
		if strings.HasPrefix(r.Object, "Terminated-") {
			return r.Seq
		}
	}
	e.t.Fatalf("agent %d has no terminal agent.state row", aid)
	return 0
}

// TestUseAggregation (issue 19.1): an agent that execs /usr/bin/true 1500
// times under the default audit policy (exec: all) adds a few cap.use
// rows, not 1500: the first exec's own row and aggregate rows (at most
// four a second) whose counts add up to exactly 1500; every one of them
// is in the chain before the agent's terminal state row (an ended agent's
// counts do not come later), and the chain verifies.
func TestUseAggregation(t *testing.T) {
	e := newEnv(t)
	uid, _ := e.demo()
	w := filepath.Join(e.dir, "w")
	os.Mkdir(w, 0o755)
	os.Chown(w, int(uid), int(uid))
	const n = 1500
	start := time.Now()
	aid := mustAID(t, e.must("agent", "run", "--name", "execloop", "--workdir", w,
		"--cap", "fs.exec:/usr/bin/true", "--", "/bin/bash", "-c",
		fmt.Sprintf("for ((i = 0; i < %d; i++)); do /usr/bin/true || exit 1; done; echo finished", n)))
	e.waitLogFor(aid, "finished", 120*time.Second)
	e.waitState(aid, "Terminated-clean")
	elapsed := time.Since(start)
	end := e.endSeq(aid)
	total, rows, firsts := 0, 0, 0
	for _, r := range e.rows("--aid", strconv.FormatUint(aid, 10), "--type", "cap.use") {
		if r.Object != "/usr/bin/true" {
			continue
		}
		rows++
		total += r.count()
		if r.Detail["count"] == "" {
			firsts++
		}
		if r.Seq > end {
			t.Errorf("cap.use row %d (count %s) after the agent's terminal row %d", r.Seq, r.Detail["count"], end)
		}
	}
	if total != n {
		t.Errorf("the cap.use rows of /usr/bin/true count %d execs, want exactly %d", total, n)
	}
	if firsts != 1 {
		t.Errorf("%d rows of their own, want 1 (the first exec)", firsts)
	}
	// The first use's row, then aggregates at least 250 ms apart from the
	// first one on, and the end's flush: at most 3 + span/250 ms over the
	// span in which the rows can have been written (start to the end row).
	if max := 3 + int(elapsed/(250*time.Millisecond)); rows > max {
		t.Errorf("%d cap.use rows for %d execs in %v, want at most %d (four a second)", rows, n, elapsed, max)
	}
	t.Logf("%d execs in %v: %d cap.use rows (%.1f rows/s)", n, elapsed.Round(time.Millisecond), rows, float64(rows)/elapsed.Seconds())
	e.must("audit", "verify")
}

// TestInferenceAggregation (issue 19.1): 200 sequential completions of one
// agent add a few inference.call rows, not 200; their counts add up to
// the 200 calls, their tokens to the broker's own usage counters
// (/metrics), and once the agent is killed every one of them is before
// its terminal state row.
func TestInferenceAggregation(t *testing.T) {
	e := newBrokerEnv(t, "")
	w := e.brokerWork()
	_, addr := e.brokerAddrs()
	const n = 200
	script := writeScript(t, w, "loop.sh", callFn+fmt.Sprintf(`for ((i = 0; i < %d; i++)); do call c --unix-socket "$COCONUT_BROKER_SOCKET" http://broker/v1/chat/completions -d "$(body sim 3)"; done
echo finished
exec /bin/sleep 600
`, n))
	start := time.Now()
	aid := mustAID(t, e.must("agent", "run", "--name", "infloop", "--workdir", w, "--cap", "fs.read:"+w+"/**",
		"--cap", "fs.exec:/usr/bin/curl", "--cap", "fs.exec:/bin/sleep", "--cap", "fs.exec:/usr/bin/sleep",
		"--cap", "inference:model=sim", "--", "/bin/bash", script))
	log := e.waitLogFor(aid, "finished", 120*time.Second)
	elapsed := time.Since(start)
	if c := strings.Count(log, "c 200 0"); c != n {
		t.Fatalf("%d of %d calls answered 200:\n%s", c, n, log)
	}
	// The broker's usage counters, before the agent ends (they go with it).
	_, metrics := hostCall(t, "tcp", addr, "/metrics", "", nil)
	metered := map[string]int{}
	for _, dir := range []string{"in", "out"} {
		m := regexp.MustCompile(fmt.Sprintf(`coconut_broker_agent_tokens_total\{aid="%d",dir="%s"\} (\d+)`, aid, dir)).FindStringSubmatch(metrics)
		if m == nil {
			t.Fatalf("/metrics has no %s tokens for agent %d", dir, aid)
		}
		metered[dir], _ = strconv.Atoi(m[1])
	}
	e.must("agent", "kill", strconv.FormatUint(aid, 10))
	end := e.endSeq(aid)
	span := time.Since(start) // the rows are written from start to the end row
	calls, rows := 0, 0
	tokens := map[string]int{}
	for _, r := range e.rows("--aid", strconv.FormatUint(aid, 10), "--type", "inference.call") {
		if r.Result != "allow" {
			t.Errorf("refused call row %+v", r)
			continue
		}
		rows++
		calls += r.count()
		for _, dir := range []string{"in", "out"} {
			v, _ := strconv.Atoi(r.Detail["tokens_"+dir])
			tokens[dir] += v
		}
		if r.Seq > end {
			t.Errorf("inference.call row %d (count %s) after the agent's terminal row %d", r.Seq, r.Detail["count"], end)
		}
	}
	if calls != n {
		t.Errorf("the inference.call rows count %d calls, want %d", calls, n)
	}
	if tokens["in"] != metered["in"] || tokens["out"] != metered["out"] || metered["out"] == 0 {
		t.Errorf("tokens in the chain %v, metered by the broker %v: want equal", tokens, metered)
	}
	// One first row per (model, endpoint, stream) (here one), aggregates at
	// least 250 ms apart, and the end's flush.
	if max := 3 + int(span/(250*time.Millisecond)); rows > max {
		t.Errorf("%d inference.call rows for %d calls in %v, want at most %d (four a second)", rows, n, span, max)
	}
	t.Logf("%d calls in %v: %d inference.call rows; tokens %v", n, elapsed.Round(time.Millisecond), rows, tokens)
	e.must("audit", "verify")
}
