package anchor

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/checkpoint"
)

func rec(i int, result string) audit.Record {
	return audit.Record{Time: time.Date(2026, 3, 1, 12, 0, 0, i, time.UTC), AID: uint64(100 + i%3),
		Type: "agent.state", Object: fmt.Sprintf("/data/%d", i), Result: result, PID: 4000 + i}
}

// buildChain writes n records into stateDir/chain with checkpoints every
// 10 records, each handed to anc. bad (1-based) is written as a deny: the
// forger's edit.
func buildChain(t *testing.T, stateDir string, key ed25519.PrivateKey, anc checkpoint.Anchor, n, bad int) {
	t.Helper()
	cd := filepath.Join(stateDir, "chain")
	if err := os.MkdirAll(cd, 0o700); err != nil {
		t.Fatal(err)
	}
	lg, err := checkpoint.New(checkpoint.Config{ChainDir: cd, TreeDir: filepath.Join(stateDir, "index", "merkle"), Key: key, Every: 10, Interval: time.Hour, Anchor: anc})
	if err != nil {
		t.Fatal(err)
	}
	c, err := audit.Open(cd, audit.Options{Observer: lg})
	if err != nil {
		t.Fatal(err)
	}
	if err := lg.Start(c); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		r := rec(i, audit.ResultAllow)
		if i == bad {
			r.Result = audit.ResultDeny
		}
		if _, err := c.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			// Let the log checkpoint at every 10th record.
			if _, err := lg.Prove(uint64(i), 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := lg.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// rootRewrite is the root attack: remove the chain, its checkpoints and
// the Merkle cache, and recompute all of it consistently with the host
// key, with record 7 changed.
func rootRewrite(t *testing.T, stateDir string, key ed25519.PrivateKey, anc checkpoint.Anchor) {
	t.Helper()
	cd := filepath.Join(stateDir, "chain")
	ents, _ := os.ReadDir(cd)
	for _, e := range ents {
		if e.Name() == JournalName || e.Name() == SealsName {
			continue
		}
		os.Remove(filepath.Join(cd, e.Name()))
	}
	os.RemoveAll(filepath.Join(stateDir, "index"))
	buildChain(t, stateDir, key, anc, 50, 7)
}

func hostKey(t *testing.T) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestRootAttackTPM(t *testing.T) {
	sock := startSWTPM(t)
	tpm := dialSWTPM(t, sock)
	key := hostKey(t)
	pub := key.Public().(ed25519.PublicKey)
	state := t.TempDir()
	cd := filepath.Join(state, "chain")
	open := func() *TPM {
		if err := os.MkdirAll(cd, 0o700); err != nil {
			t.Fatal(err)
		}
		a, err := OpenTPM(TPMConfig{TPM: tpm, ChainDir: cd, MinInterval: time.Nanosecond})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := open()
	buildChain(t, state, key, a, 50, 0)
	a.Close()
	check := func() error {
		ents, _, err := ReadTPM(cd, tpm, 0)
		if err != nil {
			return err
		}
		_, _, err = VerifyChain(cd, pub, NewChecker("TPM anchor", ents))
		return err
	}
	if err := check(); err != nil {
		t.Fatalf("genuine chain: %v", err)
	}
	saved, _ := os.ReadFile(filepath.Join(cd, JournalName))

	t.Run("rewrite keeping the anchor journal", func(t *testing.T) {
		rootRewrite(t, state, key, nil)
		// Every signature and hash checks out without the anchor...
		if _, _, err := checkpoint.VerifyChain(cd, pub, nil); err != nil {
			t.Fatalf("forged chain should be self-consistent: %v", err)
		}
		// ...and the anchor names the first rewritten range.
		err := check()
		var se *audit.SeqError
		if !errors.Is(err, ErrMismatch) || !errors.As(err, &se) || se.Seq != 1 {
			t.Fatalf("verify: %v, want ErrMismatch at seq 1", err)
		}
	})
	t.Run("rewrite and re-anchor in a fresh journal", func(t *testing.T) {
		os.Remove(filepath.Join(cd, JournalName))
		if _, err := OpenTPM(TPMConfig{TPM: tpm, ChainDir: cd}); !errors.Is(err, ErrMismatch) {
			t.Fatalf("OpenTPM on an emptied journal: %v, want ErrMismatch", err)
		}
		// Root forges the journal to match its chain: the TPM disagrees.
		var b []byte
		lg, _, _ := checkpoint.ReadCheckpoints(cd, pub)
		for _, c := range lg {
			b = append(b, Entry{Size: c.Size, Root: c.Root, Time: time.Now()}.record()...)
		}
		os.WriteFile(filepath.Join(cd, JournalName), b, 0o600)
		if err := check(); !errors.Is(err, ErrMismatch) {
			t.Fatalf("verify: %v, want ErrMismatch", err)
		}
	})
	t.Run("rollback to a shorter chain", func(t *testing.T) {
		os.WriteFile(filepath.Join(cd, JournalName), saved[:2*EntrySize], 0o600)
		if err := check(); !errors.Is(err, ErrMismatch) {
			t.Fatalf("verify: %v, want ErrMismatch", err)
		}
	})
}

func TestRootAttackFSS(t *testing.T) {
	key := hostKey(t)
	pub := key.Public().(ed25519.PublicKey)
	state := t.TempDir()
	cd, kd := filepath.Join(state, "chain"), filepath.Join(state, "keys")
	os.MkdirAll(cd, 0o700)
	f, seedHex, err := OpenFSS(kd, cd)
	if err != nil {
		t.Fatal(err)
	}
	if seedHex == "" {
		t.Fatal("first open must return the seed")
	}
	seed, err := ParseSeed(filepath.Join(kd, SeedName))
	if err != nil {
		t.Fatal(err)
	}
	buildChain(t, state, key, f, 50, 0)
	f.Close()
	check := func() error {
		ents, err := VerifySeals(cd, kd, seed)
		if err != nil {
			return err
		}
		_, _, err = VerifyChain(cd, pub, NewChecker("seal", ents))
		return err
	}
	if err := check(); err != nil {
		t.Fatalf("genuine chain: %v", err)
	}
	// Reopen: no new seed, epoch kept.
	f, again, err := OpenFSS(kd, cd)
	if err != nil || again != "" || f.Epoch() != 5 {
		t.Fatalf("reopen: seed %q epoch %d err %v", again, f.Epoch(), err)
	}
	f.Close()
	saved, _ := os.ReadFile(filepath.Join(cd, SealsName))

	t.Run("rewrite keeping the seals", func(t *testing.T) {
		rootRewrite(t, state, key, nil)
		if _, _, err := checkpoint.VerifyChain(cd, pub, nil); err != nil {
			t.Fatalf("forged chain should be self-consistent: %v", err)
		}
		var se *audit.SeqError
		if err := check(); !errors.Is(err, ErrMismatch) || !errors.As(err, &se) || se.Seq != 1 {
			t.Fatalf("verify: %v, want ErrMismatch at seq 1", err)
		}
	})
	t.Run("reseal with the stolen current key", func(t *testing.T) {
		kb, _ := os.ReadFile(filepath.Join(kd, KeyName))
		_, cur, err := DecodeKey(kb)
		if err != nil {
			t.Fatal(err)
		}
		cps, _, _ := checkpoint.ReadCheckpoints(cd, pub)
		var b []byte
		k := cur
		for i, c := range cps {
			b = append(b, Seal{Epoch: uint64(i), Size: c.Size, Root: c.Root, MAC: mac(k, uint64(i), c.Size, c.Root)}.record()...)
			k = evolve(k)
		}
		os.WriteFile(filepath.Join(cd, SealsName), b, 0o600)
		if err := check(); !errors.Is(err, ErrBadSeal) {
			t.Fatalf("verify: %v, want ErrBadSeal", err)
		}
	})
	t.Run("drop trailing seals", func(t *testing.T) {
		os.WriteFile(filepath.Join(cd, SealsName), saved[:2*SealSize], 0o600)
		if err := check(); !errors.Is(err, ErrMismatch) {
			t.Fatalf("verify: %v, want ErrMismatch", err)
		}
		if _, _, err := OpenFSS(kd, cd); !errors.Is(err, ErrMismatch) {
			t.Fatalf("OpenFSS: %v, want ErrMismatch", err)
		}
	})
	t.Run("wrong seed", func(t *testing.T) {
		os.WriteFile(filepath.Join(cd, SealsName), saved, 0o600)
		bad := seed
		bad[0] ^= 1
		if _, err := VerifySeals(cd, kd, bad); !errors.Is(err, ErrBadSeal) {
			t.Fatalf("VerifySeals: %v, want ErrBadSeal", err)
		}
	})
}
