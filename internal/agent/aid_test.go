package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coconut-os/coconut/internal/audit"
)

func TestAllocator(t *testing.T) {
	dir := t.TempDir()
	a, err := openAllocator(dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for want := uint64(1); want <= aidBlock+2; want++ {
		if got, err := a.Next(); err != nil || got != want {
			t.Fatalf("Next = %d, %v; want %d", got, err, want)
		}
	}
	// A restart continues above everything reserved, never below.
	b, err := openAllocator(dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Next(); got != 2*aidBlock+1 {
		t.Fatalf("after restart Next = %d, want %d", got, 2*aidBlock+1)
	}
	// A witness ahead of aid.hw (the file restored from an old backup):
	// go past it by a block.
	c, err := openAllocator(dir, 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Next(); got != 1001+aidBlock {
		t.Fatalf("witness 1000: Next = %d, want %d", got, 1001+aidBlock)
	}
	os.WriteFile(filepath.Join(dir, "aid.hw"), []byte("banana\n"), 0o644)
	if _, err := openAllocator(dir, 0, nil); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("corrupt aid.hw: %v", err)
	}
}

// TestHighestSpawnedAID: the chain's last spawn row is found however far
// back it is (windows doubling past 4096 rows), and ahead of the registry
// (pruned agents) and of a lost aid.hw the next AID is above it.
func TestHighestSpawnedAID(t *testing.T) {
	chain, err := audit.Open(t.TempDir(), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()
	if got, err := highestSpawnedAID(chain); err != nil || got != 0 {
		t.Fatalf("empty chain: %d, %v", got, err)
	}
	var batch []audit.Record
	for aid := uint64(1); aid <= 40; aid++ {
		batch = append(batch, audit.AgentSpawn(aid, "/bin/true", nil))
	}
	// 20,000 rows of old agents after the last spawn: the first windows
	// (4096, 8192, 16384) hold no spawn row.
	for i := range 20000 {
		batch = append(batch, audit.CapUse(uint64(1+i%5), "fs.read", "/data/x", 1, uint64(i), nil))
	}
	appendAll(t, chain, batch)
	if got, err := highestSpawnedAID(chain); err != nil || got != 40 {
		t.Fatalf("highest spawned AID = %d, %v; want 40", got, err)
	}
	// And more than one page of spawns in the last window.
	batch = batch[:0]
	for aid := uint64(41); aid <= 41+audit.MaxLimit+7; aid++ {
		batch = append(batch, audit.AgentSpawn(aid, "/bin/true", nil))
	}
	appendAll(t, chain, batch)
	want := uint64(41 + audit.MaxLimit + 7)
	if got, err := highestSpawnedAID(chain); err != nil || got != want {
		t.Fatalf("highest spawned AID = %d, %v; want %d", got, err, want)
	}
	// aid.hw gone: the chain is asked, and the next AID is above it.
	dir := t.TempDir()
	a, err := openAllocator(dir, 0, func() (uint64, error) { return highestSpawnedAID(chain) })
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := a.Next(); got <= want {
		t.Fatalf("Next = %d: not above the chain's %d", got, want)
	}
	// aid.hw there: the chain is not read at start.
	if _, err := openAllocator(dir, 0, func() (uint64, error) {
		t.Fatal("the chain was read with aid.hw present")
		return 0, nil
	}); err != nil {
		t.Fatal(err)
	}
}

func appendAll(t *testing.T, chain *audit.Chain, rs []audit.Record) {
	t.Helper()
	for len(rs) > 0 {
		n := min(len(rs), 4096)
		if _, err := chain.AppendBatch(context.Background(), rs[:n]); err != nil {
			t.Fatal(err)
		}
		rs = rs[n:]
	}
}
