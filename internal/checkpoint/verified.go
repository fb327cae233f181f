package checkpoint

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"

	"github.com/coconut-os/coconut/internal/atomicfile"
	"github.com/coconut-os/coconut/internal/audit"
)

// VerifiedName is the file, in the state directory, where `coconut audit
// verify` records the last signed checkpoint it verified, for the next
// --incremental run.
const VerifiedName = "verified-checkpoint.json"

// Verified is a signed checkpoint a full or incremental verify checked,
// with what the next incremental verify needs to start after it: the BLAKE3
// head at its size and the compact range (the roots of the complete
// subtrees, RFC 6962 order) of the tree at its size. It is the verifier's
// own memory, not evidence: whoever can write it can make the next
// incremental run trust a rewritten prefix, so a verifier that does not
// trust the host keeps it elsewhere (or runs a full verify).
type Verified struct {
	Size  uint64   `json:"size"`
	Root  []byte   `json:"root"`
	Head  string   `json:"head"`
	Range [][]byte `json:"range"`
}

// restore checks the record's own consistency and returns its range and head.
func (v *Verified) restore() (*compact.Range, [audit.HeadSize]byte, error) {
	var head [audit.HeadSize]byte
	hb, err := hex.DecodeString(v.Head)
	if err != nil || len(hb) != audit.HeadSize || v.Size == 0 || len(v.Root) != HashSize {
		return nil, head, fmt.Errorf("%w: verified checkpoint record: bad size, root or head", ErrBadLog)
	}
	copy(head[:], hb)
	for _, h := range v.Range {
		if len(h) != HashSize {
			return nil, head, fmt.Errorf("%w: verified checkpoint record: bad range hash", ErrBadLog)
		}
	}
	rng, err := factory.NewRange(0, v.Size, v.Range)
	if err != nil {
		return nil, head, fmt.Errorf("%w: verified checkpoint record: %v", ErrBadLog, err)
	}
	root, err := rng.GetRootHash(nil)
	if err != nil || !bytes.Equal(root, v.Root) {
		return nil, head, fmt.Errorf("%w: verified checkpoint record: its range does not hash to its root", ErrBadLog)
	}
	// The range is extended in place: give it its own outer slice.
	rng, _ = factory.NewRange(0, v.Size, append([][]byte(nil), v.Range...))
	return rng, head, nil
}

// consistent checks, with transparency-dev/merkle's verifier, the RFC 6962
// consistency proof from v to latest; the proof's nodes before v.Size come
// from v's range, the others (got) from the records just verified.
func (v *Verified) consistent(nodes proof.Nodes, got map[compact.NodeID][]byte, latest Checkpoint) error {
	left := map[compact.NodeID][]byte{}
	for i, id := range compact.RangeNodes(0, v.Size, nil) {
		left[id] = v.Range[i]
	}
	hashes := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		h, ok := left[id]
		if !ok {
			h, ok = got[id]
		}
		if !ok {
			return fmt.Errorf("%w: consistency proof %d -> %d: node %+v not computed", ErrMismatch, v.Size, latest.Size, id)
		}
		hashes[i] = h
	}
	p, err := nodes.Rehash(hashes, hasher.HashChildren)
	if err != nil {
		return err
	}
	if err := proof.VerifyConsistency(hasher, v.Size, latest.Size, p, v.Root, latest.Root[:]); err != nil {
		return fmt.Errorf("%w: the latest checkpoint (size %d) is not consistent with the checkpoint of size %d verified before: the chain was rewritten (%v)", ErrMismatch, latest.Size, v.Size, err)
	}
	return nil
}

// LoadVerified reads the record at path; (nil, nil) when there is none.
func LoadVerified(path string) (*Verified, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read verified checkpoint: %w", err)
	}
	var v Verified
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: verified checkpoint %s: %v", ErrBadLog, path, err)
	}
	if _, _, err := v.restore(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &v, nil
}

// SaveVerified writes the record at path atomically (temporary file,
// fsync, rename).
func SaveVerified(path string, v *Verified) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), 0o600)
}
