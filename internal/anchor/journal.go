package anchor

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// decodeRecords splits a journal of fixed-size records (each ending in a
// CRC32C of the rest and starting with magic) into record bodies without
// the CRC. good is the length of the well-formed prefix; a short or
// CRC-failing last record (what a crash mid-append leaves) ends it with
// torn set. A bad magic or CRC anywhere else is ErrBadJournal.
func decodeRecords(b []byte, size int, magic string) (recs [][]byte, good int64, torn bool, err error) {
	off := 0
	for off < len(b) {
		if len(b)-off < size {
			return recs, int64(off), true, nil
		}
		body := b[off : off+size-4]
		last := off+size == len(b)
		if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[off+size-4:]) {
			if last {
				return recs, int64(off), true, nil
			}
			return recs, int64(off), false, fmt.Errorf("%w: record at offset %d: crc mismatch", ErrBadJournal, off)
		}
		if !bytes.HasPrefix(body, []byte(magic)) {
			return recs, int64(off), false, fmt.Errorf("%w: record at offset %d: bad magic", ErrBadJournal, off)
		}
		recs = append(recs, body)
		off += size
	}
	return recs, int64(off), false, nil
}

func frameRecord(body []byte) []byte {
	return binary.LittleEndian.AppendUint32(body, crc32.Checksum(body, castagnoli))
}

// readJournal reads a journal file; a missing file is empty.
func readJournal(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

// journal appends fixed-size records durably.
type journal struct{ f *os.File }

// openJournal opens path for appending after cutting a torn last record
// at good.
func openJournal(path string, good int64) (*journal, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, fmt.Errorf("cut journal: %w", err)
	}
	if _, err := f.Seek(good, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("seek journal: %w", err)
	}
	return &journal{f: f}, nil
}

func (j *journal) append(rec []byte) error {
	if _, err := j.f.Write(rec); err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("sync journal: %w", err)
	}
	return nil
}

func (j *journal) close() error { return j.f.Close() }
