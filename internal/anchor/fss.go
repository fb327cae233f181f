package anchor

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/zeebo/blake3"

	"github.com/coconut-os/coconut/internal/checkpoint"
)

// Names of the FSS key files in the keys directory.
const (
	KeyName  = "fss.key"  // the current epoch's key; evolves, old keys erased
	SeedName = "fss.seed" // the verification seed k_0: move it off the host
)

const (
	sealMagic = "COCOSEA1"
	// SealSize is one seals.log record: magic | epoch u64 LE | size u64 LE |
	// root (32) | MAC (32) | CRC32C u32 LE.
	SealSize = 8 + 8 + 8 + 32 + 32 + 4
	keyMagic = "COCOFSK1"
	// keyFileSize is fss.key: magic | epoch u64 LE | key (32) | CRC32C.
	keyFileSize = 8 + 8 + 32 + 4

	evolveContext = "coconut fss evolve v1"
)

// Seal is one sealed checkpoint.
type Seal struct {
	Epoch uint64
	Size  uint64
	Root  [32]byte
	MAC   [32]byte
}

// evolve is the one-way step k_{i+1} = derive(k_i).
func evolve(k [32]byte) [32]byte {
	var out [32]byte
	blake3.DeriveKey(evolveContext, k[:], out[:])
	return out
}

func sealBody(epoch, size uint64, root [32]byte) []byte {
	b := make([]byte, 0, SealSize)
	b = append(b, sealMagic...)
	b = binary.LittleEndian.AppendUint64(b, epoch)
	b = binary.LittleEndian.AppendUint64(b, size)
	return append(b, root[:]...)
}

func mac(k [32]byte, epoch, size uint64, root [32]byte) [32]byte {
	h, _ := blake3.NewKeyed(k[:]) // a 32-byte key never fails
	h.Write(sealBody(epoch, size, root))
	var m [32]byte
	h.Sum(m[:0])
	return m
}

func (s Seal) record() []byte {
	return frameRecord(append(sealBody(s.Epoch, s.Size, s.Root), s.MAC[:]...))
}

// DecodeSeals parses seals.log: the seals, the good prefix and whether a
// torn last record follows. Epochs must run 0, 1, 2… and sizes grow;
// anything else is ErrBadJournal. MACs are checked by VerifySeals.
func DecodeSeals(b []byte) (seals []Seal, good int64, torn bool, err error) {
	recs, good, torn, err := decodeRecords(b, SealSize, sealMagic)
	if err != nil {
		return nil, good, torn, err
	}
	for i, r := range recs {
		var s Seal
		s.Epoch = binary.LittleEndian.Uint64(r[8:])
		s.Size = binary.LittleEndian.Uint64(r[16:])
		copy(s.Root[:], r[24:56])
		copy(s.MAC[:], r[56:88])
		if s.Epoch != uint64(i) {
			return nil, good, torn, fmt.Errorf("%w: seal %d has epoch %d", ErrBadJournal, i, s.Epoch)
		}
		if s.Size == 0 || (i > 0 && s.Size <= seals[i-1].Size) {
			return nil, good, torn, fmt.Errorf("%w: seal %d: size %d", ErrBadJournal, i, s.Size)
		}
		seals = append(seals, s)
	}
	return seals, good, torn, nil
}

func encodeKey(epoch uint64, k [32]byte) []byte {
	b := append([]byte(keyMagic), binary.LittleEndian.AppendUint64(nil, epoch)...)
	return frameRecord(append(b, k[:]...))
}

// DecodeKey parses fss.key.
func DecodeKey(b []byte) (epoch uint64, k [32]byte, err error) {
	if len(b) != keyFileSize {
		return 0, k, fmt.Errorf("%w: key file of %d bytes, want %d", ErrBadKey, len(b), keyFileSize)
	}
	recs, _, torn, err := decodeRecords(b, keyFileSize, keyMagic)
	if err != nil || torn || len(recs) != 1 {
		return 0, k, fmt.Errorf("%w: key file: bad crc or magic", ErrBadKey)
	}
	copy(k[:], recs[0][16:48])
	return binary.LittleEndian.Uint64(recs[0][8:]), k, nil
}

