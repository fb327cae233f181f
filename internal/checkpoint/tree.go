package checkpoint

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

var hasher = rfc6962.DefaultHasher

var factory = &compact.RangeFactory{Hash: hasher.HashChildren}

// LeafHash is the RFC 6962 leaf hash of a record's canonical bytes.
func LeafHash(record []byte) [HashSize]byte { return [HashSize]byte(hasher.HashLeaf(record)) }

// maxLevels bounds the tree height: 2^63 records.
const maxLevels = 64

// tree is the on-disk Merkle tree cache: file L<level> holds the hashes of
// the complete subtrees of that level in index order. Not safe for
// concurrent use; Log serialises access.
type tree struct {
	dir   string
	files [maxLevels]*os.File
	bufs  [maxLevels]*bufio.Writer
	count [maxLevels]uint64 // nodes in each level file, buffered ones included
	rng   *compact.Range
	err   error // sticky write error
}

func levelName(l uint) string { return fmt.Sprintf("L%02d", l) }

// openTree opens the cache in dir and cuts it to a consistent size: the
// largest n <= limit such that every level holds exactly n>>L nodes.
// limit is the latest signed checkpoint's size: the unsynced nodes after
// it are recomputed from the chain rather than trusted; the caller checks
// the root at limit.
func openTree(dir string, limit uint64) (*tree, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create merkle dir: %w", err)
	}
	t := &tree{dir: dir}
	var size [maxLevels]int64
	for l := uint(0); l < maxLevels; l++ {
		st, err := os.Stat(filepath.Join(dir, levelName(l)))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("stat merkle level: %w", err)
		}
		size[l] = st.Size()
	}
	n := min(uint64(size[0]/HashSize), limit)
	for l := uint(1); l < maxLevels; l++ {
		k := uint64(size[l] / HashSize)
		// k complete nodes allow at most (k+1)<<l - 1 leaves.
		if k < n>>l {
			n = min(n, (k+1)<<l-1)
		}
	}
	for l := uint(0); l < maxLevels; l++ {
		want := n >> l
		if want == 0 && size[l] == 0 {
			continue
		}
		if err := t.openLevel(l, want); err != nil {
			t.close()
			return nil, err
		}
	}
	if err := t.restore(n); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

// openLevel opens level l cut to nodes hashes.
func (t *tree) openLevel(l uint, nodes uint64) error {
	f, err := os.OpenFile(filepath.Join(t.dir, levelName(l)), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open merkle level: %w", err)
	}
	if err := f.Truncate(int64(nodes) * HashSize); err != nil {
		f.Close()
		return fmt.Errorf("cut merkle level: %w", err)
	}
	if _, err := f.Seek(0, 2); err != nil {
		f.Close()
		return fmt.Errorf("seek merkle level: %w", err)
	}
	t.files[l], t.bufs[l], t.count[l] = f, bufio.NewWriterSize(f, 32<<10), nodes
	return nil
}

// restore builds the compact range of the first n leaves from the files.
func (t *tree) restore(n uint64) error {
	var hashes [][]byte
	var start uint64
	for l := maxLevels - 1; l >= 0; l-- {
		if n&(1<<uint(l)) == 0 {
			continue
		}
		h, err := t.node(compact.NewNodeID(uint(l), start>>uint(l)))
		if err != nil {
			return err
		}
		hashes = append(hashes, h)
		start += 1 << uint(l)
	}
	r, err := factory.NewRange(0, n, hashes)
	if err != nil {
		return fmt.Errorf("restore merkle range: %w", err)
	}
	t.rng = r
	return nil
}

// size is the number of leaves.
func (t *tree) size() uint64 { return t.rng.End() }

// append adds one leaf.
func (t *tree) append(leaf [HashSize]byte) error {
	if t.err != nil {
		return t.err
	}
	if err := t.rng.Append(leaf[:], t.visit); err != nil {
		t.err = fmt.Errorf("merkle append: %w", err)
	}
	return t.err
}

