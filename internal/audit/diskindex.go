package audit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The query index is a bbolt file, Options.IndexDir/query.db, beside the
// chain: a rebuildable cache whose memory does not grow with the chain
// (bbolt keeps it in a file mapping the kernel can evict, not on the Go
// heap). bbolt was chosen over pebble because the index is written by one
// goroutine in large ordered batches and read by short read transactions:
// a B+tree with one writer fits that, needs no compaction and keeps its
// state in one file that is simple to drop and rebuild.
//
// Buckets (integers big-endian so keys sort by them):
//
//	meta: "v" version, "upto" seqs 1..upto indexed, "head" chain head after
//	      upto, "next" offset just after upto's frame in its segment
//	off:  block (seq-1)/offBlock -> the frame offsets of its seqs, in the
//	      segments holding them: uvarint, then zigzag varint deltas
//	aid:  aid | first seq -> posting block
//	type, cap, res: len u16 | value (at most maxKeyStr bytes) | first seq
//	      -> posting block
//	time: block (seq-1)/timeBlock -> min and max record time (unix ns)
//	tmax: running max of record time up to the block (ordered) | block:
//	      it never decreases, so a seek finds the first block that can
//	      hold a time >= Since even if the clock stepped back
//
// A posting block (format 3) holds the value's seqs from the key's first:
// uvarint deltas, at most maxBlockSeqs seqs in maxBlockBytes, then
// CRC-32C of key and deltas. Format 2 kept a key per posting and per
// offset (302 bytes a row on disk, more than the chain); blocks take a
// byte or two a seq. A transaction extends the last block of each value
// it touches while it has room, and the last offset block, so the live
// indexer's small transactions do not leave a block per commit. A query
// seeks value | AfterSeq+1, steps back one key to the block that may hold
// AfterSeq, and decodes forward. bbolt has no checksum on its pages: the
// block sums, the order of blocks, and the re-read row (its seq, and the
// walked value, which it must hold) are what turn a damaged file into a
// rebuild instead of a wrong answer.
//
// An indexer goroutine tails the chain from the last committed index point
// (woken after every commit, off the write path), so a crash costs at most
// the rows since its last transaction, caught up in the background after
// Open. Queries use the index up to what it holds and scan the rest, so a
// lagging or rebuilding index is slower, never wrong.
const (
	indexFileName = "query.db"
	indexVersion  = 3
	timeBlock     = 256
	maxKeyStr     = 512
	indexChunk    = 1 << 16 // rows per index transaction
)

var (
	bMeta = []byte("meta")
	bOff  = []byte("off")
	bAID  = []byte("aid")
	bType = []byte("type")
	bCap  = []byte("cap")
	bRes  = []byte("res")
	bTime = []byte("time")
	bTMax = []byte("tmax")
)

var allBuckets = [][]byte{bMeta, bOff, bAID, bType, bCap, bRes, bTime, bTMax}

// index is the open on-disk query index.
type index struct {
	db   *bolt.DB
	path string

	upTo atomic.Uint64 // committed in db
	// mu guards err, and db against its swap by a rebuild: queries hold it
	// for reading while they use db.
	mu   sync.RWMutex
	head [HeadSize]byte
	next int64 // owned by the indexer after open
	err  error // the indexer stopped: queries scan
	// rebuilt: the indexer already dropped and rebuilt the file once in
	// this process; a second failure stops it (the chain itself is at
	// fault, and Verify will say so).
	rebuilt bool
	damaged atomic.Bool // a query found the file damaged: rebuild it

	wakeCh chan struct{}
	stop   chan struct{}
	done   chan struct{}
}

// IndexedUpTo returns the last seq the query index has committed (0
// without an index).
func (c *Chain) IndexedUpTo() uint64 {
	if c.idx == nil {
		return 0
	}
	return c.idx.upTo.Load()
}

