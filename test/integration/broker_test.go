package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/broker"
)

// newBrokerEnv starts a daemon like newEnv, with a config file and the
// broker on a free loopback port (parallel test daemons must not fight
// over the default one).
func newBrokerEnv(t *testing.T, config string) *env {
	t.Helper()
	dir, err := os.MkdirTemp("", "coconut-it-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	e := &env{t: t, dir: dir, state: filepath.Join(dir, "state"), sock: filepath.Join(dir, "sock"), logPath: filepath.Join(dir, "daemon.log")}
	t.Cleanup(e.cleanup)
	cfg := filepath.Join(dir, "coconut.toml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.OpenFile(e.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(bins, "coconutd"), "--state-dir", e.state, "--socket", e.sock, "--config", cfg, "--broker-addr", "127.0.0.1:0")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e.daemon = cmd
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, _, code := e.cli("doctor"); code == 0 {
			e.cgroupRoot()
			return e
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(e.logPath)
			t.Fatalf("coconutd did not come up:\n%s", b)
		}
	}
}

// brokerAddrs reads where the broker listens from doctor.
func (e *env) brokerAddrs() (sock, addr string) {
	e.t.Helper()
	var d struct {
		Sock string `json:"broker_socket"`
		Addr string `json:"broker_addr"`
	}
	if err := json.Unmarshal([]byte(e.must("doctor", "--json")), &d); err != nil || d.Sock == "" || d.Addr == "" {
		e.t.Fatalf("doctor names no broker: %+v %v", d, err)
	}
	return d.Sock, d.Addr
}

// brokerWork makes a directory the demo user's agents share.
func (e *env) brokerWork() string {
	e.t.Helper()
	uid, _ := e.demo()
	w := filepath.Join(e.dir, "work")
	os.Mkdir(w, 0o755)
	os.Chown(w, int(uid), int(uid))
	return w
}

// tokensUsed is `agent quota AID`'s usage.tokens.
func (e *env) tokensUsed(aid uint64) int64 {
	e.t.Helper()
	var q struct {
		Usage struct {
			Tokens int64 `json:"tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal([]byte(e.must("agent", "quota", strconv.FormatUint(aid, 10), "--json")), &q); err != nil {
		e.t.Fatal(err)
	}
	return q.Usage.Tokens
}

// script writes a bash script the agents run.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("set -u\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// call is bash that runs one curl and prints "LABEL STATUS [DONE-count]".
const callFn = `call() { local label=$1; shift; local out; out=$(/usr/bin/curl -sS -m 30 -w '\n%{http_code}' "$@" 2>&1); local done=0; [[ $out == *'data: [DONE]'* ]] && done=1; echo "$label ${out##*$'\n'} $done"; }
body() { echo "{\"model\":\"$1\",\"messages\":[{\"role\":\"user\",\"content\":\"hello there\"}],\"max_tokens\":$2${3:+,\"stream\":true}}"; }
`

// logLine returns the fields after label in the log ("200 1").
func logLine(t *testing.T, log, label string) string {
	t.Helper()
	for _, l := range strings.Split(log, "\n") {
		if rest, ok := strings.CutPrefix(l, label+" "); ok {
			return rest
		}
	}
	t.Fatalf("no %q line in log:\n%s", label, log)
	return ""
}

// hostCall is a request from the test process, which is not an agent.
func hostCall(t *testing.T, network, addr, path, key string, body []byte) (int, string) {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	if network == "unix" {
		path := addr
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}
		addr = "broker"
	}
	method := http.MethodGet
	if body != nil {
		method = http.MethodPost
	}
	req, _ := http.NewRequest(method, "http://"+addr+path, bytes.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", network, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestBrokerIdentity: agents call the broker with curl over TCP (only
// OPENAI_BASE_URL and OPENAI_API_KEY) and over the Unix socket, streaming
// and not; a host process, another agent's key, an agent without the
// capability and a model outside it are refused; every call is an
// inference.call row; /metrics answers on loopback with per-agent tokens.
func TestBrokerIdentity(t *testing.T) {
	e := newBrokerEnv(t, "[broker]\nmetrics_grace = \"1s\"\n")
	w := e.brokerWork()
	sock, addr := e.brokerAddrs()
	caller := writeScript(t, w, "caller.sh", callFn+fmt.Sprintf(`W=%s
echo "$OPENAI_API_KEY" > $W/a.key
call tcp "$OPENAI_BASE_URL/chat/completions" -H "Authorization: Bearer $OPENAI_API_KEY" -d "$(body sim 5)"
call tcp-stream "$OPENAI_BASE_URL/chat/completions" -H "Authorization: Bearer $OPENAI_API_KEY" -d "$(body sim 5 s)"
call unix --unix-socket "$COCONUT_BROKER_SOCKET" http://broker/v1/chat/completions -d "$(body sim 5)"
call unix-stream --unix-socket "$COCONUT_BROKER_SOCKET" http://broker/v1/chat/completions -d "$(body sim 5 s)"
call model "$OPENAI_BASE_URL/chat/completions" -H "Authorization: Bearer $OPENAI_API_KEY" -d "$(body gpt-4o 5)"
while [ ! -s $W/b.key ]; do read -t 0.1 < /dev/zero || true; done
call stolen "$OPENAI_BASE_URL/chat/completions" -H "Authorization: Bearer $(< $W/b.key)" -d "$(body sim 5)"
call stolen-unix --unix-socket "$COCONUT_BROKER_SOCKET" http://broker/v1/chat/completions -H "Authorization: Bearer $(< $W/b.key)" -d "$(body sim 5)"
echo finished
exec /bin/sleep 600
`, w))
	other := writeScript(t, w, "other.sh", fmt.Sprintf("echo \"$OPENAI_API_KEY\" > %s/b.tmp && mv %s/b.tmp %s/b.key\nexec /bin/sleep 600\n", w, w, w))
	noinf := writeScript(t, w, "noinf.sh", callFn+`call noinf-tcp "$OPENAI_BASE_URL/chat/completions" -H "Authorization: Bearer $OPENAI_API_KEY" -d "$(body sim 5)"
call noinf-unix --unix-socket "$COCONUT_BROKER_SOCKET" http://broker/v1/chat/completions -d "$(body sim 5)"
echo finished
`)
	run := func(name, script string, caps ...string) uint64 {
		args := []string{"agent", "run", "--name", name, "--workdir", w, "--cap", "fs.read:" + w + "/**", "--cap", "fs.write:" + w + "/**",
			"--cap", "fs.exec:/usr/bin/curl", "--cap", "fs.read:/etc/ssl/**", "--cap", "fs.exec:/usr/bin/mv", "--cap", "fs.exec:/bin/sleep", "--cap", "fs.exec:/usr/bin/sleep"}
		for _, c := range caps {
			args = append(args, "--cap", c)
		}
		return mustAID(t, e.must(append(args, "--", "/bin/bash", script)...))
	}
	a := run("caller", caller, "inference:model=sim")
	b := run("other", other, "inference:model=*")
	c := run("noinf", noinf)

	log := e.waitLog(a, "finished")
	for label, want := range map[string]string{
		"tcp": "200 0", "tcp-stream": "200 1", "unix": "200 0", "unix-stream": "200 1",
		"model": "403 0", "stolen": "403 0", "stolen-unix": "403 0",
	} {
		if got := logLine(t, log, label); got != want {
			t.Errorf("%s: got %q, want %q (status, [DONE] seen)\n%s", label, got, want, log)
		}
	}
	// Without an inference capability neither the broker's TCP port nor
	// its Unix socket is reachable (no implicit connect rule: ECAPABILITY,
	// curl's 000; issue 3's Unix allowlist).
	log = e.waitLog(c, "finished")
	for label, want := range map[string]string{"noinf-tcp": "000 0", "noinf-unix": "000 0"} {
		if got := logLine(t, log, label); got != want {
			t.Errorf("%s: got %q, want %q\n%s", label, got, want, log)
		}
	}

	// The host (this test, root, no agent) is refused on both listeners,
	// with and without an agent's key.
	akey, _ := os.ReadFile(filepath.Join(w, "a.key"))
	req := []byte(`{"model":"sim","messages":[{"role":"user","content":"hi"}],"max_tokens":3}`)
	for _, tt := range []struct {
		name, network, addr, key string
		want                     int
	}{
		{"unix", "unix", sock, "", 401},
		{"unix with a key", "unix", sock, strings.TrimSpace(string(akey)), 401},
		{"tcp without a key", "tcp", addr, "", 401},
		{"tcp garbled key", "tcp", addr, "coco-nope", 401},
		{"tcp with an agent's key", "tcp", addr, strings.TrimSpace(string(akey)), 403},
	} {
		if code, body := hostCall(t, tt.network, tt.addr, "/v1/chat/completions", tt.key, req); code != tt.want || !strings.Contains(body, `"error"`) {
			t.Errorf("host %s: %d %s, want %d with an OpenAI error", tt.name, code, body, tt.want)
		}
	}

	// Every call counted, with tokens; the refusals are deny rows of their
	// own. The first call of each (model, endpoint, stream) has its row,
	// the second (unix after tcp) is counted into an aggregate row
	// (issue 19: detail.count, tokens summed) written within a quarter
	// second. The simulated backend samples output lengths (at most
	// max_tokens 5).
	var ok, denied, out int
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ok, denied, out = 0, 0, 0
		for _, r := range e.rows("--aid", strconv.FormatUint(a, 10), "--type", "inference.call") {
			switch {
			case r.Result == "allow" && (r.Detail["status"] == "200" || r.Detail["count"] != "" && r.Detail["result"] == "ok"):
				k := r.denies() // calls the row counts
				ok += k
				n, err := strconv.Atoi(r.Detail["tokens_out"])
				if r.Object != "sim" || r.Detail["tokens_in"] == "0" || err != nil || n < k || n > 5*k {
					t.Errorf("allow row without tokens: %+v", r)
				}
				out += n
			case r.Result == "deny":
				denied++
			}
		}
		if ok >= 4 || time.Now().After(deadline) {
			break
		}
	}
	if ok != 4 || denied != 3 {
		t.Errorf("agent %d: %d allowed and %d denied inference.call rows, want 4 and 3", a, ok, denied)
	}
	if rows := e.rows("--aid", strconv.FormatUint(c, 10), "--type", "inference.call", "--result", "deny"); len(rows) != 0 {
		t.Errorf("agent without the capability: %d inference deny rows, want none (it never reaches the broker)", len(rows))
	}
	if rows := e.rows("--aid", strconv.FormatUint(c, 10), "--type", "cap.deny"); len(rows) != 2 || !strings.Contains(rows[0].Object, addr) ||
		rows[1].Object != "unix "+sock {
		t.Errorf("agent without the capability: cap.deny rows %+v, want one for %s and one for unix %s", rows, addr, sock)
	}
	if rows := e.rows("--aid", "0", "--type", "inference.call", "--result", "deny"); len(rows) < 4 {
		t.Errorf("host refusals: %d rows, want at least 4", len(rows))
	}

	// Usage: the quota shows the tokens; /metrics only on loopback TCP.
	if n := e.tokensUsed(a); n <= 0 {
		t.Errorf("agent %d quota usage.tokens = %d after 4 calls", a, n)
	}
	code, metrics := hostCall(t, "tcp", addr, "/metrics", "", nil)
	want := fmt.Sprintf(`coconut_broker_agent_tokens_total{aid="%d",dir="out"} %d`, a, out)
	if code != 200 || !strings.Contains(metrics, want) {
		t.Errorf("/metrics: %d, no %q in:\n%s", code, want, metrics)
	}
	if code, _ := hostCall(t, "unix", sock, "/metrics", "", nil); code != 404 {
		t.Errorf("/metrics on the unix socket: %d, want 404", code)
	}

	// coconut top shows the same tokens per agent, and totals at least
	// as large; nothing waits once the calls are done.
	var top struct {
		Inference struct {
			Slots     int      `json:"slots"`
			TokensOut int64    `json:"tokens_out"`
			Blocked   []uint64 `json:"blocked"`
			Agents    []struct {
				AID       uint64 `json:"aid"`
				TokensOut int64  `json:"tokens_out"`
				Queued    int    `json:"queued"`
			} `json:"agents"`
		} `json:"inference"`
	}
	if err := json.Unmarshal([]byte(e.must("top", "--json")), &top); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ag := range top.Inference.Agents {
		if ag.AID == a {
			found = true
			if ag.TokensOut != int64(out) || ag.Queued != 0 {
				t.Errorf("top: agent %d tokens_out %d queued %d, want %d and 0", a, ag.TokensOut, ag.Queued, out)
			}
		}
	}
	if !found || top.Inference.Slots == 0 || top.Inference.TokensOut < int64(out) || len(top.Inference.Blocked) != 0 {
		t.Errorf("top --json: %+v (agent %d, %d tokens out)", top.Inference, a, out)
	}
	if table := e.must("top"); !strings.Contains(table, "caller") || !strings.Contains(table, "slots busy") {
		t.Errorf("top table:\n%s", table)
	}

	// An ended agent's series leave /metrics a grace period (here 1 s)
	// after it ends (issue 17.5: an AID is never reused, so series kept
	// for ended agents would grow without bound).
	e.must("agent", "kill", strconv.FormatUint(a, 10))
	series := fmt.Sprintf(`coconut_broker_agent_tokens_total{aid="%d"`, a)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, metrics = hostCall(t, "tcp", addr, "/metrics", "", nil)
		if !strings.Contains(metrics, series) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent %d ended 10 s ago and /metrics still has its series:\n%s", a, metrics)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if other := fmt.Sprintf(`coconut_broker_agent_tokens_total{aid="%d"`, b); strings.Contains(metrics, other) {
		// b made no call: it never had a series.
		t.Errorf("agent %d made no call but has a token series", b)
	}
}

// TestBrokerBudgetUpstream: with a configured upstream (the simulated
// backend on a loopback port) the agent's direct connect fails with
// ECAPABILITY while the broker reaches it; a request that must wait for
// its budget makes the agent Inference-blocked, then Active; one that can
// never fit gets 429 and a row.
func TestBrokerBudgetUpstream(t *testing.T) {
	sim, err := broker.NewSim(broker.SimConfig{Slots: 4, DecodePerToken: 500 * time.Millisecond, Output: "fixed", OutputMean: 2})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: sim}
	go srv.Serve(l)
	defer srv.Close()
	up := l.Addr().(*net.TCPAddr).Port
	e := newBrokerEnv(t, fmt.Sprintf("[broker]\nupstream_url = \"http://127.0.0.1:%d/v1\"\n", up))
	w := e.brokerWork()
	// Budget 50: two calls of max_tokens 20 (84-byte bodies: 21 prompt
	// tokens reserved, 41 in all) cannot both be in flight; the second
	// waits until the first settles at 5 (3 in + 2 out) and refunds 36.
	// The third (21 + 25 with 40 left) can never fit.
	script := writeScript(t, w, "budget.sh", callFn+fmt.Sprintf(`direct=$( (exec 3<>/dev/tcp/127.0.0.1/%d) 2>&1 )
echo "direct $direct"
call first "$OPENAI_BASE_URL/chat/completions" -H "Authorization: Bearer $OPENAI_API_KEY" -d "$(body sim 20)" > %s/first.out &
read -t 0.3 < /dev/zero || true
call second "$OPENAI_BASE_URL/chat/completions" -H "Authorization: Bearer $OPENAI_API_KEY" -d "$(body sim 20)"
wait
cat %s/first.out
call third --unix-socket "$COCONUT_BROKER_SOCKET" http://broker/v1/chat/completions -d "$(body sim 25)"
echo finished
`, up, w, w))
	aid := mustAID(t, e.must("agent", "run", "--name", "budget", "--workdir", w, "--cap", "fs.read:"+w+"/**", "--cap", "fs.write:"+w+"/**",
		"--cap", "fs.exec:/usr/bin/curl", "--cap", "fs.read:/etc/ssl/**", "--cap", "fs.exec:/bin/cat", "--cap", "fs.exec:/usr/bin/cat", "--cap", "inference:model=*,tokens=50",
		"--", "/bin/bash", script))
	log := e.waitLog(aid, "finished")
	if d := logLine(t, log, "direct"); !strings.Contains(d, "134") {
		t.Errorf("direct connect to the upstream: %q, want errno 134 (ECAPABILITY)", d)
	}
	for label, want := range map[string]string{"first": "200 0", "second": "200 0", "third": "429 0"} {
		if got := logLine(t, log, label); got != want {
			t.Errorf("%s: got %q, want %q\n%s", label, got, want, log)
		}
	}
	id := strconv.FormatUint(aid, 10)
	var states []string
	for _, r := range e.rows("--aid", id, "--type", "agent.state") {
		states = append(states, r.Object)
	}
	// The direct connect made it Capability-denied first, from where
	// waiting for the budget also leads to Inference-blocked, and back to
	// the state it left.
	if s := strings.Join(states, " "); !strings.Contains(s, "Active Capability-denied Inference-blocked Capability-denied") {
		t.Errorf("agent %d states %q: want Capability-denied (direct connect), Inference-blocked, then Capability-denied", aid, s)
	}
	var budget int
	for _, r := range e.rows("--aid", id, "--type", "inference.call", "--result", "deny") {
		if r.Detail["result"] == "budget" && r.Detail["status"] == "429" {
			budget++
		}
	}
	if budget != 1 {
		t.Errorf("%d budget rows, want 1", budget)
	}
	if denies := e.rows("--aid", id, "--type", "cap.deny"); len(denies) != 1 || !strings.Contains(denies[0].Object, strconv.Itoa(up)) {
		t.Errorf("direct connect: deny rows %+v, want one naming port %d", denies, up)
	}
	if n := e.tokensUsed(aid); n != 10 {
		t.Errorf("usage.tokens = %d, want 10 (two calls of 3 in + 2 out)", n)
	}
}
