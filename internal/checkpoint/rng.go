package checkpoint

import "github.com/transparency-dev/merkle/compact"

// compactRange is an in-memory tree of leaves 0..n, enough for roots.
type compactRange struct{ r *compact.Range }

func newRange() *compactRange { return &compactRange{r: factory.NewEmptyRange(0)} }

func (c *compactRange) append(leaf [HashSize]byte) error { return c.r.Append(leaf[:], nil) }

func (c *compactRange) root() [HashSize]byte {
	r, err := c.r.GetRootHash(nil)
	if err != nil || r == nil {
		return [HashSize]byte(hasher.EmptyRoot())
	}
	return [HashSize]byte(r)
}
