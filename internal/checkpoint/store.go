package checkpoint

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// LogName is the checkpoint log's file name inside the chain directory.
const LogName = "checkpoints.log"

// maxNote bounds one stored note, so a corrupt length cannot make a
// reader allocate much.
const maxNote = 64 << 10

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// AppendFrame appends entry in the framing of checkpoints.log (and of
// the witness package's cosignatures.log): length u32 LE | entry |
// CRC32C u32 LE of length and entry.
func AppendFrame(dst, entry []byte) []byte {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(entry)))
	dst = append(dst, entry...)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

func appendEntry(dst, signed []byte) []byte { return AppendFrame(dst, signed) }

// ScanFrames streams the entries of a log in AppendFrame's framing,
// calling fn with each entry's offset and bytes (valid only during the
// call). good is the length of the well-formed prefix; torn says a torn
// last entry (what a crash mid-append leaves: a short length, entry or
// sum, or a bad sum on the last entry) follows it. Any other fault (a
// zero length or one over max, a bad sum before the end) is an error
// wrapping bad. It is the one reader of the framing: the checkpoint log,
// its size index's checks and the cosignature log use it.
func ScanFrames(r io.Reader, max int, bad error, fn func(off int64, entry []byte) error) (good int64, torn bool, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var hdr [4]byte
	buf := make([]byte, 0, 4096)
	for {
		_, err := io.ReadFull(br, hdr[:])
		if err == io.EOF {
			return good, false, nil
		}
		if err == io.ErrUnexpectedEOF {
			return good, true, nil
		}
		if err != nil {
			return good, false, fmt.Errorf("read log: %w", err)
		}
		l := int(binary.LittleEndian.Uint32(hdr[:]))
		if l == 0 || l > max {
			return good, false, fmt.Errorf("%w: entry at offset %d: length %d", bad, good, l)
		}
		buf = append(append(buf[:0], hdr[:]...), make([]byte, l+4)...)
		if _, err := io.ReadFull(br, buf[4:]); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return good, true, nil
			}
			return good, false, fmt.Errorf("read log: %w", err)
		}
		if crc32.Checksum(buf[:4+l], castagnoli) != binary.LittleEndian.Uint32(buf[4+l:]) {
			if _, err := br.Peek(1); err == io.EOF {
				return good, true, nil // the last append, torn
			}
			return good, false, fmt.Errorf("%w: entry at offset %d: crc mismatch", bad, good)
		}
		if err := fn(good, buf[4:4+l]); err != nil {
			return good, false, err
		}
		good += int64(8 + l)
	}
}

// DecodeEntries splits a checkpoint log into its signed notes. good is the
// length of the well-formed prefix. A short last entry (what a crash
// mid-append leaves) ends the log with torn set; any other fault is
// ErrBadLog. It checks framing only, not signatures.
func DecodeEntries(b []byte) (notes [][]byte, good int64, torn bool, err error) {
	good, torn, err = ScanFrames(bytes.NewReader(b), maxNote, ErrBadLog, func(off int64, e []byte) error {
		notes = append(notes, b[off+4:off+4+int64(len(e))]) // a slice of b, as before
		return nil
	})
	return notes, good, torn, err
}

// ReadLog reads the signed notes of a checkpoint log file; a missing file
// is an empty log.
func ReadLog(path string) (notes [][]byte, good int64, torn bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, fmt.Errorf("read checkpoint log: %w", err)
	}
	return DecodeEntries(b)
}

// IndexName is the checkpoint log's size index, beside it: one 16-byte
// record (size, offset of its entry in the log; little-endian) per stored
// checkpoint. It lets the log find a checkpoint by size with a binary
// search on disk, so neither the daemon's memory nor its start grows with
// the number of checkpoints (one a second while agents work: 86,400 a
// day; reading and verifying them all took about 6 s a day of age at
// start). It is a cache: missing, short or disagreeing with the log, it
// is rebuilt from the log, which stays the record.
const IndexName = "checkpoints.idx"

