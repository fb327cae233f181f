package tiles

import (
	"crypto/ed25519"
	"fmt"

	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/checkpoint"
)

// Published is what FromChain wrote.
type Published struct {
	Size   uint64 // the checkpoint's tree size
	Origin string // its origin line
}

// FromChain publishes into dir the stored checkpoint of a chain directory
// signing size records (0: the latest), after checking every stored checkpoint's
// signature with pub and the BLAKE3 chain of the records (audit.VerifyParallel);
// Write checks the records hash to the signed root. It works with the daemon stopped or running (it reads the
// segments, never locks the chain). The records up to that size are held
// in memory while the tiles are computed (the chain's canonical bytes,
// about 300 bytes a row).
func FromChain(chainDir string, pub ed25519.PublicKey, dir string, size uint64) (Published, error) {
	cps, notes, err := checkpoint.ReadCheckpoints(chainDir, pub)
	if err != nil {
		return Published{}, err
	}
	if len(cps) == 0 {
		return Published{}, checkpoint.ErrNoCheckpoint
	}
	at := len(cps) - 1
	if size != 0 {
		for at >= 0 && cps[at].Size != size {
			at--
		}
		if at < 0 {
			return Published{}, fmt.Errorf("%w: no stored checkpoint of size %d", checkpoint.ErrNoCheckpoint, size)
		}
	}
	cp := cps[at]
	if p, err := audit.Pruned(chainDir); err != nil {
		return Published{}, err
	} else if p != nil {
		// Tiles are computed from every leaf; the deleted rows' are gone.
		return Published{}, fmt.Errorf("%w: rows 1..%d were deleted (coconut audit archive --delete): tiles need every row; publish them before deleting", audit.ErrDeleted, p.Last)
	}
	leaves := make([][]byte, 0, cp.Size)
	_, err = audit.VerifyParallel(chainDir, audit.ParallelOptions{
		NewSink: func(uint64) audit.SegmentSink {
			return &collector{upTo: cp.Size}
		},
		Join: func(s audit.SegmentSink, _ uint64) error {
			c := s.(*collector)
			leaves = append(leaves, c.leaves...)
			c.leaves = nil
			return nil
		},
	})
	if err != nil {
		return Published{}, err
	}
	if uint64(len(leaves)) < cp.Size {
		return Published{}, fmt.Errorf("%w: checkpoint signs %d records, the chain holds %d", checkpoint.ErrMismatch, cp.Size, len(leaves))
	}
	if err := Write(dir, cp, notes[at], leaves[:cp.Size]); err != nil {
		return Published{}, err
	}
	return Published{Size: cp.Size, Origin: cp.Origin}, nil
}

// collector keeps a copy of one segment's records up to a size.
type collector struct {
	upTo   uint64
	leaves [][]byte
}

func (c *collector) Record(seq uint64, payload []byte, _ [audit.HeadSize]byte) {
	if seq <= c.upTo {
		c.leaves = append(c.leaves, append([]byte(nil), payload...))
	}
}
