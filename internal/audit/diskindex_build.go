package audit

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"

	"github.com/zeebo/blake3"
	bolt "go.etcd.io/bbolt"
)

// indexer tails the chain into x until stop. Close does not wait for it
// to catch up (a lag of a burst would delay shutdown): the next Open
// resumes from its last transaction. An error stops it (queries then
// scan); the next Open checks and rebuilds.
func (c *Chain) indexer(x *index) {
	defer close(x.done)
	debug.SetPanicOnFault(true) // this goroutine only: a fault on the mapping panics, see indexRange
	for {
		select {
		case <-x.wakeCh:
		case <-x.stop:
			return // what is committed stays; the next Open catches up from it
		}
		err := c.indexCatchUp(x)
		if x.damaged.Swap(false) && err == nil {
			err = fmt.Errorf("%w: a query found the file damaged", ErrIndex)
		}
		if err != nil {
			if x.rebuilt || !c.rebuildIndex(x) {
				x.setErr(err)
				<-x.stop
				return
			}
			x.wake()
		}
	}
}

// rebuildIndex drops a file the indexer could not extend and starts an
// empty one in its place; queries scan meanwhile (upTo is 0). It waits for
// queries using the old file to end.
func (c *Chain) rebuildIndex(x *index) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.rebuilt = true
	x.db.Close()
	if err := os.Remove(x.path); err != nil {
		x.err = fmt.Errorf("%w: remove for rebuild: %w", ErrIndex, err)
		return false
	}
	y, err := c.openIndexFile(x.path)
	if err != nil {
		x.err = err
		return false
	}
	x.db, x.head, x.next = y.db, Genesis, 0
	x.upTo.Store(0)
	return true
}

// indexFault, if set (by tests), fails the next index transaction.
var indexFault func() error

func (x *index) setErr(err error) {
	x.mu.Lock()
	x.err = err
	x.mu.Unlock()
}

// indexCatchUp indexes the committed rows after x.upTo, indexChunk rows
// per transaction, returning early on stop.
func (c *Chain) indexCatchUp(x *index) error {
	for {
		c.mu.Lock()
		seq := c.seq
		c.mu.Unlock()
		from := x.upTo.Load()
		if from >= seq {
			return nil
		}
		select {
		case <-x.stop:
			return nil
		default:
		}
		if err := c.indexRange(x, from, min(seq, from+indexChunk)); err != nil {
			return err
		}
	}
}