const idxRec = 16

// logFile appends checkpoints durably and finds them by size.
type logFile struct {
	f   *os.File // the log
	idx *os.File // its size index
	n   int64    // checkpoints in both
	end int64    // the log's length (its next entry's offset)
	// lastSize is the largest stored size (0: none): an append must be
	// larger.
	lastSize uint64
	last     []byte // the latest signed note
}

// openLogFile opens the log for appending after cutting a torn last entry,
// and its size index, brought up to date with the log (rebuilt when it
// disagrees). Only the index's last record and the entries after it are
// read: the log's older entries are checked by VerifyChain, not here.
func openLogFile(path string) (*logFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open checkpoint log: %w", err)
	}
	idx, err := os.OpenFile(filepath.Join(filepath.Dir(path), IndexName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open checkpoint index: %w", err)
	}
	l := &logFile{f: f, idx: idx}
	if err := l.load(); err != nil {
		l.close()
		return nil, err
	}
	return l, nil
}

// load reads the index's tail, checks it against the log, and indexes
// the log's entries after it.
func (l *logFile) load() error {
	st, err := l.f.Stat()
	if err != nil {
		return fmt.Errorf("stat checkpoint log: %w", err)
	}
	ist, err := l.idx.Stat()
	if err != nil {
		return fmt.Errorf("stat checkpoint index: %w", err)
	}
	l.n = ist.Size() / idxRec
	from := int64(0)
	if l.n > 0 {
		size, off, err := l.record(l.n - 1)
		if err == nil {
			var note []byte
			var next int64
			if note, next, err = readEntryAt(l.f, off, st.Size()); err == nil {
				var cp Checkpoint
				if cp, err = parseUnverified(note); err == nil && cp.Size != size {
					err = fmt.Errorf("%w: index says size %d at offset %d, the log %d", ErrBadLog, size, off, cp.Size)
				}
				l.lastSize, l.last, from = size, note, next
			}
		}
		if err != nil { // the index disagrees with the log: rebuild it
			l.n, l.lastSize, l.last, from = 0, 0, nil, 0
		}
	}
	if err := l.idx.Truncate(l.n * idxRec); err != nil {
		return fmt.Errorf("cut checkpoint index: %w", err)
	}
	// Index what follows (everything, on a rebuild), streaming.
	tail := io.NewSectionReader(l.f, from, st.Size()-from)
	good, _, err := ScanFrames(tail, maxNote, ErrBadLog, func(off int64, note []byte) error {
		cp, err := parseUnverified(note)
		if err != nil {
			return fmt.Errorf("checkpoint at offset %d: %w", from+off, err)
		}
		if l.n > 0 && cp.Size <= l.lastSize {
			return fmt.Errorf("%w: checkpoint %d: size %d after %d", ErrBadLog, l.n+1, cp.Size, l.lastSize)
		}
		if err := l.index(cp.Size, from+off); err != nil {
			return err
		}
		l.lastSize, l.last = cp.Size, append([]byte(nil), note...)
		return nil
	})
	if err != nil {
		return err
	}
	l.end = from + good
	if l.end < st.Size() {
		if err := l.f.Truncate(l.end); err != nil {
			return fmt.Errorf("cut checkpoint log: %w", err)
		}
	}
	if _, err := l.f.Seek(l.end, io.SeekStart); err != nil {
		return fmt.Errorf("seek checkpoint log: %w", err)
	}
	return l.idx.Sync()
}

// index appends the record of a checkpoint of size at offset off.
func (l *logFile) index(size uint64, off int64) error {
	var b [idxRec]byte
	binary.LittleEndian.PutUint64(b[:], size)
	binary.LittleEndian.PutUint64(b[8:], uint64(off))
	if _, err := l.idx.WriteAt(b[:], l.n*idxRec); err != nil {
		return fmt.Errorf("write checkpoint index: %w", err)
	}
	l.n++
	return nil
}

