// Package tiles publishes the audit chain's Merkle tree and a signed
// checkpoint as a static directory in the C2SP tlog-tiles layout, so an
// outside verifier can check inclusion and consistency with off-the-shelf
// clients (transparency-dev/tessera/client) without trusting our code:
//
//	checkpoint                   the signed note (C2SP tlog-checkpoint)
//	tile/<L>/<N>[.p/<W>]         hash tiles, 256 hashes of level 8L each
//	tile/entries/<N>[.p/<W>]     entry bundles: the records' canonical bytes
//
// N is encoded in x-prefixed 3-digit groups (x001/x234/067). The tile maths
// is golang.org/x/mod/sumdb/tlog's (the same tiles, height 8, with the
// C2SP path instead of the Go checksum database's "tile/8/"). The leaves are
// RFC 6962 leaf hashes of the canonical bytes, exactly the tree the host
// signs, so the published checkpoint is the stored one, byte for byte.
package tiles

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/coconut-os/coconut/internal/checkpoint"
)

// height is the C2SP tile height: 2^8 hashes per tile.
const height = 8

// width is the number of hashes (or entries) in a full tile.
const width = 1 << height

// maxEntry is the largest entry an entry bundle can frame (u16 length).
const maxEntry = 1<<16 - 1

// Write writes into dir the tiles and entry bundles of the tree over
// leaves (the canonical bytes of records 1..len(leaves)) and the signed
// checkpoint note, which must sign exactly that tree: size len(leaves) and
// the recomputed root, or nothing is written. Full tiles are immutable, so
// rewriting a directory for a larger checkpoint only adds files, replaces
// partial ones and, last, the checkpoint; every file is written to a
// temporary name and renamed, so a web server never serves half a tile.
func Write(dir string, cp checkpoint.Checkpoint, signed []byte, leaves [][]byte) error {
	n := int64(len(leaves))
	if uint64(n) != cp.Size {
		return fmt.Errorf("tiles: checkpoint signs %d records, %d given", cp.Size, n)
	}
	hashes := make([]tlog.Hash, 0, 2*n)
	hr := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			if x < 0 || x >= int64(len(hashes)) {
				return nil, fmt.Errorf("tiles: hash %d not stored", x)
			}
			out[i] = hashes[x]
		}
		return out, nil
	})
	for i, leaf := range leaves {
		if len(leaf) > maxEntry {
			return fmt.Errorf("tiles: record %d is %d bytes, more than an entry bundle frames (%d)", i+1, len(leaf), maxEntry)
		}
		h, err := tlog.StoredHashes(int64(i), leaf, hr)
		if err != nil {
			return err
		}
		hashes = append(hashes, h...)
	}
	root, err := tlog.TreeHash(n, hr)
	if err != nil {
		return err
	}
	if [checkpoint.HashSize]byte(root) != cp.Root {
		return fmt.Errorf("tiles: %w: the records do not hash to the signed root at size %d", checkpoint.ErrMismatch, n)
	}
	for _, t := range tlog.NewTiles(height, 0, n) {
		data, err := tlog.ReadTileData(t, hr)
		if err != nil {
			return err
		}
		if err := put(dir, TilePath(uint64(t.L), uint64(t.N), uint8(t.W%width)), data); err != nil {
			return err
		}
	}
	for k := int64(0); k*width < n; k++ {
		end := min(n, (k+1)*width)
		var b []byte
		for _, e := range leaves[k*width : end] {
			b = binary.BigEndian.AppendUint16(b, uint16(len(e)))
			b = append(b, e...)
		}
		if err := put(dir, EntriesPath(uint64(k), uint8((end-k*width)%width)), b); err != nil {
			return err
		}
	}
	return put(dir, CheckpointPath, signed)
}

// CheckpointPath is the checkpoint's path in the directory.
const CheckpointPath = "checkpoint"

// TilePath is the path of hash tile N at level L; partial is its width
// when it is a partial tile, 0 for a full one.
func TilePath(level, n uint64, partial uint8) string {
	return "tile/" + fmt.Sprint(level) + "/" + encodeIndex(n) + partialSuffix(partial)
}

// EntriesPath is the path of entry bundle N (partial as for TilePath).
func EntriesPath(n uint64, partial uint8) string {
	return "tile/entries/" + encodeIndex(n) + partialSuffix(partial)
}

func partialSuffix(w uint8) string {
	if w == 0 {
		return ""
	}
	return fmt.Sprintf(".p/%d", w)
}

// encodeIndex is the C2SP tile index: 3-digit groups, all but the last
// prefixed with x.
func encodeIndex(n uint64) string {
	s := fmt.Sprintf("%03d", n%1000)
	for n /= 1000; n > 0; n /= 1000 {
		s = fmt.Sprintf("x%03d/", n%1000) + s
	}
	return s
}

// put writes one file atomically under dir.
func put(dir, rel string, data []byte) error {
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp := p + ".tmp"
	if strings.HasSuffix(rel, "/") {
		return fmt.Errorf("tiles: bad path %q", rel)
	}
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// DirName is the tiles directory's name in the state dir.
const DirName = "tiles"