// indexRange indexes seqs after..upTo in one transaction, reading frames
// from the offset after the last indexed one and checking each links to
// the one before (BLAKE3), so the index never describes another chain.
func (c *Chain) indexRange(x *index, after, upTo uint64) (err error) {
	defer func() {
		if p := recover(); p != nil { // bbolt panics, or faults on its mapping, on some damaged pages
			err = fmt.Errorf("%w: %v", ErrIndex, p)
		}
	}()
	if indexFault != nil {
		if err := indexFault(); err != nil {
			return err
		}
	}
	c.mu.Lock()
	segs := append([]segInfo(nil), c.segs...)
	c.mu.Unlock()
	tx, err := x.db.Begin(true)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrIndex, err)
	}
	defer tx.Rollback()
	bo, ba, bt, bc, br, bti := tx.Bucket(bOff), tx.Bucket(bAID), tx.Bucket(bType), tx.Bucket(bCap), tx.Bucket(bRes), tx.Bucket(bTime)
	bo.FillPercent = 1 // seqs only ever grow: pack the pages
	bti.FillPercent = 1
	head, next, seq := x.head, x.next, after
	h := blake3.New()
	// Postings of this transaction: prefix -> seqs, ascending as read.
	var posts [4]map[string][]uint64
	for i := range posts {
		posts[i] = map[string][]uint64{}
	}
	// The offset block being filled: the last one, begun by an earlier
	// transaction when after is not on a block edge.
	offBlk := after / offBlock
	var offs []uint32
	if after%offBlock != 0 {
		v := bo.Get(u64key(offBlk))
		if offs, err = decodeOffs(v, int(after%offBlock), nil); err != nil {
			return err
		}
	}
	flushOffs := func() error {
		if len(offs) == 0 {
			return nil
		}
		if err := bo.Put(u64key(offBlk), encodeOffs(offs)); err != nil {
			return fmt.Errorf("%w: %w", ErrIndex, err)
		}
		return nil
	}
	var tBlock uint64 = ^uint64(0)
	var tMin, tMax int64
	btm := tx.Bucket(bTMax)
	btm.FillPercent = 1
	runMax := int64(-1 << 63)
	if k, _ := btm.Cursor().Last(); len(k) == 16 {
		runMax = int64(binary.BigEndian.Uint64(k) ^ 1<<63)
	}
	flushTime := func() error {
		if tBlock == ^uint64(0) {
			return nil
		}
		v := binary.BigEndian.AppendUint64(nil, uint64(tMin))
		if err := bti.Put(u64key(tBlock), binary.BigEndian.AppendUint64(v, uint64(tMax))); err != nil {
			return err
		}
		runMax = max(runMax, tMax)
		return btm.Put(binary.BigEndian.AppendUint64(u64key(orderedTime(runMax)), tBlock), nil)
	}
	for k := 0; k < len(segs) && seq < upTo; k++ {
		s := segs[k]
		if k+1 < len(segs) && segs[k+1].first <= seq+1 {
			continue // seq+1 is in a later segment
		}
		off := next
		if s.first == seq+1 {
			off = HeaderSize
		}
		f, err := openSegment(c.dir, s)
		if err != nil {
			return err
		}
		rd := &Reader{br: bufio.NewReaderSize(io.NewSectionReader(f, off, s.size-off), 256<<10), off: off}
		for seq < upTo {
			fr, err := rd.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				f.Close()
				return &SeqError{Seq: seq + 1, Err: fmt.Errorf("segment %s: %w", s.name, err)}
			}
			r, err := DecodeRecord(fr.Payload)
			if err != nil || r.Seq != seq+1 || nextHead(h, head, fr.Payload) != fr.Head {
				f.Close()
				return fmt.Errorf("%w: seq %d at %s offset %d does not follow the index", ErrIndexStale, seq+1, s.name, fr.Offset)
			}
			seq, head, next = r.Seq, fr.Head, fr.Offset+int64(len(fr.Payload))+FrameOverhead
			var ab [8]byte
			binary.BigEndian.PutUint64(ab[:], r.AID)
			posts[0][string(ab[:])] = append(posts[0][string(ab[:])], seq)
			for i, v := range [3]string{r.Type, r.Cap, r.Result} {
				if v != "" { // a query never selects by an empty value
					p := string(strPrefix(nil, v))
					posts[1+i][p] = append(posts[1+i][p], seq)
				}
			}
			if b := (seq - 1) / offBlock; b != offBlk {
				if err := flushOffs(); err != nil {
					f.Close()
					return err
				}
				offBlk, offs = b, offs[:0]
			}
			offs = append(offs, uint32(fr.Offset))
			t, b := r.Time.UnixNano(), (seq-1)/timeBlock
			if b != tBlock {
				if err := flushTime(); err != nil {
					f.Close()
					return err
				}
				tBlock, tMin, tMax = b, t, t
				if v := bti.Get(u64key(b)); len(v) == 16 { // a block begun by the last transaction
					tMin, tMax = min(t, int64(binary.BigEndian.Uint64(v))), max(t, int64(binary.BigEndian.Uint64(v[8:])))
				}
			}
			tMin, tMax = min(tMin, t), max(tMax, t)
		}
		f.Close()
	}
	if seq != upTo {
		return fmt.Errorf("%w: indexed up to %d of %d", ErrIndex, seq, upTo)
	}
	if err := flushOffs(); err != nil {
		return err
	}
	// Values go in in key order: each bucket's B+tree is then walked
	// once, left to right, instead of at random.
	for i, b := range [4]*bolt.Bucket{ba, bt, bc, br} {
		prefixes := make([]string, 0, len(posts[i]))
		for p := range posts[i] {
			prefixes = append(prefixes, p)
		}
		slices.Sort(prefixes)
		for _, p := range prefixes {
			if err := putPostings(b, []byte(p), posts[i][p]); err != nil {
				return err
			}
		}
	}
	m := tx.Bucket(bMeta)
	if err := errors.Join(flushTime(), m.Put([]byte("upto"), u64key(seq)), m.Put([]byte("head"), head[:]),
		m.Put([]byte("next"), u64key(uint64(next)))); err != nil {
		return fmt.Errorf("%w: %w", ErrIndex, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%w: commit: %w", ErrIndex, err)
	}
	x.head, x.next = head, next
	x.upTo.Store(seq)
	return nil
}

// orderedTime maps unix ns to a key that sorts as the signed value does.
func orderedTime(t int64) uint64 { return uint64(t) ^ 1<<63 }