// WaitIndexed waits until the query index holds every committed row or d
// has passed; it reports whether it caught up.
func (c *Chain) WaitIndexed(d time.Duration) bool {
	end := time.Now().Add(d)
	for {
		c.mu.Lock()
		seq := c.seq
		c.mu.Unlock()
		if c.idx == nil || c.idx.upTo.Load() >= seq {
			return c.idx != nil
		}
		if c.idx.failed() != nil || time.Now().After(end) {
			return false
		}
		c.idx.wake()
		time.Sleep(time.Millisecond)
	}
}

func (x *index) wake() {
	select {
	case x.wakeCh <- struct{}{}:
	default:
	}
}

func (x *index) failed() error {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.err
}

// openIndex opens the index in dir and starts its indexer. A file that
// does not open, has another version, or does not describe a prefix of
// this chain is removed and rebuilt in the background.
func (c *Chain) openIndex(dir string) (*index, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create index dir: %w", err)
	}
	os.Remove(filepath.Join(dir, "aid.idx")) // the former in-memory index's file
	path := filepath.Join(dir, indexFileName)
	x, err := c.openIndexFile(path)
	if err != nil {
		if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			return nil, fmt.Errorf("remove damaged index: %w", rerr)
		}
		if x, err = c.openIndexFile(path); err != nil {
			return nil, err
		}
	}
	x.wakeCh, x.stop, x.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	go c.indexer(x)
	x.wake()
	return x, nil
}

func (c *Chain) openIndexFile(path string) (x *index, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))                                                   // see queryIndexed
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, FreelistType: bolt.FreelistMapType}) // a synced freelist: Open does not scan the file
	if err != nil {
		return nil, fmt.Errorf("%w: open: %w", ErrIndex, err)
	}
	defer func() {
		if p := recover(); p != nil { // bbolt panics on some damaged pages
			err = fmt.Errorf("%w: %v", ErrIndex, p)
		}
		if err != nil {
			db.Close()
			x = nil
		}
	}()
	x = &index{db: db, path: path, head: Genesis}
	pruned := c.Pruned()
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("%w: %w", ErrIndex, err)
			}
		}
		m := tx.Bucket(bMeta)
		v := m.Get([]byte("v"))
		if v == nil {
			if m.Get([]byte("upto")) != nil {
				return fmt.Errorf("%w: no version", ErrIndex)
			}
			if err := m.Put([]byte("v"), u64key(indexVersion)); err != nil {
				return fmt.Errorf("%w: %w", ErrIndex, err)
			}
			return x.startAfterPrune(tx, pruned)
		}
		if len(v) != 8 || binary.BigEndian.Uint64(v) != indexVersion {
			return fmt.Errorf("%w: version %x", ErrIndex, v)
		}
		upTo, head, next, err := readMeta(m)
		if err != nil {
			return err
		}
		if pruned != nil && upTo < pruned.Last {
			// Made before rows it has not taken in were deleted: it can
			// never catch up. Dropped and made anew after the prefix.
			return fmt.Errorf("%w: indexes %d records, rows up to %d were deleted", ErrIndexStale, upTo, pruned.Last)
		}
		x.upTo.Store(upTo)
		x.head, x.next = head, next
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := c.checkIndexPrefix(x); err != nil {
		return nil, err
	}
	return x, nil
}

func readMeta(m *bolt.Bucket) (upTo uint64, head [HeadSize]byte, next int64, err error) {
	head = Genesis
	u, h, n := m.Get([]byte("upto")), m.Get([]byte("head")), m.Get([]byte("next"))
	if u == nil && h == nil && n == nil {
		return 0, head, 0, nil
	}
	if len(u) != 8 || len(h) != HeadSize || len(n) != 8 {
		return 0, head, 0, fmt.Errorf("%w: bad meta", ErrIndex)
	}
	return binary.BigEndian.Uint64(u), [HeadSize]byte(h), int64(binary.BigEndian.Uint64(n)), nil
}

