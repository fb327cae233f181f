package netguard

import (
	"path/filepath"
	"strconv"
	"testing"
)

// TestReopenAudited: a policy that records allowed connects puts
// allowed-use records (numbered by use_seq) in the ring between the denies.
// After a reopen the guard's deny count must still equal the denies it
// delivers, whatever kind of record is pending first, and every record
// made while no guard was open is delivered once, in order.
func TestReopenAudited(t *testing.T) {
	requireRoot(t)
	s := startServers(t)
	p := strconv.Itoa
	ok, no := "connect tcp 127.0.0.1 "+p(s.tcp4), "connect tcp 127.0.0.1 "+p(s.other4)
	for _, tt := range []struct {
		name   string
		closed []string // made while no guard is open
	}{
		{"allowed first", []string{ok, no, ok, no}},
		{"allowed only", []string{ok, ok}},
		{"deny first", []string{no, ok, no}},
		{"nothing", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := testRoot(t)
			pins := pinDirFor(t, root)
			agent, id := mkCgroup(t, filepath.Join(root, "agent"))

			g, err := Open(root, pins)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if err := g.SetPolicy(1, caps(t, "net.connect:127.0.0.1:"+p(s.tcp4))); err != nil {
				t.Fatal(err)
			}
			if err := g.Bind(id, 1); err != nil {
				t.Fatal(err)
			}
			if err := g.SetAuditConnect(1, true); err != nil {
				t.Fatal(err)
			}
			// The first daemon reads 3 uses and 1 deny: use_seq and
			// deny_seq now differ, as they do on a real machine.
			before := []string{ok, ok, ok, no}
			runOps(t, agent, before...)
			waitEvents(t, g, len(before))
			if err := g.Close(); err != nil {
				t.Fatal(err)
			}

			var got []string
			if len(tt.closed) > 0 {
				got = runOps(t, agent, tt.closed...)
			}
			for i, op := range tt.closed {
				if want := map[bool]string{true: "ok", false: denied}[op == ok]; got[i] != want {
					t.Fatalf("while closed, op %d: %q, want %q", i, got[i], want)
				}
			}

			g2, err := Open(root, pins)
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			defer g2.Close()
			evs := waitEvents(t, g2, len(tt.closed))
			nextUse, nextDeny := uint64(4), uint64(2)
			for i, ev := range evs {
				want := nextDeny
				if ev.Allowed {
					want = nextUse
				}
				if ev.Allowed != (tt.closed[i] == ok) || ev.Seq != want || ev.CgroupID != id {
					t.Errorf("event %d: %+v, want allowed=%v seq %d", i, ev, tt.closed[i] == ok, want)
				}
				if ev.Allowed {
					nextUse++
				} else {
					nextDeny++
				}
			}
			denies := nextDeny - 2
			if d, full, err := g2.Counters(); err != nil || d != denies || full != 0 {
				t.Errorf("counters after reopen: %d denies, %d full, %v; want %d denies delivered, 0 full", d, full, err, denies)
			}

			// One more deny: it is the next event (nothing was delivered
			// twice before it) and both sides count it.
			if got := runOps(t, agent, no); got[0] != denied {
				t.Fatalf("after reopen: %q", got)
			}
			if ev := waitEvents(t, g2, 1)[0]; ev.Allowed || ev.Seq != nextDeny {
				t.Errorf("next event: %+v, want deny seq %d", ev, nextDeny)
			}
			if d, _, err := g2.Counters(); err != nil || d != denies+1 {
				t.Errorf("counters after one more deny: %d, %v; want %d", d, err, denies+1)
			}
		})
	}
}
