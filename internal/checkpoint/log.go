package checkpoint

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/coconut-os/coconut/internal/audit"
)

// Defaults for Config.
const (
	DefaultEvery    = 65536
	DefaultInterval = time.Second
)

// Source is the chain the log follows (*audit.Chain).
type Source interface {
	Head() (seq uint64, hash string)
	Payloads(after, upTo uint64, fn func(seq uint64, payload []byte) error) error
}

// Anchor keeps the latest checkpoint where the host's root cannot rewrite
// it unnoticed (internal/anchor). Record may skip checkpoints to bound its
// own write rate; it must return quickly.
type Anchor interface {
	Record(cp Checkpoint) error
}

// Config sets up a Log.
type Config struct {
	ChainDir string             // checkpoints.log is written here
	TreeDir  string             // the rebuildable Merkle cache
	Key      ed25519.PrivateKey // the host key
	Every    uint64             // checkpoint after this many new records (DefaultEvery)
	Interval time.Duration      // or after this long, if the tree grew (DefaultInterval)
	Anchor   Anchor             // optional
	Log      *slog.Logger
}

// Log follows the chain, keeps the Merkle tree and writes signed
// checkpoints. It implements audit.Observer and answers proofs.
type Log struct {
	cfg    Config
	signer note.Signer
	origin string
	pub    ed25519.PublicKey
	notify chan struct{}
	stop   chan struct{}
	done   chan struct{}

	mu      sync.Mutex
	src     Source
	tree    *tree
	file    *logFile
	latest  Checkpoint
	note    []byte // latest signed note
	lastAt  time.Time
	running bool  // run was started (Close must stop it)
	err     error // sticky: the log stopped checkpointing
}