// ParseSeed decodes a verification seed: 64 hex digits, or the name of a
// file holding them.
func ParseSeed(s string) ([32]byte, error) {
	var k [32]byte
	s = strings.TrimSpace(s)
	if len(s) != 64 {
		if b, err := os.ReadFile(s); err == nil {
			s = strings.TrimSpace(string(b))
		}
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return k, fmt.Errorf("%w: seed must be 64 hex digits or a file holding them", ErrBadKey)
	}
	copy(k[:], b)
	return k, nil
}

// FSS seals checkpoints with forward-secure keys. It implements
// checkpoint.Anchor.
type FSS struct {
	mu     sync.Mutex
	j      *journal
	key    *os.File
	epoch  uint64
	k      [32]byte
	last   uint64 // size of the last sealed checkpoint
	closed bool
}

// OpenFSS opens the sealer with its key in keysDir and its seals in
// chainDir. On first use it creates a random seed and returns it (hex)
// as seed: the caller shows it once and tells the user to move keysDir/fss.seed
// off the host. A missing key with existing seals, or a key whose epoch
// does not follow the seals, is refused (ErrBadKey, ErrMismatch).
func OpenFSS(keysDir, chainDir string) (f *FSS, seed string, err error) {
	sealsPath := filepath.Join(chainDir, SealsName)
	b, err := readJournal(sealsPath)
	if err != nil {
		return nil, "", err
	}
	seals, good, _, err := DecodeSeals(b)
	if err != nil {
		return nil, "", err
	}
	keyPath := filepath.Join(keysDir, KeyName)
	kb, err := os.ReadFile(keyPath)
	var epoch uint64
	var k [32]byte
	switch {
	case errors.Is(err, fs.ErrNotExist) && len(seals) == 0:
		if k, err = newSeed(keysDir); err != nil {
			return nil, "", err
		}
		seed = hex.EncodeToString(k[:])
		if err := writeKeyFile(keyPath, 0, k); err != nil {
			return nil, "", err
		}
	case err != nil:
		return nil, "", fmt.Errorf("%w: %s: %w (seals cannot continue without it)", ErrBadKey, keyPath, err)
	default:
		if epoch, k, err = DecodeKey(kb); err != nil {
			return nil, "", err
		}
	}
	n := uint64(len(seals))
	switch {
	case epoch == n:
	case n > 0 && epoch == n-1:
		// A crash after the seal's fsync and before the key evolved.
		epoch, k = n, evolve(k)
		if err := overwriteKey(keyPath, epoch, k); err != nil {
			return nil, "", err
		}
	default:
		return nil, "", fmt.Errorf("%w: sealing key is at epoch %d but %s holds %d seals: seals were removed or the key replaced", ErrMismatch, epoch, SealsName, n)
	}
	j, err := openJournal(sealsPath, good)
	if err != nil {
		return nil, "", err
	}
	kf, err := os.OpenFile(keyPath, os.O_RDWR, 0)
	if err != nil {
		j.close()
		return nil, "", fmt.Errorf("open key: %w", err)
	}
	f = &FSS{j: j, key: kf, epoch: epoch, k: k}
	if n > 0 {
		f.last = seals[n-1].Size
	}
	return f, seed, nil
}

func newSeed(keysDir string) ([32]byte, error) {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return k, fmt.Errorf("seed: %w", err)
	}
	if err := os.MkdirAll(keysDir, 0o700); err != nil {
		return k, fmt.Errorf("create keys dir: %w", err)
	}
	p := filepath.Join(keysDir, SeedName)
	sf, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return k, fmt.Errorf("write seed: %w", err)
	}
	defer sf.Close()
	if _, err := sf.WriteString(hex.EncodeToString(k[:]) + "\n"); err != nil {
		return k, fmt.Errorf("write seed: %w", err)
	}
	if err := sf.Sync(); err != nil {
		return k, fmt.Errorf("sync seed: %w", err)
	}
	return k, nil
}

func writeKeyFile(path string, epoch uint64, k [32]byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create key: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(encodeKey(epoch, k)); err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync key: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	return nil
}

