package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestAgentPrune: `coconut agent prune` forgets an ended agent (record,
// attestation, log, its place in `agent ls --all`) only when it ended
// before the date, and the audit chain keeps every row about it.
func TestAgentPrune(t *testing.T) {
	e := newEnv(t)
	aid := mustAID(t, e.must("agent", "run", "--name", "brief", "--workdir", "/", "--", "/bin/true"))
	e.waitState(aid, "Terminated-clean")
	rowsBefore := len(e.rows("--aid", strconv.FormatUint(aid, 10)))
	type result struct {
		Pruned []uint64 `json:"pruned"`
		Kept   int      `json:"kept"`
		Bytes  int64    `json:"bytes"`
	}
	prune := func(before string) result {
		var r result
		out := e.must("agent", "prune", "--ended-before", before, "--json")
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%q: %v", out, err)
		}
		return r
	}
	if r := prune("2h"); len(r.Pruned) != 0 || r.Kept != 1 {
		t.Fatalf("prune of agents ended 2h ago: %+v", r)
	}
	r := prune(time.Now().Add(time.Minute).UTC().Format(time.RFC3339))
	if !slices.Equal(r.Pruned, []uint64{aid}) || r.Bytes == 0 {
		t.Fatalf("prune: %+v, want [%d]", r, aid)
	}
	for _, suffix := range []string{".json", ".att.json", ".log"} {
		if _, err := os.Stat(filepath.Join(e.state, "agents", strconv.FormatUint(aid, 10)+suffix)); !os.IsNotExist(err) {
			t.Errorf("%s still there: %v", suffix, err)
		}
	}
	for _, a := range e.agents(true) {
		if a.AID == aid {
			t.Fatalf("agent %d still listed", aid)
		}
	}
	// Every row stays, and the prune has its own, written first.
	after := e.rows("--aid", strconv.FormatUint(aid, 10))
	if len(after) != rowsBefore+1 || rowsBefore == 0 {
		t.Fatalf("audit rows of the pruned agent: %d, were %d (want one more: agent.prune)", len(after), rowsBefore)
	}
	if last := after[len(after)-1]; last.Type != "agent.prune" || last.Detail["by_uid"] == "" || !strings.HasPrefix(last.Object, "ended_before=") {
		t.Fatalf("last row of the pruned agent: %+v, want its agent.prune row", last)
	}
	if _, _, code := e.cli("audit", "verify"); code != 0 {
		t.Fatal("chain does not verify after a prune")
	}
}
