package integration

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// slow turns on the long suites: go test ./test/integration/ -coconut.slow
// (or COCONUT_SLOW=1 in the environment).
var slow = flag.Bool("coconut.slow", os.Getenv("COCONUT_SLOW") == "1", "run the slow suites (e.g. 100 kill -9 cycles)")

// killCycles is how many times TestKillRestartCountersAgree kills coconutd.
func killCycles() int {
	if *slow {
		return 100
	}
	return 4
}

// TestKillRestartCountersAgree (issue 20): agents are denied in a loop —
// file opens (seccomp supervisor), TCP and Unix socket connects (network
// guard), mount (refused whatever the bundle) — while coconutd is killed
// with SIGKILL at random moments and restarted. After every restart one
// doctor snapshot shows kernel_denies == chain_denies (not "eventually":
// the snapshot a user takes), doctor raises no counters alarm, and at the
// end every deny an agent saw (its ledger: kind, errno, time) is counted
// exactly once by the audit rows (issue 19: a row of its own or in an
// aggregate row's count) and no row counts a deny not behind it. 4 cycles by default,
// 100 with -coconut.slow or COCONUT_SLOW=1.
func TestKillRestartCountersAgree(t *testing.T) {
	e := newEnv(t)
	uid, _ := e.demo()
	port, unixPath, secret, allowed := denyTargets(t, e)

	type looper struct {
		aid    uint64
		pid    int
		ledger string
	}
	var agents []looper
	for i := range 2 {
		w := filepath.Join(e.dir, fmt.Sprintf("w%d", i))
		os.Mkdir(w, 0o755)
		os.Chown(w, int(uid), int(uid))
		ledger := filepath.Join(w, "ledger")
		aid := mustAID(t, e.must("agent", "run", "--name", fmt.Sprintf("denyloop%d", i), "--workdir", w,
			"--cap", "fs.read:"+allowed, "--cap", "fs.write:"+w+"/**", "--",
			filepath.Join(bins, "denyloop"), ledger, secret, allowed, strconv.Itoa(port), unixPath, "20ms"))
		agents = append(agents, looper{aid: aid, ledger: ledger})
	}
	for i := range agents {
		agents[i].pid = e.waitState(agents[i].aid, "Capability-denied").PID
	}

	cycles := killCycles()
	mismatches := 0
	for c := range cycles {
		time.Sleep(time.Duration(100+rand.IntN(900)) * time.Millisecond) // serving, at a random moment
		e.stop(syscall.SIGKILL)
		time.Sleep(time.Duration(rand.IntN(700)) * time.Millisecond) // down: connects denied in the kernel, opens wait
		e.start()
		for _, a := range agents {
			if got := e.agent(a.aid); !got.Adopted || got.PID != a.pid {
				t.Fatalf("cycle %d: agent %d not adopted: %+v", c, a.aid, got)
			}
		}
		time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
		doc := e.doctorCounters()
		if doc.Counters["kernel_denies"] != doc.Counters["chain_denies"] {
			mismatches++
			t.Errorf("cycle %d: one doctor snapshot after the restart: kernel_denies %d, chain_denies %d (%v)",
				c, doc.Counters["kernel_denies"], doc.Counters["chain_denies"], doc.Counters)
		}
		if len(doc.Alarm) > 0 {
			t.Errorf("cycle %d: doctor raises a counters alarm: %+v", c, doc.Alarm)
		}
	}
	t.Logf("%d kill -9 cycles, %d doctor snapshots with kernel_denies != chain_denies", cycles, mismatches)

	// Stop the agents between two calls (SIGTERM: each logs its last call
	// and exits), so every ledger line is whole and final.
	for _, a := range agents {
		syscall.Kill(a.pid, syscall.SIGTERM)
	}
	for _, a := range agents {
		for deadline := time.Now().Add(20 * time.Second); !gone(a.pid); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("agent %d did not stop on SIGTERM", a.aid)
			}
		}
	}
	e.countersAgree(1)

	for _, a := range agents {
		saw, other := readLedger(t, a.ledger)
		for _, o := range other {
			t.Errorf("agent %d: %s", a.aid, o)
		}
		rows := map[string]int{}
		for _, r := range e.rows("--aid", strconv.FormatUint(a.aid, 10), "--type", "cap.deny") {
			switch {
			case r.Object == secret:
				rows["open-denied"] += r.denies()
			case r.Object == fmt.Sprintf("tcp 127.0.0.1:%d", port):
				rows["connect-tcp"] += r.denies()
			case r.Object == "unix "+unixPath:
				rows["connect-unix"] += r.denies()
			case strings.HasPrefix(r.Object, "mount "):
				rows["mount"] += r.denies()
			}
		}
		for _, kind := range []string{"open-denied", "connect-tcp", "connect-unix", "mount"} {
			if saw[kind] == 0 {
				t.Errorf("agent %d: no %s deny in its ledger", a.aid, kind)
			}
			if saw[kind] != rows[kind] {
				t.Errorf("agent %d: %s: the agent saw %d denies, the chain's rows count %d", a.aid, kind, saw[kind], rows[kind])
			}
		}
		t.Logf("agent %d: denies seen (= the sum of the rows' counts): %v", a.aid, saw)
	}
	e.must("audit", "verify")
}

