package checkpoint

import (
	"sort"
	"sync"

	"github.com/transparency-dev/merkle/compact"

	"github.com/coconut-os/coconut/internal/audit"
)

// merkleSink builds, on a segment's verify goroutine, the compact range of
// that segment's leaves, a snapshot of it at every marked size (a
// checkpoint's or an anchor's), and the hashes of the tree nodes a
// consistency proof asks for.
type merkleSink struct {
	rng   *compact.Range
	marks []uint64 // every marked size, ascending (shared, read-only)
	mi    int
	snaps []merkleSnap
	want  map[compact.NodeID]bool // shared, read-only
	got   map[compact.NodeID][]byte
	spy   *rowSpy // shared: the one row the walk must hand back (nil: none)
}

// rowSpy keeps the canonical bytes of row seq when the walk passes it:
// the audit.delete row a pruned prefix record names is checked after the
// verify pass without a second read.
type rowSpy struct {
	seq     uint64
	mu      sync.Mutex
	payload []byte
}

func (r *rowSpy) saw(seq uint64, payload []byte) {
	if r == nil || seq != r.seq {
		return
	}
	r.mu.Lock()
	r.payload = append([]byte(nil), payload...)
	r.mu.Unlock()
}

func (r *rowSpy) got() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.payload
}

type merkleSnap struct {
	size   uint64
	hashes [][]byte
	head   [audit.HeadSize]byte
}

func newMerkleSink(before uint64, marks []uint64, want map[compact.NodeID]bool) *merkleSink {
	s := &merkleSink{rng: factory.NewEmptyRange(before), marks: marks, want: want}
	s.mi = sort.Search(len(marks), func(i int) bool { return marks[i] > before })
	return s
}

func (s *merkleSink) visit(id compact.NodeID, hash []byte) {
	if s.want[id] {
		if s.got == nil {
			s.got = map[compact.NodeID][]byte{}
		}
		s.got[id] = hash
	}
}

// Record appends the record's leaf; it cannot fail (the range starts
// where the sink's first record is).
func (s *merkleSink) Record(seq uint64, payload []byte, head [audit.HeadSize]byte) {
	s.spy.saw(seq, payload)
	leaf := LeafHash(payload)
	var visit compact.VisitFn
	if len(s.want) > 0 {
		visit = s.visit
	}
	_ = s.rng.Append(leaf[:], visit)
	if s.mi < len(s.marks) && s.marks[s.mi] == seq {
		// Inner hashes are never modified by the range, only the outer slice.
		s.snaps = append(s.snaps, merkleSnap{size: seq, hashes: append([][]byte(nil), s.rng.Hashes()...), head: head})
		s.mi++
	}
}

// merkleJoin is the in-order half: the compact range of every leaf so
// far, extended by each segment's range, and the root at each mark.
type merkleJoin struct {
	g      *compact.Range
	got    map[compact.NodeID][]byte
	want   map[compact.NodeID]bool
	onMark func(size uint64, root [HashSize]byte, rng [][]byte, head [audit.HeadSize]byte) error
}

func (j *merkleJoin) visit(id compact.NodeID, hash []byte) {
	if j.want[id] {
		j.got[id] = hash
	}
}

func (j *merkleJoin) join(sink audit.SegmentSink, _ uint64) error {
	s := sink.(*merkleSink)
	for _, sn := range s.snaps {
		t, err := factory.NewRange(0, j.g.End(), append([][]byte(nil), j.g.Hashes()...))
		if err != nil {
			return err
		}
		part, err := factory.NewRange(s.rng.Begin(), sn.size, sn.hashes)
		if err != nil {
			return err
		}
		if err := t.AppendRange(part, nil); err != nil {
			return err
		}
		root, err := t.GetRootHash(nil)
		if err != nil {
			return err
		}
		if err := j.onMark(sn.size, [HashSize]byte(root), t.Hashes(), sn.head); err != nil {
			return err
		}
	}
	for id, h := range s.got {
		j.got[id] = h
	}
	var visit compact.VisitFn
	if len(j.want) > 0 {
		visit = j.visit
	}
	return j.g.AppendRange(s.rng, visit)
}
