package agent

import (
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/enforce"
)

// TestAggregateBoundPerAgent (issue 19.1): however many keys one agent
// has pending, at most one of its aggregate rows is due per
// aggregateEvery, the one pending longest; another agent's keys are not
// held back by it; and nothing is dropped (every count is still pending).
func TestAggregateBoundPerAgent(t *testing.T) {
	var g aggregator
	t0 := time.Unix(1000, 0)
	objects := []string{"/a", "/b", "/c", "/d"}
	// The first deny of each object has its own row (gather says no).
	for _, o := range objects {
		if g.gather(1, nil, enforce.Event{Cap: "fs.read", Object: o, Source: "supervisor"}, t0) {
			t.Fatalf("first deny of %s gathered: it must be a row of its own", o)
		}
	}
	if g.gather(2, nil, enforce.Event{Cap: "fs.read", Object: "/a", Source: "supervisor"}, t0) {
		t.Fatal("agent 2's first deny gathered")
	}
	// Then many denies of each, the objects in order.
	for i := 0; i < 100; i++ {
		for j, o := range objects {
			now := t0.Add(time.Duration(i*len(objects)+j+1) * time.Microsecond)
			if !g.gather(1, nil, enforce.Event{Cap: "fs.read", Object: o, Source: "supervisor", Seq: uint64(i)}, now) {
				t.Fatalf("repeat deny of %s not gathered", o)
			}
		}
		g.gather(2, nil, enforce.Event{Cap: "fs.read", Object: "/a", Source: "supervisor"}, t0.Add(time.Millisecond))
	}
	now := t0.Add(time.Second)
	due := g.due(now, false)
	if len(due) != 2 {
		t.Fatalf("due %v: want one key per agent", due)
	}
	perAgent := map[uint64]aggKey{}
	for _, k := range due {
		perAgent[k.aid] = k
	}
	if perAgent[1].object != "/a" {
		t.Errorf("agent 1's due key %q, want /a (pending longest)", perAgent[1].object)
	}
	// Written: the agent's next row waits aggregateEvery, whatever keys remain.
	for _, k := range due {
		delete(g.pending, k)
		g.agentRow[k.aid] = now
	}
	if d := g.due(now.Add(aggregateEvery/2), false); len(d) != 0 {
		t.Errorf("due again after %v: %v", aggregateEvery/2, d)
	}
	if d := g.due(now.Add(aggregateEvery), false); len(d) != 1 || d[0].object != "/b" {
		t.Errorf("due after %v: %v, want agent 1's /b", aggregateEvery, d)
	}
	// Every count is kept: the three keys left still hold 100 each.
	for _, o := range objects[1:] {
		k := aggKey{aid: 1, source: "supervisor", cap: "fs.read", object: o}
		if a := g.pending[k]; a == nil || a.count != 100 {
			t.Errorf("%s: pending %+v, want 100 denies", o, a)
		}
	}
	if all := g.due(now, true); len(all) != 3 {
		t.Errorf("due(all) %v, want the 3 keys left", all)
	}
}
