package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/zeebo/blake3"
	"golang.org/x/sys/unix"
)

// DefaultSegmentBytes is the size at which a segment is rotated by default.
const DefaultSegmentBytes = 64 << 20

// lockName is the file Open flocks so two writers never share a chain.
const lockName = "LOCK"

// Options tune Open. The zero value is the default.
type Options struct {
	// SegmentBytes is the size after which appends go to a new segment
	// (default 64 MiB). A segment always holds at least one record.
	SegmentBytes int64
	// VerifyAll makes Open check every segment, not only the last one.
	VerifyAll bool
	// Observer, if set, is told after every commit (see Observer).
	Observer Observer
	// IndexDir, if set, holds the on-disk query index (STATE/index/aid,
	// see diskindex.go): queries by AID, type, capability, result and time
	// read only candidate records. It is caught up in the background after
	// Open and rebuilt when damaged. Empty: queries scan.
	IndexDir string
	// CompressSealed makes the chain compress every sealed segment in the
	// background (zstd, see segfile.go and archive.go): at Open and after
	// every rotation. Reads, queries, proofs and Verify work on either form.
	CompressSealed bool
	// OnCompressError, if set, is told when a compression pass fails; the
	// segment stays plain and the next pass tries again.
	OnCompressError func(error)
}

// Chain is an open audit chain. Its methods are safe for concurrent use.
type Chain struct {
	dir  string
	opts Options
	lock *os.File

	closeMu sync.RWMutex // held for reading while sending to reqs
	closed  bool
	reqs    chan *request
	done    chan struct{} // closed when the writer exits

	// Owned by the writer goroutine: the state of what is written, which
	// runs ahead of what is fsynced.
	active     *os.File
	activeSize int64
	wseq       uint64
	whead      [HeadSize]byte
	hasher     *blake3.Hasher
	syncq      chan *pending  // framed batches, to the syncer (unbuffered)
	inflight   sync.WaitGroup // batches sent to syncq and not yet answered
	free       chan []byte    // batch buffers to reuse

	// subMu orders "publish new records" against "register a follower", so
	// a follower sees every record exactly once (see Follow).
	subMu      sync.Mutex
	subs       map[*subscriber]struct{}
	subsClosed bool

	mu     sync.Mutex // guards the fields below
	seq    uint64
	head   [HeadSize]byte
	segs   []segInfo
	broken error
	pruned *PrunedPrefix // the deleted prefix (delete.go); nil: none

	idx *index // nil without Options.IndexDir

	health health // Err's reserve (health.go)

	compKick chan struct{} // nil without Options.CompressSealed
	compDone chan struct{}
}

// Open opens (creating it 0700 if missing) the chain in dir, checks the last
// segment (every segment with VerifyAll), cuts a torn tail left by a crash
// and records the cut as a chain.truncated record. A bad record anywhere
// else makes Open fail with a *SeqError naming it.
func Open(dir string, opts Options) (*Chain, error) {
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create chain dir: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	c := &Chain{
		dir: dir, opts: opts, lock: lock, hasher: blake3.New(),
		reqs: make(chan *request, 1024), done: make(chan struct{}),
		syncq: make(chan *pending), free: make(chan []byte, 4),
		subs: map[*subscriber]struct{}{}, head: Genesis, whead: Genesis,
	}
	cut, err := c.load()
	if err != nil {
		lock.Close()
		return nil, err
	}
	if opts.IndexDir != "" {
		if c.idx, err = c.openIndex(opts.IndexDir); err != nil {
			c.active.Close()
			lock.Close()
			return nil, fmt.Errorf("query index: %w", err)
		}
	}
	go c.writer()
	if opts.CompressSealed {
		c.compKick, c.compDone = make(chan struct{}, 1), make(chan struct{})
		go c.compressor()
		c.kickCompressor()
	}
	if cut != nil {
		if _, err := c.Append(context.Background(), *cut); err != nil {
			c.Close()
			return nil, fmt.Errorf("record truncation: %w", err)
		}
	}
	return c, nil
}

func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open chain lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, fmt.Errorf("lock chain: %w", err)
	}
	return f, nil
}

// load checks the segments, cuts a torn tail of the last one and opens it
// for appending. It returns the chain.truncated record to append, if any.
func (c *Chain) load() (*Record, error) {
	segs, m, err := listChain(c.dir)
	if err != nil {
		return nil, err
	}
	c.pruned = m.Pruned
	if len(segs) == 0 {
		if m.Pruned != nil {
			return nil, fmt.Errorf("%w: rows 1..%d were deleted and no segment follows them", ErrBadArchive, m.Pruned.Last)
		}
		return nil, nil
	}
	l := linker{}
	l.seq, l.head = prunedStart(m)
	last := len(segs) - 1
	var res segCheck
	for i, s := range segs {
		if i < last && !c.opts.VerifyAll {
			continue
		}
		res, err = checkSegment(c.dir, s, &l, !c.opts.VerifyAll)
		if err != nil {
			return nil, err
		}
		if res.torn && i < last {
			return nil, &SeqError{Seq: l.seq + 1, Err: fmt.Errorf("segment %s: %w at offset %d", s.name, ErrTornTail, res.good)}
		}
	}
	var cut *Record
	tail := segs[last]
	if tail.arch != nil {
		return nil, fmt.Errorf("%w: the last segment %s is compressed (%s lists it): no plain segment to append to", ErrBadArchive, tail.name, ArchiveName)
	}
	path := filepath.Join(c.dir, tail.name)
	if res.torn {
		if err := truncate(path, res.good); err != nil {
			return nil, err
		}
		r := ChainTruncated(tail.name, res.good, res.size-res.good)
		cut = &r
	}
	f, err := openAppend(path)
	if err != nil {
		return nil, err
	}
	segs[last].size = res.good
	c.active, c.activeSize = f, res.good
	c.seq, c.head, c.segs = l.seq, l.head, segs
	c.wseq, c.whead = l.seq, l.head
	return cut, nil
}

func truncate(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open torn segment: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("cut torn tail: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync cut segment: %w", err)
	}
	return nil
}

// Head returns the last committed seq and the hex chain head after it:
// (0, hex of Genesis) for an empty chain.
func (c *Chain) Head() (seq uint64, hash string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seq, hexHead(c.head)
}

// Dir returns the chain directory.
func (c *Chain) Dir() string { return c.dir }

// Close waits for pending appends to be committed, ends every Follow, and
// closes the chain. Later appends fail with ErrClosed.
func (c *Chain) Close() error {
	c.closeMu.Lock()
	if c.closed {
		c.closeMu.Unlock()
		return nil
	}
	c.closed = true
	close(c.reqs)
	c.closeMu.Unlock()
	<-c.done

	c.subMu.Lock()
	for s := range c.subs {
		close(s.ch)
		delete(c.subs, s)
	}
	c.subsClosed = true
	c.subMu.Unlock()

	if c.compKick != nil {
		close(c.compKick)
		<-c.compDone
	}
	var errs []error
	errs = append(errs, c.closeIndex())
	if c.active != nil {
		errs = append(errs, c.active.Close())
	}
	errs = append(errs, c.lock.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close chain: %w", err)
	}
	return nil
}
