package checkpoint

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strconv"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"

	"github.com/coconut-os/coconut/internal/audit"
)

// Report is what VerifyChain found about the checkpoints.
type Report struct {
	Checkpoints int        // stored checkpoints, all verified
	Latest      Checkpoint // the last of them (zero if none)
	Note        []byte     // its signed note
	// Deleted: rows 1..Deleted were deleted (audit.PrunedPrefix); the
	// walk started from the pruned prefix record's head and range, and
	// the checkpoints up to it were checked for signature and order only.
	Deleted uint64
	// At is the head and compact range at VerifyOptions.RangeAt (nil
	// when not asked for); its Root is computed, not signed.
	At *Verified
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

// Marks asks VerifyChain for the tree root at sizes besides the
// checkpoints' (the anchors'): Visit is called, in order, with the root
// at each of Sizes the chain reaches.
type Marks struct {
	Sizes []uint64
	Visit func(size uint64, root [HashSize]byte) error
}

// VerifyChain verifies a chain directory offline: the BLAKE3 chain
// (audit.VerifyParallel, segments on every core) and every stored
// checkpoint, whose root must be the Merkle root of the chain at its size;
// that also proves each checkpoint consistent with the one before. extra,
// if set, gets the root at its sizes (anchor checks). A mismatch names the
// first seq after the last checkpoint that still matched.
func VerifyChain(chainDir string, pub ed25519.PublicKey, extra *Marks) (audit.VerifyReport, Report, error) {
	vr, rep, _, err := VerifyChainWith(chainDir, pub, VerifyOptions{Extra: extra})
	return vr, rep, err
}

// VerifyOptions configures VerifyChainWith.
type VerifyOptions struct {
	Workers int    // segments verified at once (0: every core)
	Extra   *Marks // optional
	// Since, if set, is the checkpoint verified by an earlier run: only
	// the records after it are verified, from its head and compact range,
	// and every later checkpoint must be consistent with it (an RFC 6962
	// consistency proof, checked with transparency-dev/merkle).
	Since *Verified
	// RangeAt, if set, asks for the head and compact range at that size
	// (Report.At): what a deletion of rows 1..RangeAt keeps.
	RangeAt uint64
}

// VerifyChainWith is VerifyChain with options. It also returns the latest
// checkpoint now verified (nil when the chain has none), to pass as Since
// next time.
func VerifyChainWith(chainDir string, pub ed25519.PublicKey, o VerifyOptions) (audit.VerifyReport, Report, *Verified, error) {
	cps, notes, err := ReadCheckpoints(chainDir, pub)
	if err != nil {
		return audit.VerifyReport{FirstBad: 1, Reason: err.Error()}, Report{}, nil, err
	}
	rep := Report{Checkpoints: len(cps)}
	if len(cps) > 0 {
		rep.Latest, rep.Note = cps[len(cps)-1], notes[len(notes)-1]
	}
	since := o.Since
	pruned, err := audit.Pruned(chainDir)
	if err != nil {
		return audit.VerifyReport{FirstBad: 1, Reason: err.Error()}, rep, nil, err
	}
	if pruned != nil {
		// Rows 1..pruned.Last are gone: verify from the recorded head and
		// compact range, as an incremental run does from its record. A
		// range that was tampered with fails every later checkpoint's
		// root; a head, the next segment's link.
		rep.Deleted = pruned.Last
		if since == nil || since.Size < pruned.Last {
			since = prunedVerified(pruned)
		}
	}
	var after uint64
	var afterHead [audit.HeadSize]byte
	g := factory.NewEmptyRange(0)
	if since != nil {
		if g, afterHead, err = since.restore(); err != nil {
			return audit.VerifyReport{FirstBad: 1, Reason: err.Error()}, rep, nil, err
		}
		after = since.Size
		if rep.Latest.Size < after {
			err := fmt.Errorf("%w: the latest checkpoint covers %d records, %d were verified before: checkpoints dropped", ErrBadLog, rep.Latest.Size, after)
			return audit.VerifyReport{FirstBad: rep.Latest.Size + 1, Reason: err.Error()}, rep, nil, err
		}
	}
	// A checkpoint at exactly the size started from signs that root.
	for _, cp := range cps {
		if since != nil && cp.Size == after && !bytes.Equal(cp.Root[:], since.Root) {
			// Rows 1..after (or the record of them) are what differs.
			err := &audit.SeqError{Seq: 1, Err: fmt.Errorf("%w: the checkpoint of size %d signs another root than the recorded compact range of rows 1..%d hashes to: those rows were rewritten, or the record was", ErrMismatch, after, after)}
			return audit.VerifyReport{FirstBad: err.Seq, Reason: err.Error()}, rep, nil, err
		}
	}
	// The sizes at which a root is wanted, and the checkpoints among them.
	var marks []uint64
	if o.RangeAt > after {
		marks = append(marks, o.RangeAt)
	}
	next := sort.Search(len(cps), func(i int) bool { return cps[i].Size > after })
	for _, cp := range cps[next:] {
		marks = append(marks, cp.Size)
	}
	if o.Extra != nil {
		for _, s := range o.Extra.Sizes {
			if s > after {
				marks = append(marks, s)
			}
		}
	}
	sort.Slice(marks, func(i, j int) bool { return marks[i] < marks[j] })
	marks = slices.Compact(marks)
	var extraSizes []uint64
	if o.Extra != nil {
		extraSizes = o.Extra.Sizes
	}

	// Incremental: the nodes of the consistency proof from the verified
	// size to the latest checkpoint that lie after it (the ones before are
	// in the recorded compact range).
	var cons proof.Nodes
	want := map[compact.NodeID]bool{}
	if since != nil && rep.Latest.Size > after {
		if cons, err = proof.Consistency(after, rep.Latest.Size); err != nil {
			return audit.VerifyReport{FirstBad: 1, Reason: err.Error()}, rep, nil, err
		}
		for _, id := range cons.IDs {
			if b, _ := id.Coverage(); b >= after {
				want[id] = true
			}
		}
	}

	matched := after
	var latest *Verified
	var mismatch *audit.SeqError // incremental: reported after the consistency check
	ei := 0
	j := &merkleJoin{g: g, got: map[compact.NodeID][]byte{}, want: want}
	j.onMark = func(size uint64, root [HashSize]byte, rng [][]byte, head [audit.HeadSize]byte) error {
		if size == o.RangeAt {
			rep.At = &Verified{Size: size, Root: append([]byte(nil), root[:]...), Head: hex.EncodeToString(head[:]), Range: append([][]byte(nil), rng...)}
		}
		if next < len(cps) && cps[next].Size == size {
			if root != cps[next].Root {
				err := &audit.SeqError{Seq: matched + 1, Err: fmt.Errorf("%w: records %d..%d do not hash to the root signed in checkpoint %d (size %d)", ErrMismatch, matched+1, size, next+1, size)}
				if since == nil {
					return err
				}
				if mismatch == nil {
					mismatch = err
				}
			} else if mismatch == nil {
				matched = size
			}
			if next == len(cps)-1 {
				latest = &Verified{Size: size, Root: root[:], Head: hex.EncodeToString(head[:]), Range: rng}
			}
			next++
		}
		for ; ei < len(extraSizes) && extraSizes[ei] <= size; ei++ {
			if extraSizes[ei] == size {
				if err := o.Extra.Visit(size, root); err != nil {
					return err
				}
			}
		}
		return nil
	}
	// The deletion's own row (written before its files went) must be in
	// the chain, naming the rows the pruned record says are gone: without
	// it, someone able to write the state directory could remove rows,
	// write a pruned record computed from them, and verify would pass.
	var spy *rowSpy
	if pruned != nil && pruned.Row <= pruned.Last {
		err := &audit.SeqError{Seq: 1, Err: checkDeleteRow(pruned, nil)}
		return audit.VerifyReport{FirstBad: err.Seq, Reason: err.Error()}, rep, nil, err
	}
	if pruned != nil && pruned.Row > after {
		spy = &rowSpy{seq: pruned.Row}
	}
	vr, err := audit.VerifyParallel(chainDir, audit.ParallelOptions{
		Workers: o.Workers, After: after, AfterHead: afterHead,
		NewSink: func(before uint64) audit.SegmentSink {
			s := newMerkleSink(before, marks, want)
			s.spy = spy
			return s
		},
		Join: j.join,
	})
	if err != nil {
		return vr, rep, nil, err
	}
	if spy != nil {
		if err := checkDeleteRow(pruned, spy.got()); err != nil {
			se := &audit.SeqError{Seq: pruned.Row, Err: err}
			vr.FirstBad, vr.Reason = se.Seq, se.Error()
			return vr, rep, nil, se
		}
	}
	if since != nil && rep.Latest.Size > after {
		if err := since.consistent(cons, j.got, rep.Latest); err != nil {
			seq := after + 1
			if mismatch != nil {
				seq = mismatch.Seq
				err = fmt.Errorf("%w; %v", err, mismatch.Err)
			}
			se := &audit.SeqError{Seq: seq, Err: err}
			vr.FirstBad, vr.Reason = se.Seq, se.Error()
			return vr, rep, nil, se
		}
	}
	if mismatch != nil {
		vr.FirstBad, vr.Reason = mismatch.Seq, mismatch.Error()
		return vr, rep, nil, mismatch
	}
	if next < len(cps) {
		err := &audit.SeqError{Seq: vr.Records + 1, Err: fmt.Errorf("%w: checkpoint %d signs %d records, the chain holds %d: rows dropped or truncated", audit.ErrSeqMissing, next+1, cps[next].Size, vr.Records)}
		vr.FirstBad, vr.Reason = err.Seq, err.Error()
		return vr, rep, nil, err
	}
	if o.RangeAt > 0 && o.RangeAt == after {
		rep.At = since
	}
	if latest == nil && since != nil {
		latest = since // nothing new signed since
	}
	return vr, rep, latest, nil
}

// prunedVerified is the pruned prefix record as a verify starting point.
// Its root is computed from the range: the checkpoints after it (and one
// at its size) are what check it.
func prunedVerified(p *audit.PrunedPrefix) *Verified {
	v := &Verified{Size: p.Last, Head: p.Head, Range: p.RangeBytes()}
	if rng, err := factory.NewRange(0, p.Last, v.Range); err == nil {
		if root, err := rng.GetRootHash(nil); err == nil {
			v.Root = root
		}
	}
	return v // a range of the wrong shape fails restore with ErrBadLog
}

// checkDeleteRow checks the row a pruned prefix record names: an
// audit.delete row, after the rows it deleted, whose range ends where the
// record says the deleted rows end, by the same user.
func checkDeleteRow(p *audit.PrunedPrefix, payload []byte) error {
	if p.Row <= p.Last {
		return fmt.Errorf("%w: the pruned prefix record names row %d as its audit.delete row, not after the deleted rows 1..%d", ErrMismatch, p.Row, p.Last)
	}
	if payload == nil {
		return fmt.Errorf("%w: the pruned prefix record names row %d as its audit.delete row, and the chain does not reach it", ErrMismatch, p.Row)
	}
	r, err := audit.DecodeRecord(payload)
	if err != nil {
		return fmt.Errorf("%w: row %d: %v", ErrMismatch, p.Row, err)
	}
	if r.Type != audit.TypeAuditDelete || r.Detail["last"] != strconv.FormatUint(p.Last, 10) || r.Detail["by"] != p.By {
		return fmt.Errorf("%w: rows 1..%d are recorded as deleted by row %d, which is a %s row (last %q, by %q), not the audit.delete row of that deletion: rows removed without the chain's record", ErrMismatch, p.Last, p.Row, r.Type, r.Detail["last"], r.Detail["by"])
	}
	return nil
}
