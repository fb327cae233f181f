package netguard

import (
	"path/filepath"
	"strconv"
	"testing"
)

// TestReopenRedeliversUnacked (issue 20): an event read from the ring but
// not acknowledged (its row was not yet durable when the daemon died) is
// delivered again by the next guard on the pins, marked Replayed and
// counted; an acknowledged one is not. Before, the ring dropped an event
// as soon as it was read, and a daemon killed before its row left a deny
// with no row that no counter showed.
func TestReopenRedeliversUnacked(t *testing.T) {
	requireRoot(t)
	s := startServers(t)
	no := "connect tcp 127.0.0.1 " + strconv.Itoa(s.other4)
	root := testRoot(t)
	pins := pinDirFor(t, root)
	agent, id := mkCgroup(t, filepath.Join(root, "agent"))

	g, err := Open(root, pins)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := g.SetPolicy(1, nil); err != nil {
		t.Fatal(err)
	}
	if err := g.Bind(id, 1); err != nil {
		t.Fatal(err)
	}
	runOps(t, agent, no, no, no)
	var evs []Event
	for range 3 {
		evs = append(evs, <-g.Events())
	}
	g.Ack(evs[0]) // only the first is "recorded"
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}

	g2, err := Open(root, pins)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer g2.Close()
	again := waitEvents(t, g2, 2)
	for i, ev := range again {
		if want := evs[i+1].Seq; ev.Seq != want || !ev.Replayed || ev.Allowed || ev.CgroupID != id {
			t.Errorf("redelivered %d: %+v, want deny seq %d, Replayed", i, ev, want)
		}
	}
	if d, full, err := g2.Counters(); err != nil || d != 2 || full != 0 {
		t.Errorf("counters after reopen: %d denies, %d full, %v; want the 2 unacknowledged", d, full, err)
	}
	if got := runOps(t, agent, no); got[0] != denied {
		t.Fatalf("after reopen: %q", got)
	}
	if ev := waitEvents(t, g2, 1)[0]; ev.Replayed || ev.Seq != evs[2].Seq+1 {
		t.Errorf("next event: %+v, want seq %d, not Replayed", ev, evs[2].Seq+1)
	}
	if g2.Pending() {
		t.Errorf("Pending after every event was taken")
	}
}
