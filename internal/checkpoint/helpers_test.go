package checkpoint

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/audit"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testRec(i int) audit.Record {
	return audit.Record{Time: t0.Add(time.Duration(i) * time.Millisecond), AID: uint64(100 + i%3),
		Type: "agent.state", Object: fmt.Sprintf("/data/%d", i), Result: audit.ResultAllow, PID: 4000 + i}
}

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// env is a state dir with a chain and its checkpoint log.
type env struct {
	dir   string
	key   ed25519.PrivateKey
	chain *audit.Chain
	log   *Log
}

func (e *env) chainDir() string { return filepath.Join(e.dir, "chain") }
func (e *env) treeDir() string  { return filepath.Join(e.dir, "index", "merkle") }

func openEnv(t testing.TB, dir string, key ed25519.PrivateKey, every uint64) *env {
	t.Helper()
	e := &env{dir: dir, key: key}
	var err error
	e.log, err = New(Config{ChainDir: e.chainDir(), TreeDir: e.treeDir(), Key: key, Every: every, Interval: time.Hour})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.chain, err = audit.Open(e.chainDir(), audit.Options{Observer: e.log})
	if err != nil {
		t.Fatalf("audit.Open: %v", err)
	}
	if err := e.log.Start(e.chain); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return e
}

// mkdirChain creates the chain dir before New opens its log file.
func newEnv(t testing.TB, every uint64) *env {
	t.Helper()
	dir := t.TempDir()
	key := newKey(t)
	mustMkdir(t, filepath.Join(dir, "chain"))
	return openEnv(t, dir, key, every)
}

func (e *env) fill(t testing.TB, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if _, err := e.chain.Append(context.Background(), testRec(i)); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
}

// checkpointAt appends records from..size-1 and makes sure a checkpoint
// of exactly size is stored. The background checkpointer signs at
// whatever size it has caught up to when it wakes, so a size tests ask
// for must not be left to its timing: Prove signs one at the head when
// none covers the record yet.
func (e *env) checkpointAt(t testing.TB, from, size int) {
	t.Helper()
	e.fill(t, from, size-from)
	if _, err := e.log.Prove(uint64(size), 0); err != nil {
		t.Fatalf("checkpoint at %d: %v", size, err)
	}
}

func (e *env) close(t testing.TB) {
	t.Helper()
	if err := e.log.Close(); err != nil {
		t.Fatalf("log Close: %v", err)
	}
	if err := e.chain.Close(); err != nil {
		t.Fatalf("chain Close: %v", err)
	}
}

func (e *env) pub() ed25519.PublicKey { return e.key.Public().(ed25519.PublicKey) }

func mustMkdir(t testing.TB, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
}
