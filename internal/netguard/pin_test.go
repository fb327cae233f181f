package netguard

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func pinDirFor(t *testing.T, root string) string {
	t.Helper()
	dir, err := PinDir(root)
	if err != nil {
		t.Fatalf("PinDir: %v", err)
	}
	t.Cleanup(func() { Uninstall(dir) })
	return dir
}

// TestPinnedSurvivesClose: a pinned guard keeps denying after its process
// let go of it (what a SIGKILLed daemon leaves); a reopened guard reuses
// the maps, delivers the denies made meanwhile, and counts from the
// reopen; Uninstall detaches.
func TestPinnedSurvivesClose(t *testing.T) {
	requireRoot(t)
	s := startServers(t)
	root := testRoot(t)
	pins := pinDirFor(t, root)
	agent, id := mkCgroup(t, filepath.Join(root, "agent"))
	gone, goneID := mkCgroup(t, filepath.Join(root, "gone"))
	p := strconv.Itoa

	g, err := Open(root, pins)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !g.Pinned() {
		t.Fatal("Open: not pinned")
	}
	if err := g.SetPolicy(1, caps(t, "net.connect:127.0.0.1:"+p(s.tcp4))); err != nil {
		t.Fatal(err)
	}
	for _, cg := range []uint64{id, goneID} {
		if err := g.Bind(cg, 1); err != nil {
			t.Fatal(err)
		}
	}
	if got := runOps(t, agent, "connect tcp 127.0.0.1 "+p(s.other4)); got[0] != denied {
		t.Fatalf("before close: %q", got)
	}
	waitEvents(t, g, 1)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}

	// No process holds the guard now: the pins alone keep it attached.
	got := runOps(t, agent, "connect tcp 127.0.0.1 "+p(s.other4), "connect tcp 127.0.0.1 "+p(s.tcp4),
		"connect tcp 127.0.0.1 "+p(s.other4))
	if got[0] != denied || got[1] != "ok" || got[2] != denied {
		t.Fatalf("while no guard is open: %q, want denied, ok, denied", got)
	}
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}

	g2, err := Open(root, pins)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer g2.Close()
	evs := waitEvents(t, g2, 2)
	for _, ev := range evs {
		if ev.CgroupID != id || ev.Port != uint16(s.other4) {
			t.Errorf("event after reopen: %+v", ev)
		}
	}
	if evs[1].Seq != evs[0].Seq+1 || evs[0].Seq != 2 {
		t.Errorf("sequence after reopen: %d, %d; want 2, 3", evs[0].Seq, evs[1].Seq)
	}
	if d, full, err := g2.Counters(); err != nil || d != 2 || full != 0 {
		t.Errorf("counters after reopen: %d denies, %d full, %v; want the 2 made while closed", d, full, err)
	}
	if g2.MaxPolicyID() != 1 {
		t.Errorf("MaxPolicyID = %d, want 1", g2.MaxPolicyID())
	}
	if _, ok := g2.bound[goneID]; ok {
		t.Error("binding of a removed cgroup kept")
	}
	// Rebinding to a new policy drops the previous daemon's one.
	if err := g2.SetPolicy(2, caps(t, "net.connect:127.0.0.1:"+p(s.other4))); err != nil {
		t.Fatal(err)
	}
	if err := g2.Bind(id, 2); err != nil {
		t.Fatal(err)
	}
	if len(g2.stale) != 0 || trieEntries(t, g2) != 1 {
		t.Errorf("after rebinding: stale %v, %d trie entries, want 0 and 1", g2.stale, trieEntries(t, g2))
	}
	got = runOps(t, agent, "connect tcp 127.0.0.1 "+p(s.tcp4), "connect tcp 127.0.0.1 "+p(s.other4))
	if got[0] != denied || got[1] != "ok" {
		t.Fatalf("new policy: %q", got)
	}
	waitEvents(t, g2, 1)

	if err := g2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := Uninstall(pins); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pins); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pin dir after Uninstall: %v", err)
	}
	// The kernel frees an unpinned link from a workqueue (bpf_link_put
	// defers the release), so the detach follows Uninstall by a moment:
	// wait for it, up to 5 s, instead of racing it (it failed under load).
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := runOps(t, agent, "connect tcp 127.0.0.1 "+p(s.tcp4))
		if got[0] == "ok" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after uninstall: %q for 5 s, want the programs detached", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestOpenRefusesHalfPins: a pin directory missing some maps is not
// trusted.
func TestOpenRefusesHalfPins(t *testing.T) {
	requireRoot(t)
	root := testRoot(t)
	pins := pinDirFor(t, root)
	g, err := Open(root, pins)
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	if err := os.Remove(filepath.Join(pins, "rules")); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(root, pins); !errors.Is(err, ErrPin) {
		t.Fatalf("Open with a map missing: %v, want ErrPin", err)
	}
}