// New opens the checkpoint log and the tree cache and checks them against
// each other. Start it with a Source once the chain is open.
func New(cfg Config) (*Log, error) {
	if cfg.Every == 0 {
		cfg.Every = DefaultEvery
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	pub, ok := cfg.Key.Public().(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: host key is not ed25519", ErrBadNote)
	}
	l := &Log{cfg: cfg, pub: pub, origin: HostOrigin(pub),
		notify: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	var err error
	if l.signer, err = NewSigner(l.origin, cfg.Key); err != nil {
		return nil, err
	}
	file, err := openLogFile(filepath.Join(cfg.ChainDir, LogName))
	if err != nil {
		return nil, err
	}
	l.file = file
	// Only the latest checkpoint is verified here (its root is what the
	// tree is checked against); `coconut audit verify` checks them all.
	if file.last != nil {
		cp, err := Open(file.last, l.origin, pub)
		if err != nil {
			file.close()
			return nil, fmt.Errorf("checkpoint %d of %s: %w", file.n, LogName, err)
		}
		l.latest, l.note = cp, file.last
	}
	if l.tree, err = openTree(cfg.TreeDir, l.latest.Size); err != nil {
		file.close()
		return nil, err
	}
	// A cache that disagrees with the signed root is rebuilt from the chain.
	if l.tree.size() == l.latest.Size && l.latest.Size > 0 {
		if root, err := l.tree.root(l.latest.Size); err != nil || root != l.latest.Root {
			cfg.Log.Warn("merkle cache disagrees with the latest checkpoint; rebuilding it from the chain")
			if err := l.tree.reset(); err != nil {
				file.close()
				return nil, err
			}
		}
	}
	return l, nil
}

// Committed is audit.Observer: it wakes the log without blocking.
func (l *Log) Committed(uint64) {
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

// Start catches the tree up with src (checking it against the latest
// signed checkpoint on the way) and starts following it. A chain shorter
// than the latest checkpoint, or one whose records no longer hash to a
// signed root, is refused: rows were dropped or rewritten.
func (l *Log) Start(src Source) error {
	l.mu.Lock()
	l.src = src
	head, _ := src.Head()
	if head < l.latest.Size {
		l.mu.Unlock()
		return fmt.Errorf("%w: checkpoint signs %d records, the chain holds %d: rows were dropped", ErrMismatch, l.latest.Size, head)
	}
	err := l.catchUp(head)
	if err == nil && l.latest.Size == 0 && l.tree.size() > 0 {
		err = l.checkpointLocked()
	}
	l.lastAt = time.Now()
	if err != nil {
		l.src = nil
		l.mu.Unlock()
		return err
	}
	l.running = true
	l.mu.Unlock()
	go l.run()
	return nil
}

// catchUp appends the chain's records after the tree's size up to head.
func (l *Log) catchUp(head uint64) error {
	if l.tree.size() > head {
		return fmt.Errorf("%w: the Merkle tree holds %d records, the chain %d", ErrMismatch, l.tree.size(), head)
	}
	err := l.src.Payloads(l.tree.size(), head, func(seq uint64, payload []byte) error {
		if err := l.tree.append(LeafHash(payload)); err != nil {
			return err
		}
		if seq == l.latest.Size {
			root, err := l.tree.root(seq)
			if err != nil {
				return err
			}
			if root != l.latest.Root {
				return fmt.Errorf("%w: records 1..%d no longer hash to the signed root", ErrMismatch, seq)
			}
		}
		return nil
	})
	if errors.Is(err, audit.ErrDeleted) {
		// The cache holds every node; rows deleted by the user cannot be
		// re-read to rebuild it, and proofs need nodes inside the pruned
		// prefix that its compact range alone does not give.
		return fmt.Errorf("%w: the Merkle tree cache holds %d rows and needs rows deleted since (%w): it cannot be rebuilt from the chain; restore the cache (STATE/index/merkle) from a backup", ErrMismatch, l.tree.size(), err)
	}
	return err
}

func (l *Log) run() {
	defer close(l.done)
	tick := time.NewTicker(l.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			l.mu.Lock()
			l.step(true)
			l.mu.Unlock()
			return
		case <-l.notify:
		case <-tick.C:
		}
		l.mu.Lock()
		l.step(false)
		l.mu.Unlock()
	}
}

// step catches up and writes a checkpoint when one is due (or final).
func (l *Log) step(final bool) {
	if l.err != nil {
		return
	}
	head, _ := l.src.Head()
	if err := l.catchUp(head); err != nil {
		l.fail(err)
		return
	}
	grown := l.tree.size() - l.latest.Size
	if grown == 0 {
		return
	}
	if final || grown >= l.cfg.Every || time.Since(l.lastAt) >= l.cfg.Interval {
		if err := l.checkpointLocked(); err != nil {
			l.fail(err)
		}
	}
}

func (l *Log) fail(err error) {
	l.err = err
	l.cfg.Log.Error("audit checkpoints stopped", "err", err)
}

// checkpointLocked signs, stores and anchors the tree at its current size,
// after checking that it extends the previous checkpoint.
func (l *Log) checkpointLocked() error {
	n := l.tree.size()
	root, err := l.tree.root(n)
	if err != nil {
		return err
	}
	cp := Checkpoint{Origin: l.origin, Size: n, Root: root}
	if l.latest.Size > 0 {
		hs, err := l.tree.consistency(l.latest.Size, n)
		if err != nil {
			return err
		}
		if err := VerifyConsistency(l.latest, cp, hs); err != nil {
			return fmt.Errorf("refusing to sign: %w", err)
		}
	}
	signed, err := Sign(cp, l.signer)
	if err != nil {
		return err
	}
	if err := l.file.append(signed); err != nil {
		return err
	}
	l.latest, l.note, l.lastAt = cp, signed, time.Now()
	if l.cfg.Anchor != nil {
		if err := l.cfg.Anchor.Record(cp); err != nil {
			l.cfg.Log.Error("anchor checkpoint", "size", n, "err", err)
		}
	}
	return nil
}

// Latest returns the latest checkpoint and its signed note.
func (l *Log) Latest() (Checkpoint, []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.latest, l.note
}

// Prove returns an inclusion proof of record seq to the latest
// checkpoint, signing a new checkpoint first if none covers seq yet. With
// oldSize > 0 it adds a consistency proof from the stored checkpoint of
// that size. Every proof is verified before it is returned.
func (l *Log) Prove(seq, oldSize uint64) (*Proof, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.src == nil {
		return nil, ErrClosed
	}
	if l.err != nil {
		return nil, l.err
	}
	if seq == 0 {
		return nil, fmt.Errorf("%w: seq 0", ErrNotFound)
	}
	if seq > l.latest.Size {
		head, _ := l.src.Head()
		if seq > head {
			return nil, fmt.Errorf("%w: seq %d (the chain holds %d)", ErrNotFound, seq, head)
		}
		if err := l.catchUp(head); err != nil {
			l.fail(err)
			return nil, err
		}
		if err := l.checkpointLocked(); err != nil {
			l.fail(err)
			return nil, err
		}
	}
	var rec []byte
	err := l.src.Payloads(seq-1, seq, func(_ uint64, p []byte) error {
		rec = append([]byte(nil), p...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fmt.Errorf("%w: seq %d", ErrNotFound, seq)
	}
	hs, err := l.tree.inclusion(seq-1, l.latest.Size)
	if err != nil {
		return nil, err
	}
	p := &Proof{Seq: seq, Record: string(rec), LeafIndex: seq - 1, TreeSize: l.latest.Size, Hashes: hs, Checkpoint: string(l.note)}
	if oldSize > 0 {
		old, ok, err := l.file.note(oldSize)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%w: no checkpoint of size %d", ErrNotFound, oldSize)
		}
		chs, err := l.tree.consistency(oldSize, l.latest.Size)
		if err != nil {
			return nil, err
		}
		p.Consistency = &Consistency{Old: string(old), Hashes: chs}
	}
	if _, _, err := VerifyInclusion(p, l.pub); err != nil {
		return nil, fmt.Errorf("merkle cache is damaged (rebuilt at next start): %w", err)
	}
	return p, nil
}

// Close writes a final checkpoint covering every committed record and
// stops. Close the chain after the log's last checkpoint, or before: the
// final checkpoint covers what was committed when Close runs.
func (l *Log) Close() error {
	l.mu.Lock()
	started := l.running
	l.mu.Unlock()
	if started {
		select {
		case <-l.stop:
		default:
			close(l.stop)
		}
		<-l.done
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	if l.tree != nil {
		errs = append(errs, l.tree.flush())
		l.tree.close()
	}
	errs = append(errs, l.file.close())
	if l.err != nil && !errors.Is(l.err, ErrClosed) {
		errs = append(errs, l.err)
	}
	l.err = ErrClosed
	return errors.Join(errs...)
}

// Sync signs a checkpoint of every record the chain holds now, if the
// latest does not cover them yet, and returns the latest checkpoint: a
// daemon that stops hands that one to its witnesses before Close.
func (l *Log) Sync() (Checkpoint, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.src == nil {
		return Checkpoint{}, ErrClosed
	}
	if l.err != nil {
		return Checkpoint{}, l.err
	}
	head, _ := l.src.Head()
	if err := l.catchUp(head); err != nil {
		l.fail(err)
		return Checkpoint{}, err
	}
	if l.tree.size() > l.latest.Size {
		if err := l.checkpointLocked(); err != nil {
			l.fail(err)
			return Checkpoint{}, err
		}
	}
	return l.latest, nil
}

// ConsistencyProof returns the RFC 6962 consistency proof from the tree
// of old records to the stored checkpoint of size size (old <= size), for
// a witness that holds size old (internal/witness). old need not be a
// stored checkpoint's size: a witness may hold any size of this log.
func (l *Log) ConsistencyProof(old, size uint64) ([][]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.src == nil || l.err != nil {
		if l.err != nil {
			return nil, l.err
		}
		return nil, ErrClosed
	}
	if _, ok, err := l.file.note(size); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("%w: no checkpoint of size %d", ErrNotFound, size)
	}
	if old > size {
		return nil, fmt.Errorf("%w: consistency from %d to the smaller %d", ErrBadProof, old, size)
	}
	if old == 0 || old == size {
		return nil, nil
	}
	return l.tree.consistency(old, size)
}

// CheckpointsAfter counts the stored checkpoints larger than size: a
// witness's lag.
func (l *Log) CheckpointsAfter(size uint64) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.file.after(size)
	if err != nil {
		return 0 // a lag figure only; the error shows on the next proof
	}
	return int(n)
}
