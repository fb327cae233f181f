package integration

import (
	"strconv"
	"strings"
	"testing"
)

// TestBrokerUserBudget: [broker] user_token_budget spans a user's agents
// through the daemon's registry: what one agent spent (it has ended
// since) leaves the next agent of the same user too little for a request
// that alone would fit, refused 429 with a budget row naming the user's
// budget.
func TestBrokerUserBudget(t *testing.T) {
	// A call of max_tokens 20 reserves 41 tokens and settles at 5 (3 in
	// + 2 out, fixed): with 45 for the user, the first agent's call fits,
	// the second agent's same call no longer does.
	e := newBrokerEnv(t, "[broker]\nuser_token_budget = 45\n[broker.sim]\noutput = \"fixed\"\noutput_mean = 2\n")
	w := e.brokerWork()
	run := func(name string) (uint64, string) {
		script := writeScript(t, w, name+".sh", callFn+`call `+name+` "$OPENAI_BASE_URL/chat/completions" -H "Authorization: Bearer $OPENAI_API_KEY" -d "$(body sim 20)"
echo finished
`)
		aid := mustAID(t, e.must("agent", "run", "--name", name, "--workdir", w, "--cap", "fs.read:"+w+"/**",
			"--cap", "fs.exec:/usr/bin/curl", "--cap", "inference:model=*", "--", "/bin/bash", script))
		return aid, e.waitLog(aid, "finished")
	}
	first, log := run("first")
	if got := logLine(t, log, "first"); got != "200 0" {
		t.Fatalf("first agent's call: %q\n%s", got, log)
	}
	e.waitState(first, "Terminated-clean")
	second, log := run("second")
	if got := logLine(t, log, "second"); got != "429 0" {
		t.Fatalf("second agent's call: %q, want 429 (the user's budget is spent)\n%s", got, log)
	}
	rows := e.rows("--aid", strconv.FormatUint(second, 10), "--type", "inference.call", "--result", "deny")
	if len(rows) != 1 || rows[0].Detail["result"] != "budget" || !strings.Contains(rows[0].Detail["reason"], "user token budget") {
		t.Errorf("second agent's deny rows: %+v", rows)
	}
}
