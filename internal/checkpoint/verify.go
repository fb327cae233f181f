package checkpoint

import (
	"crypto/ed25519"
	"fmt"
	"path/filepath"

	"github.com/coconut-os/coconut/internal/audit"
)

// Report is what VerifyChain found about the checkpoints.
type Report struct {
	Checkpoints int        // stored checkpoints, all verified
	Latest      Checkpoint // the last of them (zero if none)
	Note        []byte     // its signed note
}

// ReadCheckpoints reads and verifies every stored checkpoint of a chain
// directory: signature by pub, origin, strictly growing sizes.
func ReadCheckpoints(chainDir string, pub ed25519.PublicKey) ([]Checkpoint, [][]byte, error) {
	notes, good, torn, err := ReadLog(filepath.Join(chainDir, LogName))
	if err != nil {
		return nil, nil, err
	}
	if torn {
		return nil, nil, fmt.Errorf("%w: torn entry at offset %d (the daemon cuts it at its next start)", ErrBadLog, good)
	}
	origin := HostOrigin(pub)
	cps := make([]Checkpoint, 0, len(notes))
	for i, n := range notes {
		cp, err := Open(n, origin, pub)
		if err != nil {
			return nil, nil, fmt.Errorf("checkpoint %d: %w", i+1, err)
		}
		if i > 0 && cp.Size <= cps[i-1].Size {
			return nil, nil, fmt.Errorf("%w: checkpoint %d: size %d after %d", ErrBadLog, i+1, cp.Size, cps[i-1].Size)
		}
		cps = append(cps, cp)
	}
	return cps, notes, nil
}

// VerifyChain verifies a chain directory offline in one pass: the BLAKE3
// chain (audit.VerifyFunc) and every stored checkpoint, whose root must be
// the Merkle root of the chain at its size; that also proves each
// checkpoint consistent with the one before. extra, if set, is called with
// the tree root after every record (for anchor checks). A mismatch names
// the first seq after the last checkpoint that still matched.
func VerifyChain(chainDir string, pub ed25519.PublicKey, extra func(seq uint64, root func() [HashSize]byte) error) (audit.VerifyReport, Report, error) {
	cps, notes, err := ReadCheckpoints(chainDir, pub)
	if err != nil {
		return audit.VerifyReport{FirstBad: 1, Reason: err.Error()}, Report{}, err
	}
	rep := Report{Checkpoints: len(cps)}
	if len(cps) > 0 {
		rep.Latest, rep.Note = cps[len(cps)-1], notes[len(notes)-1]
	}
	rng := newRange()
	next, matched := 0, uint64(0)
	vr, err := audit.VerifyFunc(chainDir, func(seq uint64, payload []byte) error {
		if err := rng.append(LeafHash(payload)); err != nil {
			return err
		}
		var root *[HashSize]byte
		rootOf := func() [HashSize]byte {
			if root == nil {
				r := rng.root()
				root = &r
			}
			return *root
		}
		if next < len(cps) && cps[next].Size == seq {
			if rootOf() != cps[next].Root {
				return &audit.SeqError{Seq: matched + 1, Err: fmt.Errorf("%w: records %d..%d do not hash to the root signed in checkpoint %d (size %d)", ErrMismatch, matched+1, seq, next+1, seq)}
			}
			matched = seq
			next++
		}
		if extra != nil {
			return extra(seq, rootOf)
		}
		return nil
	})
	if err != nil {
		return vr, rep, err
	}
	if next < len(cps) {
		err := &audit.SeqError{Seq: vr.Records + 1, Err: fmt.Errorf("%w: checkpoint %d signs %d records, the chain holds %d: rows dropped or truncated", audit.ErrSeqMissing, next+1, cps[next].Size, vr.Records)}
		vr.FirstBad, vr.Reason = err.Seq, err.Error()
		return vr, rep, err
	}
	return vr, rep, nil
}
