package inferkey

import (
	"slices"
	"testing"
	"time"
)

func TestKeys(t *testing.T) {
	var k Keys
	k.Index("", 1) // no broker: nothing indexed
	if _, ok := k.AID(""); ok {
		t.Fatal("empty hash indexed")
	}
	k.Index("h3", 3)
	if aid, ok := k.AID("h3"); !ok || aid != 3 {
		t.Fatalf("AID(h3) = %d, %v", aid, ok)
	}
	var told []uint64
	k.OnEnd(func(aid uint64) { told = append(told, aid) })
	k.Ended("h3", 3)
	if _, ok := k.AID("h3"); ok || !slices.Equal(told, []uint64{3}) {
		t.Fatalf("ended key still valid, or broker told %v", told)
	}
}

func TestSpentPacing(t *testing.T) {
	var k Keys
	flushed := make(chan uint64, 4)
	flush := func(aid uint64) { flushed <- aid }
	now := time.Now()
	if !k.Spent(5, now, flush) {
		t.Fatal("first count not due")
	}
	if k.Spent(5, now.Add(time.Millisecond), flush) || k.Spent(5, now.Add(2*time.Millisecond), flush) {
		t.Fatal("count due again within SaveEvery")
	}
	if got := k.TakeAllDirty(); !slices.Equal(got, []uint64{5}) {
		t.Fatalf("dirty %v", got)
	}
	if k.TakeDirty(5) {
		t.Fatal("still dirty after TakeAllDirty")
	}
	select { // one timer for the two unsaved counts
	case aid := <-flushed:
		if aid != 5 {
			t.Fatalf("flushed %d", aid)
		}
	case <-time.After(5 * SaveEvery):
		t.Fatal("no flush within SaveEvery")
	}
	select {
	case aid := <-flushed:
		t.Fatalf("second flush of %d", aid)
	case <-time.After(SaveEvery / 2):
	}
	if !k.Spent(5, now.Add(SaveEvery), flush) {
		t.Fatal("not due after SaveEvery")
	}
}
