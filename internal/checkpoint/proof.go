package checkpoint

import (
	"crypto/ed25519"
	"fmt"

	"github.com/transparency-dev/merkle/proof"

	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/sign"
)

// maxProofHashes bounds a proof: a tree of 2^64 leaves needs at most 64
// hashes for inclusion and about twice that for consistency.
const maxProofHashes = 130

// Proof is an inclusion proof of one record to a signed checkpoint, the
// JSON `coconut audit prove` writes and `coconut audit verify --proof`
// reads. Hashes are base64 in JSON.
type Proof struct {
	Seq        uint64   `json:"seq"`
	Record     string   `json:"record"` // the record's canonical bytes
	LeafIndex  uint64   `json:"leaf_index"`
	TreeSize   uint64   `json:"tree_size"`
	Hashes     [][]byte `json:"hashes"`
	Checkpoint string   `json:"checkpoint"` // the signed note
	// Consistency, when asked for, proves the checkpoint extends an older
	// one the verifier already trusts.
	Consistency *Consistency `json:"consistency,omitempty"`
}

// Consistency proves that Checkpoint (of the enclosing Proof) extends Old.
type Consistency struct {
	Old    string   `json:"old_checkpoint"`
	Hashes [][]byte `json:"hashes"`
}

// HostOrigin is the checkpoint origin of a host public key.
func HostOrigin(pub ed25519.PublicKey) string { return Origin(sign.KeyID(pub)) }

func checkHashes(hs [][]byte) error {
	if len(hs) > maxProofHashes {
		return fmt.Errorf("%w: %d hashes", ErrBadProof, len(hs))
	}
	for i, h := range hs {
		if len(h) != HashSize {
			return fmt.Errorf("%w: hash %d is %d bytes", ErrBadProof, i, len(h))
		}
	}
	return nil
}

// VerifyInclusion checks p offline with only the host's public key: the
// checkpoint's signature and origin, that the record is canonical and has
// the proven seq, and that the Merkle path leads from the record to the
// signed root; and, if present, the consistency proof to the old
// checkpoint. It returns the verified checkpoint and record.
func VerifyInclusion(p *Proof, pub ed25519.PublicKey) (Checkpoint, audit.Record, error) {
	var none audit.Record
	origin := HostOrigin(pub)
	cp, err := Open([]byte(p.Checkpoint), origin, pub)
	if err != nil {
		return Checkpoint{}, none, err
	}
	rec, err := audit.DecodeRecord([]byte(p.Record))
	if err != nil {
		return cp, none, fmt.Errorf("%w: record: %v", ErrBadProof, err)
	}
	switch {
	case p.Seq == 0 || rec.Seq != p.Seq:
		return cp, rec, fmt.Errorf("%w: record has seq %d, proof claims %d", ErrBadProof, rec.Seq, p.Seq)
	case p.LeafIndex != p.Seq-1:
		return cp, rec, fmt.Errorf("%w: leaf index %d for seq %d", ErrBadProof, p.LeafIndex, p.Seq)
	case p.TreeSize != cp.Size:
		return cp, rec, fmt.Errorf("%w: tree size %d, checkpoint signs %d", ErrBadProof, p.TreeSize, cp.Size)
	case p.LeafIndex >= cp.Size:
		return cp, rec, fmt.Errorf("%w: seq %d not covered by checkpoint of size %d", ErrBadProof, p.Seq, cp.Size)
	}
	if err := checkHashes(p.Hashes); err != nil {
		return cp, rec, err
	}
	leaf := LeafHash([]byte(p.Record))
	if err := proof.VerifyInclusion(hasher, p.LeafIndex, cp.Size, leaf[:], p.Hashes, cp.Root[:]); err != nil {
		return cp, rec, fmt.Errorf("%w: seq %d: %v", ErrBadProof, p.Seq, err)
	}
	if p.Consistency != nil {
		old, err := Open([]byte(p.Consistency.Old), origin, pub)
		if err != nil {
			return cp, rec, fmt.Errorf("old checkpoint: %w", err)
		}
		if err := VerifyConsistency(old, cp, p.Consistency.Hashes); err != nil {
			return cp, rec, err
		}
	}
	return cp, rec, nil
}

// VerifyConsistency checks that newer extends older: the first older.Size
// records are unchanged in newer.
func VerifyConsistency(older, newer Checkpoint, hashes [][]byte) error {
	if older.Origin != newer.Origin {
		return fmt.Errorf("%w: origins %q and %q", ErrBadProof, older.Origin, newer.Origin)
	}
	if older.Size > newer.Size {
		return fmt.Errorf("%w: checkpoint size went back from %d to %d", ErrBadProof, older.Size, newer.Size)
	}
	if err := checkHashes(hashes); err != nil {
		return err
	}
	if err := proof.VerifyConsistency(hasher, older.Size, newer.Size, hashes, older.Root[:], newer.Root[:]); err != nil {
		return fmt.Errorf("%w: checkpoint %d is not an extension of %d: %v", ErrBadProof, newer.Size, older.Size, err)
	}
	return nil
}