// startAfterPrune starts a new index of a chain whose first rows were
// deleted (coconut audit archive --delete) just after them: the pruned
// head, and the first offset block padded to the deleted rows (offset
// blocks are positional; those rows are never read).
func (x *index) startAfterPrune(tx *bolt.Tx, pruned *PrunedPrefix) error {
	if pruned == nil || pruned.Last == 0 {
		return nil
	}
	head := pruned.HeadBytes()
	m := tx.Bucket(bMeta)
	err := errors.Join(m.Put([]byte("upto"), u64key(pruned.Last)), m.Put([]byte("head"), head[:]), m.Put([]byte("next"), u64key(0)))
	if pad := int(pruned.Last % offBlock); err == nil && pad > 0 {
		err = tx.Bucket(bOff).Put(u64key(pruned.Last/offBlock), encodeOffs(make([]uint32, pad)))
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrIndex, err)
	}
	x.upTo.Store(pruned.Last)
	x.head, x.next = head, 0
	return nil
}

// checkIndexPrefix refuses an index that does not describe a prefix of
// this chain: more rows than the chain, or another head at its last row.
func (c *Chain) checkIndexPrefix(x *index) error {
	upTo := x.upTo.Load()
	if upTo == 0 {
		return nil
	}
	if p := c.Pruned(); p != nil && upTo == p.Last {
		// Started after a deleted prefix: its last row is gone, its head
		// is the pruned record's.
		if x.head != p.HeadBytes() {
			return fmt.Errorf("%w: head at the deleted prefix's end %d differs", ErrIndexStale, upTo)
		}
		return nil
	}
	c.mu.Lock()
	seq := c.seq
	c.mu.Unlock()
	if upTo > seq {
		return fmt.Errorf("%w: indexes %d records, chain has %d", ErrIndexStale, upTo, seq)
	}
	var off uint32
	if err := x.db.View(func(tx *bolt.Tx) error {
		var err error
		off, err = (&offsets{b: tx.Bucket(bOff)}).of(upTo)
		return err
	}); err != nil {
		return err
	}
	fr, err := c.frameAt(upTo, off)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrIndexStale, err)
	}
	if fr.Head != x.head || int64(off)+int64(len(fr.Payload))+FrameOverhead != x.next {
		return fmt.Errorf("%w: head at seq %d differs", ErrIndexStale, upTo)
	}
	return nil
}

// frameAt reads and checks the frame of seq at off.
func (c *Chain) frameAt(seq uint64, off uint32) (Frame, error) {
	s, ok := c.segmentOf(seq)
	if !ok {
		return Frame{}, fmt.Errorf("%w: no segment holds seq %d", ErrIndex, seq)
	}
	f, err := openSegment(c.dir, s)
	if err != nil {
		return Frame{}, err
	}
	defer f.Close()
	fr, _, err := readFrameAt(f, int64(off), nil)
	if err != nil {
		return Frame{}, err
	}
	if got, ok := peekSeq(fr.Payload); !ok || got != seq {
		return Frame{}, fmt.Errorf("%w: offset %d holds seq %d, not %d", ErrIndex, off, got, seq)
	}
	return fr, nil
}

func (c *Chain) segmentOf(seq uint64) (segInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.segs) - 1; i >= 0; i-- {
		if c.segs[i].first <= seq {
			return c.segs[i], true
		}
	}
	return segInfo{}, false
}

// closeIndex stops the indexer after it has taken in what is committed and
// closes the file.
func (c *Chain) closeIndex() error {
	x := c.idx
	if x == nil {
		return nil
	}
	close(x.stop)
	<-x.done
	return x.db.Close()
}

func u64key(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// strPrefix is len u16 | s (cut to maxKeyStr), the prefix of s's blocks:
// a cut value only adds candidates, which the query's full match then
// drops.
func strPrefix(dst []byte, s string) []byte {
	s = cutKeyStr(s)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

func cutKeyStr(s string) string {
	if len(s) > maxKeyStr {
		return s[:maxKeyStr]
	}
	return s
}
