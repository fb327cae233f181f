package checkpoint

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
)

// LogName is the checkpoint log's file name inside the chain directory.
const LogName = "checkpoints.log"

// maxNote bounds one stored note, so a corrupt length cannot make a
// reader allocate much.
const maxNote = 64 << 10

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func appendEntry(dst, signed []byte) []byte {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(signed)))
	dst = append(dst, signed...)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// DecodeEntries splits a checkpoint log into its signed notes. good is the
// length of the well-formed prefix. A short last entry (what a crash
// mid-append leaves) ends the log with torn set; any other fault is
// ErrBadLog. It checks framing only, not signatures.
func DecodeEntries(b []byte) (notes [][]byte, good int64, torn bool, err error) {
	off := 0
	for off < len(b) {
		if len(b)-off < 4 {
			return notes, int64(off), true, nil
		}
		n := int(binary.LittleEndian.Uint32(b[off:]))
		if n == 0 || n > maxNote {
			return notes, int64(off), false, fmt.Errorf("%w: entry at offset %d: length %d", ErrBadLog, off, n)
		}
		if len(b)-off < 4+n+4 {
			return notes, int64(off), true, nil
		}
		end := off + 4 + n
		if crc32.Checksum(b[off:end], castagnoli) != binary.LittleEndian.Uint32(b[end:]) {
			if end+4 == len(b) {
				return notes, int64(off), true, nil // the last append, torn
			}
			return notes, int64(off), false, fmt.Errorf("%w: entry at offset %d: crc mismatch", ErrBadLog, off)
		}
		notes = append(notes, b[off+4:end])
		off = end + 4
	}
	return notes, int64(off), false, nil
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

// logFile appends checkpoints durably.
type logFile struct{ f *os.File }

// openLogFile opens the log for appending after cutting a torn last entry.
func openLogFile(path string) (*logFile, [][]byte, error) {
	notes, good, _, err := ReadLog(path)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open checkpoint log: %w", err)
	}
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("cut checkpoint log: %w", err)
	}
	if _, err := f.Seek(good, 0); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("seek checkpoint log: %w", err)
	}
	return &logFile{f: f}, notes, nil
}

func (l *logFile) append(signed []byte) error {
	if _, err := l.f.Write(appendEntry(nil, signed)); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("sync checkpoint: %w", err)
	}
	return nil
}

func (l *logFile) close() error { return l.f.Close() }
