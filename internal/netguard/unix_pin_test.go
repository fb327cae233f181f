package netguard

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestUnixPinned: the Unix programs and their rules stay in force while no
// guard is open; a reopened guard drops the previous daemon's Unix entries
// once their policy is unused; pins without unix_rules (an older
// version's) are refused with ErrPin.
func TestUnixPinned(t *testing.T) {
	requireRoot(t)
	root := testRoot(t)
	pins := pinDirFor(t, root)
	agent, id := mkCgroup(t, filepath.Join(root, "agent"))
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	listenUnix(t, a)
	listenUnix(t, b)

	g, err := Open(root, pins)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := g.SetPolicy(1, caps(t, "net.connect:unix:"+a)); err != nil {
		t.Fatal(err)
	}
	if err := g.Bind(id, 1); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if got := runOps(t, agent, "unix connect "+a, "unix connect "+b); got[0] != "ok" || got[1] != denied {
		t.Fatalf("while no guard is open: %q, want ok, %s", got, denied)
	}

	g2, err := Open(root, pins)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer g2.Close()
	if ev := waitEvents(t, g2, 1)[0]; ev.UnixName() != b {
		t.Errorf("event made while closed: %+v, want a deny of %s", ev, b)
	}
	if err := g2.SetPolicy(2, caps(t, "net.connect:unix:"+b)); err != nil {
		t.Fatal(err)
	}
	if err := g2.Bind(id, 2); err != nil {
		t.Fatal(err)
	}
	if n := unixEntries(t, g2); n != 1 || len(g2.staleUnix) != 0 {
		t.Errorf("after rebinding: %d unix entries, stale %v; want 1 and none", n, g2.staleUnix)
	}
	if got := runOps(t, agent, "unix connect "+a, "unix connect "+b); got[0] != denied || got[1] != "ok" {
		t.Fatalf("new policy: %q, want %s, ok", got, denied)
	}
	waitEvents(t, g2, 1)
	g2.Close()

	if err := os.Remove(filepath.Join(pins, "unix_rules")); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(root, pins); !errors.Is(err, ErrPin) {
		t.Fatalf("Open of pins without unix_rules: %v, want ErrPin", err)
	}
}
