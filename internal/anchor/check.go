package anchor

import (
	"fmt"

	"github.com/coconut-os/coconut/internal/audit"
)

// Checker checks anchored checkpoints against the chain while
// checkpoint.VerifyChain walks it: the Merkle root at each anchored size
// must be the anchored root, and the chain must reach the last anchored
// size. A chain recomputed by root (re-hashed, re-checkpointed with the
// host key) fails here, because the anchor still holds the old roots.
type Checker struct {
	what    string // "TPM anchor" or "seal", for messages
	entries []Entry
	next    int
	matched uint64
}

// NewChecker checks entries (sizes strictly growing, as the decoders
// guarantee).
func NewChecker(what string, entries []Entry) *Checker {
	return &Checker{what: what, entries: entries}
}

// Visit is called with each record's seq and a function giving the tree
// root after it (VerifyChain's extra hook).
func (c *Checker) Visit(seq uint64, root func() [32]byte) error {
	if c.next >= len(c.entries) || c.entries[c.next].Size != seq {
		return nil
	}
	if root() != c.entries[c.next].Root {
		return &audit.SeqError{Seq: c.matched + 1, Err: fmt.Errorf("%w: records %d..%d do not hash to the root of %s %d (size %d): the chain was rewritten", ErrMismatch, c.matched+1, seq, c.what, c.next+1, seq)}
	}
	c.matched = seq
	c.next++
	return nil
}

// skipTo counts the entries up to size as matched: an incremental verify
// trusts what the run it continues checked.
func (c *Checker) skipTo(size uint64) {
	for c.next < len(c.entries) && c.entries[c.next].Size <= size {
		c.matched = c.entries[c.next].Size
		c.next++
	}
}

// Done reports anchored sizes the chain no longer reaches.
func (c *Checker) Done(records uint64) error {
	if c.next < len(c.entries) {
		e := c.entries[c.next]
		return &audit.SeqError{Seq: records + 1, Err: fmt.Errorf("%w: %s %d covers %d records, the chain holds %d: rows dropped or rolled back", ErrMismatch, c.what, c.next+1, e.Size, records)}
	}
	return nil
}

// Anchored returns how many entries matched so far and the size they cover.
func (c *Checker) Anchored() (n int, size uint64) { return c.next, c.matched }
