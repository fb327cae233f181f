package anchor

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/coconut-os/coconut/internal/checkpoint"
)

// DefaultIndex is the NV index Coconut defines (owner range, TCG
// "owner-defined" 0x01000000-0x013FFFFF).
const DefaultIndex tpm2.TPMHandle = 0x0100C0C0

// DefaultMinInterval bounds NV writes to one per 5 minutes: 288 a day,
// about 105,000 a year (docs/audit-anchoring.md, "Wear").
const DefaultMinInterval = 5 * time.Minute

// TPMConfig sets up a TPM anchor.
type TPMConfig struct {
	TPM         transport.TPM // the TPM; the anchor does not close it
	Index       tpm2.TPMHandle
	ChainDir    string        // anchor.log lives here
	MinInterval time.Duration // at most one NV write per interval (DefaultMinInterval)
	OwnerAuth   []byte        // the owner hierarchy's auth, to define the index (ReadOwnerAuth); nil: empty
	Log         *slog.Logger
	now         func() time.Time
}

// TPM anchors checkpoints in a TPM NV extend index. It implements
// checkpoint.Anchor.
type TPM struct {
	cfg TPMConfig

	mu      sync.Mutex
	j       *journal
	digest  [32]byte
	last    Entry // the last anchored entry (zero Time if none)
	pending *checkpoint.Checkpoint
	timer   *time.Timer
	closed  bool
}

// extendDigest is what an extend index holds after absorbing entries,
// starting from prev.
func extendDigest(prev [32]byte, entries []Entry) [32]byte {
	d := prev
	for _, e := range entries {
		d = sha256.Sum256(append(d[:], e.data()...))
	}
	return d
}

// OpenTPM reconciles anchor.log with the NV index (defining the index on
// first use) and returns the anchor. A journal that does not reproduce the
// index is ErrMismatch: anchored history was rewritten or rolled back, and
// the daemon must not carry on as if nothing happened.
func OpenTPM(cfg TPMConfig) (*TPM, error) {
	if cfg.Index == 0 {
		cfg.Index = DefaultIndex
	}
	if cfg.MinInterval <= 0 {
		cfg.MinInterval = DefaultMinInterval
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	path := filepath.Join(cfg.ChainDir, JournalName)
	b, err := readJournal(path)
	if err != nil {
		return nil, err
	}
	entries, good, _, err := DecodeJournal(b)
	if err != nil {
		return nil, err
	}
	state, err := readIndex(cfg.TPM, cfg.Index)
	if errors.Is(err, errUndefined) && len(entries) == 0 {
		if err := defineIndex(cfg.TPM, cfg.Index, cfg.OwnerAuth); err != nil {
			return nil, err
		}
		state, err = readIndex(cfg.TPM, cfg.Index)
	}
	if err != nil {
		return nil, err
	}
	full := extendDigest([32]byte{}, entries)
	var repair *Entry
	switch {
	case state == full:
	case len(entries) > 0 && state == extendDigest([32]byte{}, entries[:len(entries)-1]):
		// A crash between the journal's fsync and the extend.
		repair = &entries[len(entries)-1]
	default:
		return nil, fmt.Errorf("%w: TPM NV index %#x holds %x, %s (%d entries) computes %x: anchored history was rewritten or rolled back", ErrMismatch, uint32(cfg.Index), state, JournalName, len(entries), full)
	}
	j, err := openJournal(path, good)
	if err != nil {
		return nil, err
	}
	t := &TPM{cfg: cfg, j: j, digest: state}
	if repair != nil {
		if err := nvExtend(cfg.TPM, cfg.Index, repair.data()); err != nil {
			j.close()
			return nil, err
		}
		t.digest = full
	}
	if len(entries) > 0 {
		t.last = entries[len(entries)-1]
	}
	return t, nil
}

// Record anchors cp now if the last NV write is at least MinInterval old;
// otherwise it keeps cp and anchors the latest kept checkpoint when the
// interval has passed, so an idle chain still gets its last checkpoint
// anchored.
func (t *TPM) Record(cp checkpoint.Checkpoint) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return checkpoint.ErrClosed
	}
	if cp.Size <= t.last.Size {
		return nil
	}
	wait := t.cfg.MinInterval - t.cfg.now().Sub(t.last.Time)
	if t.last.Time.IsZero() || wait <= 0 {
		t.pending = nil
		return t.anchorLocked(cp)
	}
	t.pending = &cp
	if t.timer == nil {
		t.timer = time.AfterFunc(wait, t.flushPending)
	}
	return nil
}

func (t *TPM) flushPending() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.timer = nil
	if t.closed || t.pending == nil {
		return
	}
	cp := *t.pending
	t.pending = nil
	if err := t.anchorLocked(cp); err != nil {
		t.cfg.Log.Error("anchor checkpoint in the TPM", "size", cp.Size, "err", err)
	}
}

// anchorLocked journals and then extends one entry: the journal first, so
// a crash leaves at most one journaled entry that OpenTPM extends.
func (t *TPM) anchorLocked(cp checkpoint.Checkpoint) error {
	e := Entry{Size: cp.Size, Root: cp.Root, Time: t.cfg.now().UTC()}
	if err := t.j.append(e.record()); err != nil {
		return err
	}
	if err := nvExtend(t.cfg.TPM, t.cfg.Index, e.data()); err != nil {
		return err
	}
	t.digest = extendDigest(t.digest, []Entry{e})
	t.last = e
	return nil
}

