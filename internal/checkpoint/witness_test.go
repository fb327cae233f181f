package checkpoint

import (
	"errors"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/tlog"
)

// TestConsistencyProofForWitness: the proofs a witness is sent, from any
// size it may hold (not only stored checkpoints' sizes) to a stored
// checkpoint, verify with transparency-dev/merkle against roots computed
// by x/mod's tlog from the records (not by the code under test); Sync
// signs the head; CheckpointsAfter counts the lag.
func TestConsistencyProofForWitness(t *testing.T) {
	e := newEnv(t, 1<<20)
	defer e.close(t)
	e.checkpointAt(t, 0, 300)
	e.fill(t, 300, 36)
	latest, err := e.log.Sync()
	if err != nil || latest.Size != 336 {
		t.Fatalf("Sync: %+v %v, want a checkpoint of the 336 records", latest, err)
	}
	if again, _ := e.log.Sync(); again != latest {
		t.Fatalf("a second Sync with nothing new signed %+v", again)
	}
	var hashes []tlog.Hash
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = hashes[x]
		}
		return out, nil
	})
	err = e.chain.Payloads(0, 336, func(seq uint64, p []byte) error {
		hs, err := tlog.StoredHashes(int64(seq-1), p, reader)
		hashes = append(hashes, hs...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, old := range []uint64{1, 2, 7, 255, 256, 299, 300, 335} {
		for _, size := range []uint64{300, 336} {
			if old > size {
				continue
			}
			p, err := e.log.ConsistencyProof(old, size)
			if err != nil {
				t.Fatalf("%d -> %d: %v", old, size, err)
			}
			r1, _ := tlog.TreeHash(int64(old), reader)
			r2, _ := tlog.TreeHash(int64(size), reader)
			if err := proof.VerifyConsistency(hasher, old, size, p, r1[:], r2[:]); err != nil {
				t.Errorf("%d -> %d: %v", old, size, err)
			}
		}
	}
	if _, err := e.log.ConsistencyProof(10, 200); !errors.Is(err, ErrNotFound) {
		t.Errorf("to a size with no checkpoint: %v", err)
	}
	if _, err := e.log.ConsistencyProof(336, 300); !errors.Is(err, ErrBadProof) {
		t.Errorf("backwards: %v", err)
	}
	if n := e.log.CheckpointsAfter(0); n < 2 {
		t.Errorf("CheckpointsAfter(0) = %d, want at least 300 and 336", n)
	}
	if n := e.log.CheckpointsAfter(336); n != 0 {
		t.Errorf("CheckpointsAfter(336) = %d", n)
	}
}
