package audit

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

const (
	// HeaderSize is the size of a segment header.
	HeaderSize = 52
	// MaxPayload bounds a record's canonical bytes, so a corrupt length
	// field cannot make a reader allocate gigabytes.
	MaxPayload = 1 << 20
	// FrameOverhead is the bytes a frame adds to its payload: length, head, CRC.
	FrameOverhead = 4 + HeadSize + 4
)

// segMagic names the format and its version; a reader refuses any other.
var segMagic = [8]byte{'C', 'O', 'C', 'O', 'A', 'U', 'D', '1'}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// SegmentHeader opens every segment file.
type SegmentHeader struct {
	// FirstSeq is the seq of the segment's first record; the file name
	// repeats it.
	FirstSeq uint64
	// PrevHead is the chain head before FirstSeq (Genesis for seq 1), so the
	// last segment can be checked without reading the ones before it.
	PrevHead [HeadSize]byte
}

func appendHeader(dst []byte, h SegmentHeader) []byte {
	start := len(dst)
	dst = append(dst, segMagic[:]...)
	dst = binary.LittleEndian.AppendUint64(dst, h.FirstSeq)
	dst = append(dst, h.PrevHead[:]...)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

func parseHeader(b []byte) (SegmentHeader, error) {
	if len(b) != HeaderSize {
		return SegmentHeader{}, fmt.Errorf("%w: %d bytes", ErrBadHeader, len(b))
	}
	if [8]byte(b[:8]) != segMagic {
		return SegmentHeader{}, fmt.Errorf("%w: bad magic %q", ErrBadHeader, b[:8])
	}
	if crc32.Checksum(b[:48], castagnoli) != binary.LittleEndian.Uint32(b[48:]) {
		return SegmentHeader{}, fmt.Errorf("%w: %w", ErrBadHeader, ErrFrameCRC)
	}
	h := SegmentHeader{FirstSeq: binary.LittleEndian.Uint64(b[8:16]), PrevHead: [HeadSize]byte(b[16:48])}
	if h.FirstSeq == 0 {
		return SegmentHeader{}, fmt.Errorf("%w: first seq 0", ErrBadHeader)
	}
	return h, nil
}

// appendFrame appends length || payload || head || CRC32C(all before).
func appendFrame(dst, payload []byte, head [HeadSize]byte) []byte {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(payload)))
	dst = append(dst, payload...)
	dst = append(dst, head[:]...)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}