// readLedger counts a denyloop ledger's ECAPABILITY answers by kind; other
// lists every answer that is neither that nor the allowed open's success.
func readLedger(t *testing.T, path string) (denies map[string]int, other []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	denies = map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var kind string
		var errno int
		var at int64
		if _, err := fmt.Sscanf(sc.Text(), "%s %d %d", &kind, &errno, &at); err != nil {
			t.Fatalf("ledger line %q: %v", sc.Text(), err)
		}
		switch {
		case kind == "open-allowed" && errno == 0:
		case kind != "open-allowed" && errno == 134:
			denies[kind]++
		default:
			other = append(other, fmt.Sprintf("%s answered errno %d at %s", kind, errno, time.Unix(0, at).UTC().Format(time.RFC3339Nano)))
		}
	}
	return denies, other
}

// doctorReport is what the counter tests read of doctor --json.
type doctorReport struct {
	Counters map[string]uint64 `json:"counters"`
	Alarm    []map[string]any  `json:"counters_alarm"`
}

func (e *env) doctorCounters() doctorReport {
	e.t.Helper()
	var d doctorReport
	if err := json.Unmarshal([]byte(e.must("doctor", "--json")), &d); err != nil {
		e.t.Fatal(err)
	}
	return d
}

// TestDoctorCountersAlarm: a counters alarm the daemon kept from before a
// restart (state/counters-alarm.json) is in doctor's JSON (counters_alarm,
// counters.mismatch_since) and is an ALARM line in its human output,
// naming the source, the difference and when it was first seen.
func TestDoctorCountersAlarm(t *testing.T) {
	e := newEnv(t)
	if d := e.doctorCounters(); len(d.Alarm) != 0 || d.Counters["mismatch_since"] != 0 || d.Counters["counters_settled"] != 1 {
		t.Fatalf("fresh daemon: %+v", d)
	}
	e.stop(syscall.SIGTERM)
	first := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	alarm := fmt.Sprintf(`[{"source": "netguard", "difference": 1, "max_difference": 1, "kernel_denies": 123, "chain_denies": 122,
		"first_seen": %q, "last_seen": %q, "daemon_pid": 4242, "now": true}]`, first.Format(time.RFC3339), first.Format(time.RFC3339))
	if err := os.WriteFile(filepath.Join(e.state, "counters-alarm.json"), []byte(alarm), 0o600); err != nil {
		t.Fatal(err)
	}
	e.start()
	d := e.doctorCounters()
	if len(d.Alarm) != 1 || d.Alarm[0]["source"] != "netguard" || d.Alarm[0]["difference"] != float64(1) || d.Alarm[0]["now"] != false {
		t.Fatalf("counters_alarm %+v, want the netguard one, not now", d.Alarm)
	}
	if d.Counters["mismatch_since"] != uint64(first.Unix()) || d.Counters["mismatch"] != 0 {
		t.Fatalf("counters %v: want mismatch_since %d, mismatch 0", d.Counters, first.Unix())
	}
	out := e.must("doctor")
	if !strings.Contains(out, "ALARM") || !strings.Contains(out, "network guard (netguard) off by +1") {
		t.Fatalf("doctor output has no alarm line:\n%s", out)
	}
}

// denyTargets makes what a denyloop agent is refused and allowed: a TCP
// listener and a Unix socket it may not connect to (both closed with the
// test), a file it may not read and one it may.
func denyTargets(t *testing.T, e *env) (port int, unixPath, secret, allowed string) {
	t.Helper()
	tcpDenied, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tcpDenied.Close() })
	port = tcpDenied.Addr().(*net.TCPAddr).Port
	unixPath = filepath.Join(e.dir, "denied.sock")
	unixDenied, err := net.Listen("unix", unixPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unixDenied.Close() })
	os.Chmod(unixPath, 0o777)
	secret = filepath.Join(e.dir, "secret")
	allowed = filepath.Join(e.dir, "allowed")
	os.WriteFile(secret, []byte("no\n"), 0o644)
	os.WriteFile(allowed, []byte("yes\n"), 0o644)
	return port, unixPath, secret, allowed
}
