package integration

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stormFlood is a perl agent that makes denied TCP connects as fast as it
// can, for ever: the network guard answers them in the kernel, so nothing
// paces it but a storm policy.
func stormFlood(t *testing.T, e *env, policy string) uint64 {
	t.Helper()
	denied, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { denied.Close() })
	port := denied.Addr().(*net.TCPAddr).Port
	flood := fmt.Sprintf(`use Socket; $| = 1; my $a = pack_sockaddr_in(%d, inet_aton("127.0.0.1")); print "flooding\n"; `+
		`while (1) { socket(my $s, PF_INET, SOCK_STREAM, 0) or die "socket: $!"; connect($s, $a); close $s }`, port)
	return mustAID(t, e.must("agent", "run", "--name", "flood", "--workdir", "/", "--on-deny-storm", policy,
		"--cap", "fs.exec:/usr/bin/**", "--cap", "fs.read:/usr/share/perl/**", "--", "/usr/bin/perl", "-e", flood))
}

// stormRows are the agent's agent.deny_storm rows.
func stormRows(e *env, aid uint64) []row {
	return e.rows("--aid", strconv.FormatUint(aid, 10), "--type", "agent.deny_storm")
}

// TestDenyStorm (issue 19.2): a real agent flooding the network guard with
// denied connects is stopped by its on_deny_storm policy, with one
// agent.deny_storm row saying why; the counters still agree.
func TestDenyStorm(t *testing.T) {
	e := newEnv(t)
	e.demo()
	if doc := e.must("doctor"); !strings.Contains(doc, "deny storm:  throttle,rate=1000,window=2s") {
		t.Errorf("doctor does not show the default deny storm policy:\n%s", doc)
	}

	t.Run("quarantine", func(t *testing.T) {
		aid := stormFlood(t, e, "quarantine,rate=200,window=1s")
		a := e.waitState(aid, "Quarantined")
		if !strings.Contains(a.Reason, "deny storm:") || !strings.Contains(a.Reason, "above 200 a second") {
			t.Errorf("quarantine reason %q does not name the storm", a.Reason)
		}
		rows := stormRows(e, aid)
		if len(rows) != 1 || rows[0].Object != "quarantine" || rows[0].Result != "deny" {
			t.Fatalf("deny storm rows %+v, want one quarantine row", rows)
		}
		if n, _ := strconv.Atoi(rows[0].Detail["denies"]); n <= 200 || rows[0].Detail["rate"] != "200" || rows[0].Detail["window_ms"] != "1000" {
			t.Errorf("storm row detail %v: want more than 200 denies at rate 200 over 1000 ms", rows[0].Detail)
		}
		// Frozen: no more denies while quarantined, and kernel == chain.
		c1 := e.countersAgree(1)
		time.Sleep(500 * time.Millisecond)
		c2 := e.countersAgree(1)
		if c2["kernel_denies"] != c1["kernel_denies"] {
			t.Errorf("a quarantined agent was still denied: kernel_denies %d then %d", c1["kernel_denies"], c2["kernel_denies"])
		}
		e.must("agent", "kill", strconv.FormatUint(aid, 10))
	})

	t.Run("throttle", func(t *testing.T) {
		aid := stormFlood(t, e, "throttle,rate=200,window=1s")
		start := time.Now()
		var rows []row
		for deadline := start.Add(20 * time.Second); len(rows) < 2; time.Sleep(200 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("after %v of flooding, %d throttle rows, want 2 (paused again while the storm lasts)", time.Since(start), len(rows))
			}
			rows = stormRows(e, aid)
		}
		for _, r := range rows {
			if r.Object != "throttle" {
				t.Errorf("storm row %+v: want throttle", r)
			}
		}
		// Throttled, not stopped: still running between its pauses, and
		// paused at most about once a second (each pause is 1 s).
		if a := e.agent(aid); a.State == "Quarantined" || strings.HasPrefix(a.State, "Terminated") {
			t.Errorf("throttled agent is %s", a.State)
		}
		if max := 1 + int(time.Since(start)/time.Second); len(rows) > max {
			t.Errorf("%d throttle rows in %v, want at most %d (one a pause)", len(rows), time.Since(start), max)
		}
		e.must("agent", "kill", strconv.FormatUint(aid, 10))
		e.countersAgree(1)
	})

	t.Run("kill", func(t *testing.T) {
		aid := stormFlood(t, e, "kill,rate=200,window=1s")
		a := e.waitState(aid, "Terminated-revoked")
		if !strings.Contains(a.Reason, "deny storm:") {
			t.Errorf("kill reason %q does not name the storm", a.Reason)
		}
		if rows := stormRows(e, aid); len(rows) != 1 || rows[0].Object != "kill" {
			t.Errorf("deny storm rows %+v, want one kill row", rows)
		}
		if a.PID > 0 {
			for deadline := time.Now().Add(10 * time.Second); syscall.Kill(a.PID, 0) == nil; time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("agent %d (pid %d) still alive after its storm kill", aid, a.PID)
				}
			}
		}
		e.countersAgree(1)
	})

	t.Run("refused", func(t *testing.T) {
		_, errs, code := e.cli("agent", "run", "--name", "bad", "--workdir", "/", "--on-deny-storm", "explode", "--", "/usr/bin/true")
		if code == 0 || !strings.Contains(errs, "not an action") {
			t.Errorf("--on-deny-storm explode: exit %d, %q; want a precise refusal", code, errs)
		}
	})
}