// visit stores a completed node at the end of its level file.
func (t *tree) visit(id compact.NodeID, hash []byte) {
	if t.err != nil {
		return
	}
	if id.Level >= maxLevels || id.Index != t.count[id.Level] {
		t.err = fmt.Errorf("merkle node %d/%d out of order (level holds %d)", id.Level, id.Index, t.count[id.Level])
		return
	}
	if t.files[id.Level] == nil {
		if err := t.openLevel(id.Level, 0); err != nil {
			t.err = err
			return
		}
	}
	if _, err := t.bufs[id.Level].Write(hash); err != nil {
		t.err = fmt.Errorf("write merkle level: %w", err)
		return
	}
	t.count[id.Level]++
}

func (t *tree) flush() error {
	if t.err != nil {
		return t.err
	}
	for _, b := range t.bufs {
		if b != nil {
			if err := b.Flush(); err != nil {
				t.err = fmt.Errorf("flush merkle level: %w", err)
				return t.err
			}
		}
	}
	return nil
}

// node reads a stored complete subtree hash (flush first).
func (t *tree) node(id compact.NodeID) ([]byte, error) {
	if id.Level >= maxLevels || t.files[id.Level] == nil || id.Index >= t.count[id.Level] {
		return nil, fmt.Errorf("merkle node %d/%d not stored", id.Level, id.Index)
	}
	h := make([]byte, HashSize)
	if _, err := t.files[id.Level].ReadAt(h, int64(id.Index)*HashSize); err != nil {
		return nil, fmt.Errorf("read merkle node %d/%d: %w", id.Level, id.Index, err)
	}
	return h, nil
}

// root is the root hash of the first n leaves (n <= size).
func (t *tree) root(n uint64) ([HashSize]byte, error) {
	if n == t.size() {
		r, err := t.rng.GetRootHash(nil)
		if err != nil {
			return [HashSize]byte{}, fmt.Errorf("merkle root: %w", err)
		}
		if r == nil {
			r = hasher.EmptyRoot()
		}
		return [HashSize]byte(r), nil
	}
	if n > t.size() {
		return [HashSize]byte{}, fmt.Errorf("merkle root of %d leaves: tree has %d", n, t.size())
	}
	if err := t.flush(); err != nil {
		return [HashSize]byte{}, err
	}
	if n == 0 {
		return [HashSize]byte(hasher.EmptyRoot()), nil
	}
	var hashes [][]byte
	var start uint64
	for l := maxLevels - 1; l >= 0; l-- {
		if n&(1<<uint(l)) == 0 {
			continue
		}
		h, err := t.node(compact.NewNodeID(uint(l), start>>uint(l)))
		if err != nil {
			return [HashSize]byte{}, err
		}
		hashes = append(hashes, h)
		start += 1 << uint(l)
	}
	r, err := factory.NewRange(0, n, hashes)
	if err != nil {
		return [HashSize]byte{}, fmt.Errorf("merkle range: %w", err)
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		return [HashSize]byte{}, fmt.Errorf("merkle root: %w", err)
	}
	return [HashSize]byte(root), nil
}

// fetch reads the hashes of proof nodes and rehashes the ephemeral one.
func (t *tree) fetch(nodes proof.Nodes) ([][]byte, error) {
	if err := t.flush(); err != nil {
		return nil, err
	}
	hs := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		h, err := t.node(id)
		if err != nil {
			return nil, err
		}
		hs[i] = h
	}
	out, err := nodes.Rehash(hs, hasher.HashChildren)
	if err != nil {
		return nil, fmt.Errorf("rehash proof: %w", err)
	}
	return out, nil
}

// inclusion returns the inclusion proof of leaf index in the tree of size n.
func (t *tree) inclusion(index, n uint64) ([][]byte, error) {
	nodes, err := proof.Inclusion(index, n)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	return t.fetch(nodes)
}

// consistency returns the consistency proof between sizes n1 <= n2.
func (t *tree) consistency(n1, n2 uint64) ([][]byte, error) {
	nodes, err := proof.Consistency(n1, n2)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadProof, err)
	}
	return t.fetch(nodes)
}

// reset empties the cache, for a rebuild from the chain.
func (t *tree) reset() error {
	t.close()
	for l := uint(0); l < maxLevels; l++ {
		if err := os.Remove(filepath.Join(t.dir, levelName(l))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove merkle level: %w", err)
		}
	}
	*t = tree{dir: t.dir, rng: factory.NewEmptyRange(0)}
	return nil
}

func (t *tree) close() {
	for l, f := range t.files {
		if f != nil {
			t.bufs[l].Flush()
			f.Close()
		}
	}
}
