package cli

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/coconut-os/coconut/api"
)

// TestDoctorRegistry: results come out in group order, a failed check
// that matters fails the whole, one that does not only reports, and a
// check that does not apply is left out.
func TestDoctorRegistry(t *testing.T) {
	saved := doctorChecks
	defer func() { doctorChecks = saved }()
	doctorChecks = nil
	res := func(r checkResult) func(context.Context, *doctorEnv) checkResult {
		return func(context.Context, *doctorEnv) checkResult { return r }
	}
	registerDoctorCheck(
		doctorCheck{Group: groupBroker, Name: "b", Run: res(checkResult{OK: false, Detail: "minor", Fix: "do x"})},
		doctorCheck{Group: groupKernel, Name: "k", Matters: true, Run: res(checkResult{OK: true})},
		doctorCheck{Group: groupDaemon, Name: "skip", Matters: true, Run: res(checkResult{Skip: true})},
	)
	lines, ok := runDoctorChecks(context.Background(), &doctorEnv{})
	if !ok || len(lines) != 2 || lines[0].Group != groupKernel || lines[1].Group != groupBroker || lines[1].Fix != "do x" {
		t.Fatalf("ok %v lines %+v", ok, lines)
	}
	registerDoctorCheck(doctorCheck{Group: groupAnchor, Name: "a", Matters: true, Run: res(checkResult{OK: false})})
	if _, ok := runDoctorChecks(context.Background(), &doctorEnv{}); ok {
		t.Fatal("a failed check that matters passed")
	}
}

// TestDoctorCoreChecks: with no daemon, "reachable" fails with a fix and
// daemon-side checks are left out; with one, its findings land in their
// groups and an unknown finding is kept under daemon.
func TestDoctorCoreChecks(t *testing.T) {
	ctx := context.Background()
	lines, ok := runDoctorChecks(ctx, &doctorEnv{err: errors.New("dial unix: no such file")})
	if ok {
		t.Fatal("doctor passed with no daemon")
	}
	for _, l := range lines {
		if l.Name == "reachable" && (l.OK || l.Fix == "") {
			t.Errorf("reachable: %+v", l)
		}
		if l.Group == groupEnforcer || l.Group == groupAnchor {
			t.Errorf("daemon-side check without a daemon: %+v", l)
		}
	}
	d := &api.Doctor{Version: "v", PID: 1, Enforcer: "portable", Anchor: "fss", Counters: map[string]uint64{"kernel_denies": 2, "chain_denies": 1, "counters_settled": 1},
		BrokerSocket: "/run/coconut/broker.sock", BrokerAddr: "127.0.0.1:7878",
		Checks: []api.Check{{Name: "cgroup2", OK: true, Detail: "x"}, {Name: "netguard-pin", OK: false, Detail: "not pinned"}, {Name: "new-thing", OK: false, Detail: "odd"}}}
	lines, _ = runDoctorChecks(ctx, &doctorEnv{d: d})
	got := map[string]doctorLine{}
	for _, l := range lines {
		got[l.Name] = l
	}
	if l := got["netguard-pin"]; l.Group != groupEnforcer || l.OK || l.Fix == "" {
		t.Errorf("netguard-pin: %+v", l)
	}
	if l := got["other"]; l.Group != groupDaemon || l.OK || l.Detail != "new-thing: odd" {
		t.Errorf("unsorted finding: %+v", l)
	}
	if l := got["counters"]; l.OK || l.Matters {
		t.Errorf("counters mismatch: %+v (it reports, it does not fail doctor: a burst may be in flight)", l)
	}
	if l := got["backend"]; !l.OK {
		t.Errorf("backend: %+v", l)
	}
	if l := got["center"]; l.OK || l.Matters || l.Fix == "" || !strings.Contains(l.Detail, "off") {
		t.Errorf("center off: %+v, want a line that says it is off and how to turn it on", l)
	}
	d.CenterAddr = "127.0.0.1:7879"
	lines, _ = runDoctorChecks(ctx, &doctorEnv{d: d})
	for _, l := range lines {
		if l.Name == "center" && (!l.OK || !strings.Contains(l.Detail, "http://127.0.0.1:7879")) {
			t.Errorf("center on: %+v, want where it serves", l)
		}
	}
}
