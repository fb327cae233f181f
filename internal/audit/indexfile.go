package audit

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// The saved query index, Options.IndexDir/aid.idx, little-endian:
//
//	magic "COCOAIX1" | upTo u64 | head after upTo (32 bytes) |
//	upTo × frame offset u32 | agents u64 |
//	per agent, ascending aid: aid u64 | n u64 | n × seq u64 (ascending) |
//	CRC32C u32 of everything before
//
// Every seq 1..upTo is in exactly one agent's list. It is a cache of the
// chain: written at Close (temporary file, fsync, rename), checked against
// the chain head at Open, rebuilt when missing, damaged or stale.
const indexFile = "aid.idx"

var indexMagic = [8]byte{'C', 'O', 'C', 'O', 'A', 'I', 'X', '1'}

// saveIndex writes x to dir atomically.
func saveIndex(dir string, x *index) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create index dir: %w", err)
	}
	tmp := filepath.Join(dir, indexFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create index: %w", err)
	}
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	crc := crc32.New(castagnoli)
	w := bufio.NewWriterSize(f, 1<<20)
	out := func(b []byte) {
		_, _ = crc.Write(b) // a hash never fails
		_, _ = w.Write(b)   // the error is sticky; Flush reports it
	}
	var b []byte
	b = append(b, indexMagic[:]...)
	b = binary.LittleEndian.AppendUint64(b, x.upTo)
	b = append(b, x.head[:]...)
	out(b)
	for chunk := range slices.Chunk(x.offs, 8192) {
		b = b[:0]
		for _, o := range chunk {
			b = binary.LittleEndian.AppendUint32(b, o)
		}
		out(b)
	}
	aids := make([]uint64, 0, len(x.posts))
	for aid := range x.posts {
		aids = append(aids, aid)
	}
	slices.Sort(aids)
	out(binary.LittleEndian.AppendUint64(b[:0], uint64(len(aids))))
	for _, aid := range aids {
		seqs := x.posts[aid]
		b = binary.LittleEndian.AppendUint64(b[:0], aid)
		out(binary.LittleEndian.AppendUint64(b, uint64(len(seqs))))
		for chunk := range slices.Chunk(seqs, 8192) {
			b = b[:0]
			for _, s := range chunk {
				b = binary.LittleEndian.AppendUint64(b, s)
			}
			out(b)
		}
	}
	_, _ = w.Write(binary.LittleEndian.AppendUint32(nil, crc.Sum32()))
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write index: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync index: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close index: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, indexFile)); err != nil {
		return fmt.Errorf("install index: %w", err)
	}
	return syncDir(dir)
}

// loadIndex reads the saved index; a missing file is fs.ErrNotExist.
func loadIndex(dir string) (*index, error) {
	b, err := os.ReadFile(filepath.Join(dir, indexFile))
	if err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	return decodeIndex(b)
}

// decodeIndex parses a saved index, refusing anything malformed: bad
// magic or CRC, counts that do not fit the file, seqs out of order, out of
// range, repeated or missing.
func decodeIndex(b []byte) (*index, error) {
	const fixed = 8 + 8 + HeadSize
	if len(b) < fixed+8+4 {
		return nil, fmt.Errorf("%w: %d bytes", ErrIndex, len(b))
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return nil, fmt.Errorf("%w: %w", ErrIndex, ErrFrameCRC)
	}
	if [8]byte(body[:8]) != indexMagic {
		return nil, fmt.Errorf("%w: bad magic", ErrIndex)
	}
	x := newIndex()
	x.upTo = binary.LittleEndian.Uint64(body[8:])
	x.head = [HeadSize]byte(body[16:fixed])
	rest := body[fixed:]
	if x.upTo > uint64(len(rest))/4 {
		return nil, fmt.Errorf("%w: %d offsets do not fit", ErrIndex, x.upTo)
	}
	x.offs = make([]uint32, x.upTo)
	for i := range x.offs {
		x.offs[i] = binary.LittleEndian.Uint32(rest[4*i:])
	}
	rest = rest[4*x.upTo:]
	u64 := func() (uint64, error) {
		if len(rest) < 8 {
			return 0, fmt.Errorf("%w: truncated", ErrIndex)
		}
		v := binary.LittleEndian.Uint64(rest)
		rest = rest[8:]
		return v, nil
	}
	agents, err := u64()
	if err != nil {
		return nil, err
	}
	seen := make([]uint64, (x.upTo+63)/64)
	var total, prevAID uint64
	for a := uint64(0); a < agents; a++ {
		aid, err := u64()
		if err != nil {
			return nil, err
		}
		n, err := u64()
		if err != nil {
			return nil, err
		}
		if a > 0 && aid <= prevAID {
			return nil, fmt.Errorf("%w: agents out of order", ErrIndex)
		}
		if n == 0 || n > uint64(len(rest))/8 {
			return nil, fmt.Errorf("%w: agent %d: %d seqs", ErrIndex, aid, n)
		}
		seqs := make([]uint64, n)
		for i := range seqs {
			s := binary.LittleEndian.Uint64(rest[8*i:])
			if s == 0 || s > x.upTo || (i > 0 && s <= seqs[i-1]) || seen[(s-1)/64]&(1<<((s-1)%64)) != 0 {
				return nil, fmt.Errorf("%w: agent %d: seq %d out of order, range or repeated", ErrIndex, aid, s)
			}
			seen[(s-1)/64] |= 1 << ((s - 1) % 64)
			seqs[i] = s
		}
		rest = rest[8*n:]
		x.posts[aid] = seqs
		total += n
		prevAID = aid
	}
	if total != x.upTo || len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d seqs for %d records, %d bytes left", ErrIndex, total, x.upTo, len(rest))
	}
	return x, nil
}

// openIndex loads the saved index and brings it up to the chain, or
// rebuilds it from the chain when that fails for any reason but a chain
// error. A copy saved before a crash is still a prefix of the chain (only
// unacknowledged records are ever cut), so it is caught up, not rebuilt.
func (c *Chain) openIndex(dir string) (*index, error) {
	x, err := loadIndex(dir)
	if err == nil {
		if err = c.catchUp(x); err == nil {
			return x, nil
		}
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, ErrIndex) && !errors.Is(err, ErrIndexStale) {
		return nil, err
	}
	x = newIndex()
	if err := c.catchUp(x); err != nil {
		return nil, err
	}
	return x, nil
}
