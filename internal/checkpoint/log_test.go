package checkpoint

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestProveAndVerify(t *testing.T) {
	e := newEnv(t, 100)
	e.fill(t, 0, 1000)
	for _, seq := range []uint64{1, 2, 7, 500, 999, 1000} {
		t.Run("seq"+itoa(seq), func(t *testing.T) {
			p, err := e.log.Prove(seq, 0)
			if err != nil {
				t.Fatalf("Prove: %v", err)
			}
			cp, rec, err := VerifyInclusion(p, e.pub())
			if err != nil {
				t.Fatalf("VerifyInclusion: %v", err)
			}
			if rec.Seq != seq || cp.Size < seq {
				t.Fatalf("got record %d in checkpoint of %d", rec.Seq, cp.Size)
			}
		})
	}
	if _, err := e.log.Prove(1001, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Prove past the head: %v, want ErrNotFound", err)
	}
	if _, err := e.log.Prove(0, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Prove(0): %v, want ErrNotFound", err)
	}
}

func TestProofTamper(t *testing.T) {
	e := newEnv(t, 64)
	e.checkpointAt(t, 0, 64)
	e.fill(t, 64, 236)
	good, err := e.log.Prove(77, 64)
	if err != nil {
		t.Fatal(err)
	}
	other := newKey(t)
	tests := []struct {
		name string
		edit func(p *Proof)
		pub  []byte
	}{
		{"flipped hash", func(p *Proof) { p.Hashes[0][3] ^= 1 }, nil},
		{"dropped hash", func(p *Proof) { p.Hashes = p.Hashes[1:] }, nil},
		{"short hash", func(p *Proof) { p.Hashes[0] = p.Hashes[0][:31] }, nil},
		{"altered record", func(p *Proof) { p.Record = p.Record[:len(p.Record)-2] + "x}" }, nil},
		{"other record", func(p *Proof) { p.Record = p.Record[:8] + "8" + p.Record[9:] }, nil},
		{"claimed seq", func(p *Proof) { p.Seq, p.LeafIndex = 78, 77 }, nil},
		{"leaf index", func(p *Proof) { p.LeafIndex = 78 }, nil},
		{"tree size", func(p *Proof) { p.TreeSize++ }, nil},
		{"checkpoint size", func(p *Proof) {
			p.Checkpoint = strings.Replace(p.Checkpoint, "\n"+itoa(p.TreeSize)+"\n", "\n"+itoa(p.TreeSize+1)+"\n", 1)
			p.TreeSize++
		}, nil},
		{"wrong key", func(p *Proof) {}, other.Public().(ed25519PublicKey)},
		{"consistency hash", func(p *Proof) { p.Consistency.Hashes[0][0] ^= 1 }, nil},
		{"consistency old", func(p *Proof) { p.Consistency.Old = p.Checkpoint }, nil},
	}
	if _, _, err := VerifyInclusion(clone(good), e.pub()); err != nil {
		t.Fatalf("untouched proof: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := clone(good)
			tt.edit(p)
			pub := e.pub()
			if tt.pub != nil {
				pub = tt.pub
			}
			if _, _, err := VerifyInclusion(p, pub); err == nil {
				t.Fatal("tampered proof verified")
			}
		})
	}
}

func TestReopenAndRebuild(t *testing.T) {
	e := newEnv(t, 50)
	e.fill(t, 0, 333)
	e.close(t)
	tests := []struct {
		name  string
		spoil func(t *testing.T, treeDir string)
	}{
		{"intact cache", func(*testing.T, string) {}},
		{"cache deleted", func(t *testing.T, d string) { os.RemoveAll(d) }},
		{"cache cut", func(t *testing.T, d string) { os.Truncate(filepath.Join(d, "L00"), 32*10+7) }},
		{"cache garbage", func(t *testing.T, d string) {
			b, _ := os.ReadFile(filepath.Join(d, "L03"))
			for i := range b {
				b[i] ^= 0x55
			}
			os.WriteFile(filepath.Join(d, "L03"), b, 0o600)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spoil(t, e.treeDir())
			e2 := openEnv(t, e.dir, e.key, 50)
			defer e2.close(t)
			e2.fill(t, 1000, 20)
			for _, seq := range []uint64{1, 40, 333, 334, 340} {
				p, err := e2.log.Prove(seq, 0)
				if err != nil {
					t.Fatalf("Prove %d: %v", seq, err)
				}
				if _, _, err := VerifyInclusion(p, e2.pub()); err != nil {
					t.Fatalf("Verify %d: %v", seq, err)
				}
			}
		})
	}
	if _, rep, err := VerifyChain(e.chainDir(), e.pub(), nil); err != nil || rep.Checkpoints == 0 {
		t.Fatalf("VerifyChain: %v (%d checkpoints)", err, rep.Checkpoints)
	}
}

func TestCheckpointEvery(t *testing.T) {
	e := newEnv(t, 10)
	e.fill(t, 0, 95)
	e.close(t)
	cps, _, err := ReadCheckpoints(e.chainDir(), e.pub())
	if err != nil {
		t.Fatal(err)
	}
	// At least one per 10 records (group commit may cover more at once),
	// and the final one at Close covers everything.
	if len(cps) < 2 || cps[len(cps)-1].Size != 95 {
		t.Fatalf("checkpoints %v", cps)
	}
	for i := 1; i < len(cps); i++ {
		if cps[i].Size <= cps[i-1].Size {
			t.Fatalf("sizes not growing: %v", cps)
		}
	}
}