func overwriteKey(path string, epoch uint64, k [32]byte) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open key: %w", err)
	}
	defer f.Close()
	return writeKeyAt(f, epoch, k)
}

// writeKeyAt overwrites the key in place (same blocks, no new file) and
// fsyncs, so the previous key's bytes are gone from the file.
func writeKeyAt(f *os.File, epoch uint64, k [32]byte) error {
	if _, err := f.WriteAt(encodeKey(epoch, k), 0); err != nil {
		return fmt.Errorf("overwrite key: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync key: %w", err)
	}
	return nil
}

// Record seals cp with the current epoch's key, then evolves the key and
// erases the old one. The seal is durable before the key moves on, so a
// crash leaves at most a key one step behind, which OpenFSS evolves.
func (f *FSS) Record(cp checkpoint.Checkpoint) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return checkpoint.ErrClosed
	}
	if cp.Size <= f.last {
		return nil
	}
	s := Seal{Epoch: f.epoch, Size: cp.Size, Root: cp.Root, MAC: mac(f.k, f.epoch, cp.Size, cp.Root)}
	if err := f.j.append(s.record()); err != nil {
		return err
	}
	next := evolve(f.k)
	if err := writeKeyAt(f.key, f.epoch+1, next); err != nil {
		return err
	}
	clear(f.k[:])
	f.epoch, f.k, f.last = f.epoch+1, next, cp.Size
	return nil
}

// Epoch returns the current epoch (the number of seals made).
func (f *FSS) Epoch() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.epoch
}

// Close closes the files.
func (f *FSS) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	clear(f.k[:])
	return errors.Join(f.j.close(), f.key.Close())
}

// VerifySeals checks every seal of chainDir with keys evolved from seed,
// and the current key in keysDir: it must be the key of the epoch after
// the last seal (or of the last seal's epoch, a crash before the key
// evolved). It returns the sealed checkpoints, which the caller checks
// against the chain (CheckEntries). keysDir "" skips the key check.
func VerifySeals(chainDir, keysDir string, seed [32]byte) ([]Entry, error) {
	b, err := readJournal(filepath.Join(chainDir, SealsName))
	if err != nil {
		return nil, err
	}
	seals, good, torn, err := DecodeSeals(b)
	if err != nil {
		return nil, err
	}
	if torn {
		return nil, fmt.Errorf("%w: torn seal at offset %d (the daemon cuts it at its next start)", ErrBadJournal, good)
	}
	k := seed
	out := make([]Entry, 0, len(seals))
	for _, s := range seals {
		want := mac(k, s.Epoch, s.Size, s.Root)
		if subtle.ConstantTimeCompare(want[:], s.MAC[:]) != 1 {
			return nil, fmt.Errorf("%w: seal %d (checkpoint of size %d) was not made with the key of its epoch: forged or altered", ErrBadSeal, s.Epoch, s.Size)
		}
		out = append(out, Entry{Size: s.Size, Root: s.Root})
		k = evolve(k)
	}
	if keysDir == "" {
		return out, nil
	}
	kb, err := os.ReadFile(filepath.Join(keysDir, KeyName))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	epoch, cur, err := DecodeKey(kb)
	if err != nil {
		return nil, err
	}
	n := uint64(len(seals))
	switch {
	case epoch == n && cur == k:
	case n > 0 && epoch == n-1:
		// Crash window: cur must be the key of the last seal's epoch.
		prev := seed
		for i := uint64(0); i < epoch; i++ {
			prev = evolve(prev)
		}
		if cur != prev {
			return nil, fmt.Errorf("%w: the current key does not derive from the seed", ErrBadKey)
		}
	case epoch > n:
		return nil, fmt.Errorf("%w: the sealing key is at epoch %d but only %d seals remain: seals %d..%d were removed (rollback)", ErrMismatch, epoch, n, n, epoch-1)
	default:
		return nil, fmt.Errorf("%w: the current key (epoch %d) does not derive from the seed after %d seals", ErrBadKey, epoch, n)
	}
	return out, nil
}
