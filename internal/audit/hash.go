package audit

import (
	"encoding/hex"

	"github.com/zeebo/blake3"
)

// HeadSize is the size of a chain head in bytes.
const HeadSize = 32

// Genesis is head_0, the head before the first record: 32 zero bytes.
var Genesis [HeadSize]byte

// NextHead returns BLAKE3-256(prev || recordBytes), the head after a record
// whose canonical bytes are recordBytes.
func NextHead(prev [HeadSize]byte, recordBytes []byte) [HeadSize]byte {
	h := blake3.New()
	return nextHead(h, prev, recordBytes)
}

// nextHead is NextHead reusing a hasher, for the writer's hot path.
func nextHead(h *blake3.Hasher, prev [HeadSize]byte, recordBytes []byte) [HeadSize]byte {
	h.Reset()
	_, _ = h.Write(prev[:]) // a hash.Hash never returns a write error
	_, _ = h.Write(recordBytes)
	var out [HeadSize]byte
	h.Sum(out[:0])
	return out
}

func hexHead(h [HeadSize]byte) string { return hex.EncodeToString(h[:]) }
