package checkpoint

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"testing"
)

// writeNotes writes a checkpoint log of n checkpoints signed with key
// (sizes 1000, 2000, …) to chainDir, as a daemon checkpointing once a
// second for n seconds leaves it, and returns the last note.
func writeNotes(tb testing.TB, chainDir string, key ed25519.PrivateKey, n int) []byte {
	tb.Helper()
	origin := HostOrigin(key.Public().(ed25519.PublicKey))
	s, err := NewSigner(origin, key)
	if err != nil {
		tb.Fatal(err)
	}
	var b, last []byte
	for i := 1; i <= n; i++ {
		signed, err := Sign(Checkpoint{Origin: origin, Size: uint64(i) * 1000, Root: [HashSize]byte{byte(i), byte(i >> 8), byte(i >> 16)}}, s)
		if err != nil {
			tb.Fatal(err)
		}
		b, last = appendEntry(b, signed), signed
	}
	if err := os.WriteFile(filepath.Join(chainDir, LogName), b, 0o600); err != nil {
		tb.Fatal(err)
	}
	return last
}

// BenchmarkOpenLog: opening the checkpoint log of a daemon that has run
// for a day, checkpointing once a second (86,400 checkpoints); coconutd's
// start waits for it. ns/op is one New. Before the size index
// (checkpoints.idx) every start read and verified all of them: 6.4 s.
//
//	go test -run '^$' -bench OpenLog -benchtime 5x ./internal/checkpoint/
func BenchmarkOpenLog(b *testing.B) {
	dir := b.TempDir()
	chain := filepath.Join(dir, "chain")
	if err := os.MkdirAll(chain, 0o700); err != nil {
		b.Fatal(err)
	}
	key := newKey(b)
	writeNotes(b, chain, key, 86400)
	open := func(b *testing.B) {
		l, err := New(Config{ChainDir: chain, TreeDir: filepath.Join(dir, "merkle"), Key: key})
		if err != nil {
			b.Fatal(err)
		}
		l.Close()
	}
	// index: the size index missing (the first start of this format, or
	// one removed): it is rebuilt from the log, with no signature checked.
	b.Run("index", func(b *testing.B) {
		for range b.N {
			os.Remove(filepath.Join(chain, IndexName))
			open(b)
		}
	})
	// tail: every later start reads the index's last record and the log's
	// latest note only.
	b.Run("tail", func(b *testing.B) {
		open(b)
		b.ResetTimer()
		for range b.N {
			open(b)
		}
	})
}
