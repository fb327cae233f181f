package anchor

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Names of the files beside the chain segments.
const (
	JournalName = "anchor.log" // tpm mode: every entry extended into the NV index
	SealsName   = "seals.log"  // fss mode: every seal
)

const (
	entryMagic = "COCOANC1"
	// EntrySize is one anchor.log record: magic | size u64 LE | root (32) |
	// unix nanoseconds i64 LE | CRC32C u32 LE. The first 56 bytes are what
	// is extended into the NV index.
	EntrySize = 8 + 8 + 32 + 8 + 4
)

// Entry is one anchored checkpoint.
type Entry struct {
	Size uint64
	Root [32]byte
	Time time.Time
}

// data is what is extended into the NV index.
func (e Entry) data() []byte {
	b := make([]byte, 0, EntrySize)
	b = append(b, entryMagic...)
	b = binary.LittleEndian.AppendUint64(b, e.Size)
	b = append(b, e.Root[:]...)
	return binary.LittleEndian.AppendUint64(b, uint64(e.Time.UnixNano()))
}

func (e Entry) record() []byte { return frameRecord(e.data()) }

func decodeEntry(body []byte) Entry {
	var e Entry
	e.Size = binary.LittleEndian.Uint64(body[8:])
	copy(e.Root[:], body[16:48])
	e.Time = time.Unix(0, int64(binary.LittleEndian.Uint64(body[48:]))).UTC()
	return e
}

// DecodeJournal parses anchor.log: the entries, the length of the good
// prefix and whether a torn last record follows it. Sizes must grow
// strictly; anything else malformed is ErrBadJournal.
func DecodeJournal(b []byte) (entries []Entry, good int64, torn bool, err error) {
	recs, good, torn, err := decodeRecords(b, EntrySize, entryMagic)
	if err != nil {
		return nil, good, torn, err
	}
	for i, r := range recs {
		e := decodeEntry(r)
		if i > 0 && e.Size <= entries[i-1].Size {
			return nil, good, torn, fmt.Errorf("%w: entry %d: size %d after %d", ErrBadJournal, i+1, e.Size, entries[i-1].Size)
		}
		if e.Size == 0 {
			return nil, good, torn, fmt.Errorf("%w: entry %d: size 0", ErrBadJournal, i+1)
		}
		entries = append(entries, e)
	}
	return entries, good, torn, nil
}