// Last returns the last anchored entry (zero if none).
func (t *TPM) Last() Entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

// Close anchors a kept checkpoint if the rate bound allows it and closes
// the journal. It does not close the TPM transport.
func (t *TPM) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	if t.timer != nil {
		t.timer.Stop()
	}
	var errs []error
	if t.pending != nil && t.cfg.now().Sub(t.last.Time) >= t.cfg.MinInterval {
		errs = append(errs, t.anchorLocked(*t.pending))
	}
	errs = append(errs, t.j.close())
	return errors.Join(errs...)
}

var errUndefined = errors.New("nv index not defined")

// wantAttrs are the index's attributes: extend type, written and read with
// the (empty) index auth, no dictionary-attack lockout.
func wantAttrs() tpm2.TPMANV {
	return tpm2.TPMANV{NT: tpm2.TPMNTExtend, AuthWrite: true, AuthRead: true, NoDA: true}
}

func defineIndex(t transport.TPM, index tpm2.TPMHandle, ownerAuth []byte) error {
	_, err := tpm2.NVDefineSpace{
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(ownerAuth)},
		PublicInfo: tpm2.New2B(tpm2.TPMSNVPublic{
			NVIndex: index, NameAlg: tpm2.TPMAlgSHA256, Attributes: wantAttrs(), DataSize: 32,
		}),
	}.Execute(t)
	if err != nil {
		return fmt.Errorf("%w: define nv index %#x: %w", ErrTPM, uint32(index), err)
	}
	return nil
}

// readIndex checks the index is Coconut's kind of index and returns its
// value (zero when never extended).
func readIndex(t transport.TPM, index tpm2.TPMHandle) ([32]byte, error) {
	var v [32]byte
	pub, err := tpm2.NVReadPublic{NVIndex: index}.Execute(t)
	if errors.Is(err, tpm2.TPMRCHandle) {
		return v, errUndefined
	}
	if err != nil {
		return v, fmt.Errorf("%w: read nv public %#x: %w", ErrTPM, uint32(index), err)
	}
	p, err := pub.NVPublic.Contents()
	if err != nil {
		return v, fmt.Errorf("%w: nv public %#x: %w", ErrTPM, uint32(index), err)
	}
	a, w := p.Attributes, wantAttrs()
	if p.NameAlg != tpm2.TPMAlgSHA256 || p.DataSize != 32 || a.NT != w.NT || !a.AuthWrite || !a.AuthRead || len(p.AuthPolicy.Buffer) != 0 {
		return v, fmt.Errorf("%w: nv index %#x exists but is not a SHA-256 extend index defined by coconut (attributes %+v)", ErrMismatch, uint32(index), a)
	}
	if !a.Written {
		return v, nil
	}
	rsp, err := tpm2.NVRead{
		AuthHandle: tpm2.AuthHandle{Handle: index, Name: pub.NVName, Auth: tpm2.PasswordAuth(nil)},
		NVIndex:    tpm2.NamedHandle{Handle: index, Name: pub.NVName},
		Size:       32,
	}.Execute(t)
	if err != nil {
		return v, fmt.Errorf("%w: read nv index %#x: %w", ErrTPM, uint32(index), err)
	}
	if len(rsp.Data.Buffer) != 32 {
		return v, fmt.Errorf("%w: nv index %#x: read %d bytes", ErrTPM, uint32(index), len(rsp.Data.Buffer))
	}
	copy(v[:], rsp.Data.Buffer)
	return v, nil
}

// ReadTPM reads anchor.log from chainDir and checks that it reproduces
// the NV index: it returns the entries the TPM vouches for (every entry,
// or all but a last one a crash left journaled and not yet extended,
// which is then returned as unanchored).
func ReadTPM(chainDir string, t transport.TPM, index tpm2.TPMHandle) (anchored []Entry, unanchored *Entry, err error) {
	if index == 0 {
		index = DefaultIndex
	}
	b, err := readJournal(filepath.Join(chainDir, JournalName))
	if err != nil {
		return nil, nil, err
	}
	entries, good, torn, err := DecodeJournal(b)
	if err != nil {
		return nil, nil, err
	}
	if torn {
		return nil, nil, fmt.Errorf("%w: torn record at offset %d (the daemon cuts it at its next start)", ErrBadJournal, good)
	}
	state, err := readIndex(t, index)
	if errors.Is(err, errUndefined) && len(entries) == 0 {
		return nil, nil, nil
	}
	if errors.Is(err, errUndefined) {
		return nil, nil, fmt.Errorf("%w: TPM NV index %#x is not defined but %s holds %d entries: the index was deleted", ErrMismatch, uint32(index), JournalName, len(entries))
	}
	if err != nil {
		return nil, nil, err
	}
	if state == extendDigest([32]byte{}, entries) {
		return entries, nil, nil
	}
	if n := len(entries); n > 0 && state == extendDigest([32]byte{}, entries[:n-1]) {
		return entries[:n-1], &entries[n-1], nil
	}
	return nil, nil, fmt.Errorf("%w: TPM NV index %#x does not match %s (%d entries): anchored history was rewritten, removed or rolled back", ErrMismatch, uint32(index), JournalName, len(entries))
}
