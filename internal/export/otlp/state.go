package otlp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/coconut-os/coconut/internal/atomicfile"
	"github.com/coconut-os/coconut/internal/audit"
)

// acked is the state file: the last row the collector acknowledged.
type acked struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

func loadAcked(path string) (acked, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return acked{Hash: genesisHash}, nil
	}
	if err != nil {
		return acked{}, fmt.Errorf("read export state: %w", err)
	}
	var a acked
	if err := json.Unmarshal(b, &a); err != nil {
		return acked{}, fmt.Errorf("%w: %s: %v", ErrState, path, err)
	}
	if a.Seq == 0 {
		a.Hash = genesisHash
	}
	return a, nil
}

func saveAcked(path string, a acked) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create export state dir: %w", err)
	}
	b, _ := json.Marshal(a)
	return atomicfile.Write(path, append(b, '\n'), 0o600)
}

// checkAcked makes sure a names a row of this chain, so a state file left
// from another chain never skips rows of this one.
func checkAcked(c Chain, a acked, path string) error {
	if a.Seq == 0 {
		return nil
	}
	head, _ := c.Head()
	if a.Seq > head {
		return fmt.Errorf("%w: %s names seq %d, the chain ends at %d (remove the file to export from the start)", ErrState, path, a.Seq, head)
	}
	rs, err := c.Query(audit.Query{AfterSeq: a.Seq - 1, Limit: 1})
	if err != nil {
		return fmt.Errorf("read row %d: %w", a.Seq, err)
	}
	if len(rs) != 1 || rs[0].Seq != a.Seq || rs[0].Hash != a.Hash {
		got := ""
		if len(rs) == 1 {
			got = rs[0].Hash
		}
		return fmt.Errorf("%w: %s names seq %d hash %s, the chain's row has %q (remove the file to export from the start)", ErrState, path, a.Seq, a.Hash, got)
	}
	return nil
}

// ReadState returns the last acknowledged seq and its hash as saved in a
// state file (0 and the genesis hash before the first acknowledgement), so
// doctor and tests read what a restart would resume from.
func ReadState(path string) (seq uint64, hash string, err error) {
	a, err := loadAcked(path)
	return a.Seq, a.Hash, err
}
