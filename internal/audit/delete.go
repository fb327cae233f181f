package audit

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Deleting a prefix of the chain (issue 17.3, `coconut audit archive
// --delete`). Only sealed segments whose rows are all covered by a signed
// checkpoint go, oldest first, and only as a whole prefix: what stays
// starts where the deletion ended. What the deleted rows proved stays in
// the manifest (ARCHIVE.json):
//
//   - each deleted segment's entry, marked Deleted (seq range, heads, sum);
//   - the pruned prefix record: the BLAKE3 head at its last seq (the next
//     segment's header must carry it) and the Merkle compact range at that
//     size (every later checkpoint's root must be reachable from it), which
//     is what verify and proofs start from instead of row 1.
//
// Order, so that a crash at any step leaves a chain that verifies and a
// deletion that completes on re-run: the audit.delete row (durable), then
// the manifest with the marks and the record (atomicfile: written, fsynced,
// renamed, directory fsynced), then the files removed and their directories
// fsynced. A crash before the manifest leaves every file and an extra row;
// one after it leaves files no reader lists, which the re-run (tidy)
// removes.

// PrunedPrefix is the record of the deleted prefix: rows 1..Last are gone.
type PrunedPrefix struct {
	Last  uint64    `json:"last"`
	Head  string    `json:"head"`  // BLAKE3 chain head after Last, hex
	Range []string  `json:"range"` // Merkle compact range of leaves [0, Last), RFC 6962 order, hex
	At    time.Time `json:"at"`    // of the latest deletion
	By    string    `json:"by"`
	Row   uint64    `json:"row"` // seq of its audit.delete row
}

// Deletion marks a deleted segment's manifest entry.
type Deletion struct {
	At  time.Time `json:"at"`
	By  string    `json:"by"`
	Row uint64    `json:"row"` // seq of the audit.delete row that named it
}

// HeadBytes is the pruned head decoded (checked by ParseArchive).
func (p *PrunedPrefix) HeadBytes() [HeadSize]byte {
	var h [HeadSize]byte
	b, _ := hex.DecodeString(p.Head)
	copy(h[:], b)
	return h
}

// RangeBytes is the compact range decoded (checked by ParseArchive).
func (p *PrunedPrefix) RangeBytes() [][]byte {
	out := make([][]byte, len(p.Range))
	for i, h := range p.Range {
		out[i], _ = hex.DecodeString(h)
	}
	return out
}

// checkPruned checks the deleted entries are a prefix of the manifest
// starting at seq 1 without gaps, and that the pruned record ends where the
// last of them ends with its head. The range is the checkpoint package's to
// check against the signed roots.
func checkPruned(m ArchiveManifest) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadArchive, fmt.Sprintf(format, args...))
	}
	last := -1
	for i, s := range m.Segments {
		if s.Deleted == nil {
			continue
		}
		switch {
		case last != i-1:
			return bad("segment %d is marked deleted after one that is not: only a prefix is ever deleted", i+1)
		case i == 0 && s.First != 1:
			return bad("the first deleted segment starts at seq %d, not 1", s.First)
		case i > 0 && s.First != m.Segments[i-1].Last+1:
			return bad("deleted segment %d starts at seq %d after %d: a gap", i+1, s.First, m.Segments[i-1].Last)
		}
		last = i
	}
	p := m.Pruned
	switch {
	case p == nil && last < 0:
		return nil
	case p == nil:
		return bad("segments are marked deleted but there is no pruned prefix record")
	case last < 0:
		return bad("a pruned prefix record but no segment marked deleted")
	case p.Last != m.Segments[last].Last || p.Head != m.Segments[last].Head:
		return bad("the pruned prefix record (seq %d, head %s) is not where the deleted segments end (seq %d, head %s)", p.Last, p.Head, m.Segments[last].Last, m.Segments[last].Head)
	case !isHexLen(p.Head, HeadSize):
		return bad("pruned head not hex")
	case len(p.Range) == 0 || len(p.Range) > 64:
		return bad("pruned compact range of %d hashes", len(p.Range))
	}
	for _, h := range p.Range {
		if !isHexLen(h, 32) {
			return bad("pruned compact range hash not hex")
		}
	}
	return nil
}

// prunedStart is where a chain with the manifest m starts: after the
// pruned prefix, or at Genesis.
func prunedStart(m ArchiveManifest) (uint64, [HeadSize]byte) {
	if m.Pruned == nil {
		return 0, Genesis
	}
	return m.Pruned.Last, m.Pruned.HeadBytes()
}

// Pruned returns the chain directory's pruned prefix record (nil: nothing
// was ever deleted).
func Pruned(chainDir string) (*PrunedPrefix, error) {
	m, err := ReadArchive(chainDir)
	if err != nil {
		return nil, err
	}
	return m.Pruned, nil
}

