package supervise

import (
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/fairq"
)

// TestFairTurnsUnderFlood (issue 19.3): two real supervised agents share
// one Gate with a single turn, as the daemon's supervisors share theirs.
// One floods allowed opens for as long as the test runs; the other makes
// victimOps opens. The victim's opens all complete and succeed, the
// flooder keeps flooding meanwhile, the two did contend for the turn, and
// no notification waited for more than the one turn the other agent held
// when it arrived (which Stats does not count: MaxTurnsWaited is 0).
func TestFairTurnsUnderFlood(t *testing.T) {
	needRoot(t)
	const victimOps = 3000
	dir := tree(t)
	f := dir + "/allowed/f"
	turns := fairq.NewGate(1, 1, 1)
	d := newTestDecider(bundle(t, dir))

	sup, ag := socketPair(t)
	flood := agentCmd(t, ag, "loop:1000000000:"+f)
	if err := flood.Start(); err != nil {
		t.Fatal(err)
	}
	ag.Close()
	fs, err := Start(sup, AgentInfo{AID: 1, Turns: turns}, d)
	sup.Close()
	if err != nil {
		flood.Process.Kill()
		flood.Wait()
		t.Fatalf("start the flooder's supervisor: %v", err)
	}
	defer func() {
		flood.Process.Kill()
		flood.Wait()
		fs.Wait()
	}()
	deadline := time.Now().Add(30 * time.Second)
	for fs.Counters().Notifications < 1000 {
		if time.Now().After(deadline) {
			t.Fatalf("the flooder made %d calls in 30 s", fs.Counters().Notifications)
		}
		time.Sleep(5 * time.Millisecond)
	}

	before := fs.Counters().Notifications
	start := time.Now()
	got, vs := runAgent(t, AgentInfo{AID: 2, Turns: turns}, d, "loop:3000:"+f)
	took := time.Since(start)
	during := fs.Counters().Notifications - before

	if n, ok := got["loop:3000:"+f]; !ok || n != 0 {
		t.Fatalf("victim's loop: errno %d (present %v), want all %d opens to succeed", n, ok, victimOps)
	}
	if c := vs.Counters(); c.Allowed < victimOps {
		t.Errorf("victim's supervisor allowed %d calls, want ≥ %d", c.Allowed, victimOps)
	}
	if during < 100 {
		t.Errorf("the flooder made only %d calls while the victim ran: not a flood", during)
	}
	st := turns.Stats()
	if st.Waited == 0 {
		t.Errorf("no notification ever waited for a turn (%+v): the agents did not contend", st)
	}
	if st.MaxTurnsWaited > 0 {
		t.Errorf("a notification waited for %d turns beyond the one held when it arrived, want 0 (%+v)", st.MaxTurnsWaited, st)
	}
	t.Logf("victim: %d opens in %v beside %d flooder calls; gate %+v", victimOps, took, during, st)
}