// TestAuditConnect: a policy flagged SetAuditConnect gets an event for
// every allowed connect, in its own sequence; denies are unchanged; a
// policy without the flag records denies only.
func TestAuditConnect(t *testing.T) {
	requireRoot(t)
	s := startServers(t)
	root := testRoot(t)
	g := loadGuard(t, root)
	rec, recID := mkCgroup(t, filepath.Join(root, "recorded"))
	quiet, quietID := mkCgroup(t, filepath.Join(root, "quiet"))
	p := strconv.Itoa
	allowed := caps(t, "net.connect:127.0.0.1:"+p(s.tcp4))
	for id, cg := range map[uint32]uint64{1: recID, 2: quietID} {
		if err := g.SetPolicy(id, allowed); err != nil {
			t.Fatal(err)
		}
		if err := g.Bind(cg, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.SetAuditConnect(1, true); err != nil {
		t.Fatal(err)
	}
	if err := g.SetAuditConnect(9, true); !errors.Is(err, ErrUnknownPolicy) {
		t.Errorf("SetAuditConnect(unknown) = %v, want ErrUnknownPolicy", err)
	}
	ok, no := "connect tcp 127.0.0.1 "+p(s.tcp4), "connect tcp 127.0.0.1 "+p(s.other4)
	if got := runOps(t, quiet, ok, ok); got[0] != "ok" || got[1] != "ok" {
		t.Fatalf("quiet: %q", got)
	}
	if got := runOps(t, rec, ok, no, ok); got[0] != "ok" || got[1] != denied || got[2] != "ok" {
		t.Fatalf("recorded: %q", got)
	}
	evs := waitEvents(t, g, 3)
	var uses []uint64
	for _, ev := range evs {
		if ev.CgroupID != recID {
			t.Errorf("event from the quiet policy: %+v", ev)
		}
		if ev.Allowed {
			uses = append(uses, ev.Seq)
			if ev.Port != uint16(s.tcp4) {
				t.Errorf("allowed event: %+v", ev)
			}
		} else if ev.Port != uint16(s.other4) || ev.Seq != 1 {
			t.Errorf("deny event: %+v", ev)
		}
	}
	if len(uses) != 2 || uses[0] != 1 || uses[1] != 2 {
		t.Errorf("allowed uses: seqs %v, want [1 2]", uses)
	}
	if d, _, _ := g.Counters(); d != 1 {
		t.Errorf("kernel denies = %d, want 1 (allowed uses are not denies)", d)
	}
	// Off again: only denies.
	if err := g.SetAuditConnect(1, false); err != nil {
		t.Fatal(err)
	}
	runOps(t, rec, ok, no)
	if ev := waitEvents(t, g, 1)[0]; ev.Allowed {
		t.Errorf("allowed connect recorded after the flag was cleared: %+v", ev)
	}
}

// TestSeveredPinsReplaced: pins that outlived their cgroup subtree (it was
// removed and made again, as an uninstall or a reap of another daemon can
// leave them) hold links the kernel severed; the next Open replaces them
// instead of failing with "link has been severed" on every start, and
// the new links guard the new subtree.
func TestSeveredPinsReplaced(t *testing.T) {
	requireRoot(t)
	s := startServers(t)
	root := testRoot(t)
	pins := pinDirFor(t, root)
	g, err := Open(root, pins)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	// The subtree goes and comes back under the same path: the pinned
	// links now point at a cgroup that no longer exists.
	if err := os.Remove(root); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}

	g2, err := Open(root, pins)
	if err != nil {
		t.Fatalf("Open over severed pins: %v", err)
	}
	defer g2.Close()
	agent, id := mkCgroup(t, filepath.Join(root, "agent"))
	p := strconv.Itoa
	if err := g2.SetPolicy(1, caps(t, "net.connect:127.0.0.1:"+p(s.tcp4))); err != nil {
		t.Fatal(err)
	}
	if err := g2.Bind(id, 1); err != nil {
		t.Fatal(err)
	}
	got := runOps(t, agent, "connect tcp 127.0.0.1 "+p(s.other4), "connect tcp 127.0.0.1 "+p(s.tcp4))
	if got[0] != denied || got[1] != "ok" {
		t.Fatalf("under the replaced links: %q, want denied, ok", got)
	}
	if ev := waitEvents(t, g2, 1)[0]; ev.CgroupID != id || ev.Port != uint16(s.other4) {
		t.Errorf("deny event: %+v", ev)
	}
}