// Pruned returns the chain's pruned prefix (nil: nothing was deleted).
func (c *Chain) Pruned() *PrunedPrefix {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pruned
}

// deletedErr is the error for a read of seq, at or below the pruned
// prefix; nil when seq is kept.
func (c *Chain) deletedErr(seq uint64) error {
	c.mu.Lock()
	p := c.pruned
	c.mu.Unlock()
	if p == nil || seq > p.Last {
		return nil
	}
	return &DeletedError{Seq: seq, At: p.At, By: p.By}
}

// DeleteCandidate is one sealed segment a deletion would remove.
type DeleteCandidate struct {
	First    uint64    `json:"first"`
	Last     uint64    `json:"last"`
	Head     string    `json:"head"` // chain head after Last
	Bytes    int64     `json:"bytes"`
	LastTime time.Time `json:"last_time"`
}

// DeletePlan is what a deletion would remove: a prefix of the chain, the
// rows First..Last.
type DeletePlan struct {
	Before   time.Time         `json:"before"`
	First    uint64            `json:"first"`
	Last     uint64            `json:"last"`
	Rows     uint64            `json:"rows"`
	Bytes    int64             `json:"bytes"` // on disk now
	Segments []DeleteCandidate `json:"segments"`
	// Held back: sealed segments older than Before kept because a row of
	// theirs is not yet covered by a signed checkpoint (maxSeq).
	HeldBack int `json:"held_back"`
}

// PlanDelete lists the prefix of sealed segments of chainDir whose last row
// is older than before and at most maxSeq (the latest signed checkpoint's
// size: a row no checkpoint covers must not vanish). The segment being
// appended to is never one. It only reads.
func PlanDelete(chainDir string, before time.Time, maxSeq uint64) (DeletePlan, error) {
	plan := DeletePlan{Before: before, Segments: []DeleteCandidate{}}
	segs, m, err := listChain(chainDir)
	if err != nil {
		return plan, err
	}
	start, _ := prunedStart(m)
	plan.First = start + 1
	for i, s := range segs {
		if i == len(segs)-1 {
			break // the active segment
		}
		var c DeleteCandidate
		if s.arch != nil {
			c = DeleteCandidate{First: s.arch.First, Last: s.arch.Last, Head: s.arch.Head, Bytes: s.arch.Bytes, LastTime: s.arch.LastTime}
		} else {
			a, err := sealedTail(filepath.Join(chainDir, s.name))
			if err != nil {
				return plan, err
			}
			c = DeleteCandidate{First: a.First, Last: a.Last, Head: a.Head, Bytes: a.RawBytes, LastTime: a.LastTime}
		}
		if !c.LastTime.Before(before) {
			break // later segments hold later rows
		}
		if c.Last > maxSeq {
			plan.HeldBack = countOlder(chainDir, segs[i:len(segs)-1], before)
			break
		}
		plan.Segments = append(plan.Segments, c)
		plan.Last, plan.Bytes = c.Last, plan.Bytes+c.Bytes
	}
	if len(plan.Segments) > 0 {
		plan.Rows = plan.Last - plan.First + 1
	}
	return plan, nil
}

func countOlder(chainDir string, segs []segInfo, before time.Time) int {
	n := 0
	for _, s := range segs {
		t := time.Time{}
		if s.arch != nil {
			t = s.arch.LastTime
		} else if a, err := sealedTail(filepath.Join(chainDir, s.name)); err == nil {
			t = a.LastTime
		}
		if !t.Before(before) {
			break
		}
		n++
	}
	return n
}

// DeleteReport is what DeletePrefix did.
type DeleteReport struct {
	DeletePlan
	Row    uint64        `json:"row"` // seq of the audit.delete row
	Pruned *PrunedPrefix `json:"pruned"`
}