// record reads the index's record i.
func (l *logFile) record(i int64) (size uint64, off int64, err error) {
	var b [idxRec]byte
	if _, err := l.idx.ReadAt(b[:], i*idxRec); err != nil {
		return 0, 0, fmt.Errorf("read checkpoint index: %w", err)
	}
	return binary.LittleEndian.Uint64(b[:]), int64(binary.LittleEndian.Uint64(b[8:])), nil
}

// search returns the index of the first record whose size is >= size.
func (l *logFile) search(size uint64) (int64, error) {
	lo, hi := int64(0), l.n
	for lo < hi {
		mid := lo + (hi-lo)/2
		s, _, err := l.record(mid)
		if err != nil {
			return 0, err
		}
		if s < size {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// note returns the stored signed note of the checkpoint of size size.
func (l *logFile) note(size uint64) ([]byte, bool, error) {
	i, err := l.search(size)
	if err != nil || i == l.n {
		return nil, false, err
	}
	s, off, err := l.record(i)
	if err != nil || s != size {
		return nil, false, err
	}
	n, _, err := readEntryAt(l.f, off, l.end)
	if err != nil {
		return nil, false, err
	}
	if cp, err := parseUnverified(n); err != nil || cp.Size != size {
		return nil, false, fmt.Errorf("%w: %s points size %d at a checkpoint of another size (rebuilt when removed)", ErrBadLog, IndexName, size)
	}
	return n, true, nil
}

// after counts the stored checkpoints larger than size.
func (l *logFile) after(size uint64) (int64, error) {
	i, err := l.search(size + 1)
	return l.n - i, err
}

// readEntryAt reads the log entry at off (ending before end) and returns
// its note and the next entry's offset.
func readEntryAt(f io.ReaderAt, off, end int64) ([]byte, int64, error) {
	if off < 0 || off >= end {
		return nil, 0, fmt.Errorf("%w: entry offset %d past the log's end %d", ErrBadLog, off, end)
	}
	var note []byte
	_, _, err := ScanFrames(io.NewSectionReader(f, off, end-off), maxNote, ErrBadLog, func(_ int64, e []byte) error {
		note = append([]byte(nil), e...)
		return errStop
	})
	if err != errStop {
		if err == nil {
			err = fmt.Errorf("%w: no whole entry at offset %d", ErrBadLog, off)
		}
		return nil, 0, err
	}
	return note, off + 8 + int64(len(note)), nil
}

// errStop ends a ScanFrames walk after the entry wanted.
var errStop = errors.New("stop")

// parseUnverified reads a stored note's checkpoint without checking its
// signature: the index only needs sizes; the latest note is verified by
// New and every note by VerifyChain.
func parseUnverified(signed []byte) (Checkpoint, error) {
	text, _, ok := bytes.Cut(signed, []byte("\n\n"))
	if !ok {
		return Checkpoint{}, fmt.Errorf("%w: no signature block", ErrBadNote)
	}
	return ParseBody(string(text) + "\n")
}

func (l *logFile) append(signed []byte) error {
	cp, err := parseUnverified(signed)
	if err != nil {
		return err
	}
	if l.n > 0 && cp.Size <= l.lastSize {
		return fmt.Errorf("%w: checkpoint of size %d after %d", ErrBadLog, cp.Size, l.lastSize)
	}
	e := appendEntry(nil, signed)
	if _, err := l.f.Write(e); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("sync checkpoint: %w", err)
	}
	// The index follows the log; a crash between the two leaves an index
	// one short, which load completes from the log.
	if err := l.index(cp.Size, l.end); err != nil {
		return err
	}
	l.end += int64(len(e))
	l.lastSize, l.last = cp.Size, signed
	return nil
}

func (l *logFile) close() error { return errors.Join(l.f.Close(), l.idx.Close()) }
