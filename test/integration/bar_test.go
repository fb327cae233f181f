package integration

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBarLive: `coconut bar --watch`, run as the demo user, shows their
// agent active with the tokens it spent at the broker (the same figure as
// its quota's usage), a new line when it is killed, and a "down" line
// (without exiting) when coconutd stops; the one-shot i3blocks and polybar
// formats read the same figures.
func TestBarLive(t *testing.T) {
	e := newBrokerEnv(t, "")
	w := e.brokerWork()
	uid, _ := e.demo()
	cred := &syscall.Credential{Uid: uid, Gid: uid}
	script := writeScript(t, w, "spend.sh", callFn+`call tcp "$OPENAI_BASE_URL/chat/completions" -H "Authorization: Bearer $OPENAI_API_KEY" -d "$(body sim 5)"
echo finished
exec /bin/sleep 600
`)
	out, errs, code := e.cliAs(cred, "agent", "run", "--name", "spender", "--workdir", w, "--cap", "fs.read:"+w+"/**",
		"--cap", "fs.exec:/usr/bin/curl", "--cap", "fs.read:/etc/ssl/**", "--cap", "fs.exec:/bin/sleep", "--cap", "fs.exec:/usr/bin/sleep",
		"--cap", "inference:model=sim", "--", "/bin/bash", script)
	if code != 0 {
		t.Fatalf("agent run: %d %s", code, errs)
	}
	aid := mustAID(t, out)
	if l := e.waitLog(aid, "finished"); logLine(t, l, "tcp") != "200 0" {
		t.Fatalf("the agent's broker call failed:\n%s", l)
	}
	tokens := e.tokensUsed(aid)
	if tokens <= 0 {
		t.Fatalf("agent %d spent %d tokens", aid, tokens)
	}

	bar := exec.Command(filepath.Join(bins, "coconut"), "bar", "--watch")
	bar.Env = append(os.Environ(), "COCONUT_SOCKET="+e.sock)
	bar.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	var stderr strings.Builder
	bar.Stderr = &stderr
	pipe, err := bar.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := bar.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { bar.Process.Kill(); bar.Wait() }()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	type waybar struct {
		Text, Tooltip, Class string
		Percentage           *int
	}
	next := func(what string) waybar {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("bar --watch exited before %s; stderr %q", what, stderr.String())
			}
			var v waybar
			if err := json.Unmarshal([]byte(l), &v); err != nil || v.Percentage == nil {
				t.Fatalf("%s: not waybar JSON: %q (%v)", what, l, err)
			}
			return v
		case <-time.After(15 * time.Second):
			t.Fatalf("no line for %s; stderr %q", what, stderr.String())
		}
		return waybar{}
	}
	v := next("the active agent")
	if v.Class != "active" || !strings.HasPrefix(v.Text, "coconut 1 active") ||
		!strings.Contains(v.Tooltip, "1 active of 1 agents") {
		t.Fatalf("first line: %+v", v)
	}
	// The tooltip has the exact in and out figures; their sum is the
	// agent's quota usage.
	var in, outTok int64
	for _, l := range strings.Split(v.Tooltip, "\n") {
		if f := strings.Fields(l); len(f) == 6 && f[0] == "tokens" {
			in, _ = strconv.ParseInt(f[1], 10, 64)
			outTok, _ = strconv.ParseInt(f[4], 10, 64)
		}
	}
	if in+outTok != tokens {
		t.Fatalf("bar shows %d+%d tokens, the quota %d: %q", in, outTok, tokens, v.Tooltip)
	}

	for _, f := range []string{"i3blocks", "polybar"} {
		o, es, c := e.cliAs(cred, "bar", "--format", f)
		if c != 0 || !strings.Contains(o, "coconut 1 active") || strings.Count(o, "\n") != 1 {
			t.Errorf("bar --format %s: %d %q %q", f, c, o, es)
		}
	}
	if _, es, c := e.cliAs(cred, "bar", "--format", "dzen"); c != 2 || !strings.Contains(es, "waybar, i3blocks, polybar") {
		t.Errorf("bar --format dzen: exit %d %q", c, es)
	}

	e.must("agent", "kill", strconv.FormatUint(aid, 10))
	if v := next("the killed agent"); v.Class != "idle" || !strings.HasPrefix(v.Text, "coconut 0 active") {
		t.Fatalf("after the kill: %+v", v)
	}

	e.stop(syscall.SIGTERM)
	if v := next("coconutd stopped"); v.Class != "down" || v.Text != "coconut down" || !strings.Contains(v.Tooltip, "unreachable") {
		t.Fatalf("after coconutd stopped: %+v", v)
	}
	time.Sleep(3 * time.Second) // a poll or more: still running, nothing repeated
	if bar.ProcessState != nil || strings.Count(stderr.String(), "\n") != 1 {
		t.Fatalf("bar --watch with coconutd down: exited %v, stderr %q", bar.ProcessState, stderr.String())
	}
	select {
	case l := <-lines:
		t.Fatalf("an unchanged down line was printed again: %q", l)
	default:
	}
}