// DeletePrefix deletes the rows plan.First..plan.Last (a PlanDelete of
// this chain's directory, checked again here under the manifest lock)
// given the Merkle compact range of leaves [0, plan.Last) and the head
// verified at plan.Last (the checkpoint package computes both while it
// verifies the chain, see checkpoint.DeletePrefix). by names who asked.
// The chain must be the open writer (it appends the audit.delete row) and
// healthy.
func (c *Chain) DeletePrefix(plan DeletePlan, rng [][]byte, head [HeadSize]byte, by string) (DeleteReport, error) {
	rep := DeleteReport{DeletePlan: plan}
	if len(plan.Segments) == 0 {
		return rep, errors.New("delete: nothing to delete")
	}
	if len(rng) == 0 {
		return rep, errors.New("delete: no compact range")
	}
	if err := c.Err(); err != nil {
		return rep, fmt.Errorf("delete: the chain is not healthy, nothing deleted: %w", err)
	}
	lock, err := lockArchive(c.dir)
	if err != nil {
		return rep, err
	}
	defer lock.Close()
	m, err := ReadArchive(c.dir)
	if err != nil {
		return rep, err
	}
	if start, _ := prunedStart(m); start+1 != plan.First {
		return rep, fmt.Errorf("delete: the chain now starts at seq %d, the plan at %d: plan again", start+1, plan.First)
	}
	if err := tidy(c.dir, m); err != nil {
		return rep, err
	}
	c.mu.Lock()
	segs := append([]segInfo(nil), c.segs...)
	c.mu.Unlock()
	if len(segs) == 0 || segs[len(segs)-1].first <= plan.Last {
		return rep, fmt.Errorf("delete: seq %d is in the segment being appended to", plan.Last)
	}
	// Every segment to go is compressed first, so that its manifest entry
	// (sum, heads, sizes) is what stays on record.
	for _, cand := range plan.Segments {
		if _, _, err := compressOne(c.dir, cand.First); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return rep, err
		}
	}
	if m, err = ReadArchive(c.dir); err != nil {
		return rep, err
	}
	var gone []int
	var bytes int64
	for i := range m.Segments {
		a := &m.Segments[i]
		if a.Deleted != nil || a.Last > plan.Last {
			continue
		}
		gone = append(gone, i)
		bytes += a.Bytes
	}
	if len(gone) == 0 || m.Segments[gone[0]].First != plan.First || m.Segments[gone[len(gone)-1]].Last != plan.Last {
		return rep, fmt.Errorf("delete: the manifest does not hold rows %d..%d as whole segments: plan again", plan.First, plan.Last)
	}
	if last := m.Segments[gone[len(gone)-1]]; last.Head != hexHead(head) {
		return rep, fmt.Errorf("%w: delete: segment %s ends with head %s, verify found %s at seq %d", ErrHashMismatch, last.Name, last.Head, hexHead(head), plan.Last)
	}
	// No row, no deletion.
	row, err := c.Append(context.Background(), AuditDelete(plan.First, plan.Last, len(gone), bytes, by))
	if err != nil {
		return rep, fmt.Errorf("delete: record the deletion (nothing deleted): %w", err)
	}
	at := row.Time
	d := &Deletion{At: at, By: by, Row: row.Seq}
	var paths []string
	for _, i := range gone {
		m.Segments[i].Deleted = d
		paths = append(paths, m.Segments[i].path(c.dir))
	}
	hs := make([]string, len(rng))
	for i, h := range rng {
		hs[i] = hex.EncodeToString(h)
	}
	m.Pruned = &PrunedPrefix{Last: plan.Last, Head: hexHead(head), Range: hs, At: at, By: by, Row: row.Seq}
	if err := deleteFault("record"); err != nil {
		return rep, err
	}
	if err := writeArchive(c.dir, m); err != nil {
		return rep, fmt.Errorf("delete: write the pruned prefix record (nothing deleted): %w", err)
	}
	c.mu.Lock()
	kept := c.segs[:0:0]
	for _, s := range c.segs {
		if s.first > plan.Last {
			kept = append(kept, s)
		}
	}
	c.segs, c.pruned = kept, m.Pruned
	c.mu.Unlock()
	if err := deleteFault("remove"); err != nil {
		return rep, err
	}
	if err := removeDeleted(c.dir, paths); err != nil {
		return rep, err
	}
	rep.Bytes, rep.Row, rep.Pruned = bytes, row.Seq, m.Pruned
	return rep, nil
}

// removeDeleted removes the files of deleted segments and fsyncs their
// directories.
func removeDeleted(chainDir string, paths []string) error {
	dirs := map[string]bool{chainDir: true}
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete: remove %s: %w", p, err)
		}
		dirs[filepath.Dir(p)] = true
	}
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// deleteFault, in tests, stops DeletePrefix before a step ("record",
// "remove") to stand for a crash there.
var deleteFault = func(string) error { return nil }

// FinishDelete completes a deletion a crash interrupted after its record
// was written: the files of segments the manifest marks deleted are
// removed. Nothing else is touched (see tidy).
func FinishDelete(chainDir string) error {
	lock, err := lockArchive(chainDir)
	if err != nil {
		return err
	}
	defer lock.Close()
	m, err := ReadArchive(chainDir)
	if err != nil {
		return err
	}
	// The files of deleted segments in archive directories too: this runs
	// only on the user's delete command (tidy, in the background, removes
	// only what is left in the chain directory).
	var gone []string
	for i := range m.Segments {
		if a := &m.Segments[i]; a.Deleted != nil && a.Dir != "" {
			gone = append(gone, a.path(chainDir))
		}
	}
	if len(gone) > 0 {
		if err := removeDeleted(chainDir, gone); err != nil {
			return err
		}
	}
	return tidy(chainDir, m)
}
