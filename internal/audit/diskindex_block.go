package audit

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// Posting and offset blocks of the index format 3 (see diskindex.go).
const (
	// A posting block holds at most maxBlockSeqs seqs in at most
	// maxBlockBytes of deltas: small enough that about three blocks share
	// a 4 KiB bbolt page (a value near a page's size would take an
	// overflow page of two, half empty) and that extending the last block
	// of a value costs little per transaction.
	maxBlockSeqs  = 1024
	maxBlockBytes = 1024
	// offBlock seqs share one offset key.
	offBlock = 256
)

// blockKey is prefix | first (big-endian): blocks of one value sort by
// their first seq.
func blockKey(prefix []byte, first uint64) []byte {
	return binary.BigEndian.AppendUint64(slices.Clip(prefix), first)
}

// isBlock reports whether k is a block key of prefix.
func isBlock(k, prefix []byte) bool {
	return len(k) == len(prefix)+8 && bytes.HasPrefix(k, prefix)
}

// blockSum covers the key as well as the deltas, so a flipped first seq
// is caught as surely as a flipped delta.
func blockSum(key, deltas []byte) uint32 {
	return crc32.Update(crc32.Checksum(key, castagnoli), castagnoli, deltas)
}

// encodeBlock is the value of a block holding seqs (ascending, seqs[0]
// the key's first): uvarint deltas after the first, then CRC-32C of key
// and deltas (little-endian).
func encodeBlock(key []byte, seqs []uint64) []byte {
	var v []byte
	for i := 1; i < len(seqs); i++ {
		v = binary.AppendUvarint(v, seqs[i]-seqs[i-1])
	}
	return binary.LittleEndian.AppendUint32(v, blockSum(key, v))
}

// decodeBlock appends the seqs of the block (k, v) to dst. A sum that
// does not match, a delta that does not parse, is zero or overflows, or
// a block over the limits is damage.
func decodeBlock(k, v []byte, dst []uint64) ([]uint64, error) {
	if len(k) < 8 || len(v) < 4 || len(v)-4 > maxBlockBytes {
		return dst, fmt.Errorf("%w: posting block of %d bytes", ErrIndex, len(v))
	}
	deltas := v[:len(v)-4]
	if blockSum(k, deltas) != binary.LittleEndian.Uint32(v[len(v)-4:]) {
		return dst, fmt.Errorf("%w: posting block %x: checksum", ErrIndex, k)
	}
	seq := binary.BigEndian.Uint64(k[len(k)-8:])
	if seq == 0 {
		return dst, fmt.Errorf("%w: posting block %x: seq 0", ErrIndex, k)
	}
	dst = append(dst, seq)
	for n := 1; len(deltas) > 0; n++ {
		d, l := binary.Uvarint(deltas)
		if l <= 0 || d == 0 || seq+d < seq || n == maxBlockSeqs {
			return dst, fmt.Errorf("%w: posting block %x: bad delta", ErrIndex, k)
		}
		seq += d
		dst = append(dst, seq)
		deltas = deltas[l:]
	}
	return dst, nil
}

// putPostings appends seqs (ascending, all after any the bucket holds
// for prefix) to prefix's blocks. The last block is extended when it has
// room (read, decode, rewrite) rather than a new one begun per
// transaction: the live indexer commits every few rows, and a block per
// value per commit would cost a key, a 16-byte bbolt element header and
// a sum for a handful of seqs.
func putPostings(b *bolt.Bucket, prefix []byte, seqs []uint64) error {
	cur := b.Cursor()
	k, v := cur.Seek(blockKey(prefix, seqs[0]))
	if k == nil {
		k, v = cur.Last()
	} else {
		k, v = cur.Prev()
	}
	var all []uint64
	if isBlock(k, prefix) {
		old, err := decodeBlock(k, v, nil)
		if err != nil {
			return err
		}
		if old[len(old)-1] >= seqs[0] {
			return fmt.Errorf("%w: posting block %x ends at %d, after %d", ErrIndex, k, old[len(old)-1], seqs[0])
		}
		if len(old) < maxBlockSeqs && len(v)-4 < maxBlockBytes {
			all = append(old, seqs...)
		}
	}
	if all == nil {
		all = seqs
	}
	for len(all) > 0 {
		n, size := 1, 0
		for ; n < len(all) && n < maxBlockSeqs; n++ {
			l := uvarintLen(all[n] - all[n-1])
			if size+l > maxBlockBytes {
				break
			}
			size += l
		}
		key := blockKey(prefix, all[0])
		if err := b.Put(key, encodeBlock(key, all[:n])); err != nil {
			return fmt.Errorf("%w: %w", ErrIndex, err)
		}
		all = all[n:]
	}
	return nil
}

func uvarintLen(x uint64) int {
	n := 1
	for ; x >= 0x80; x >>= 7 {
		n++
	}
	return n
}

// Offset blocks: key (seq-1)/offBlock, value the frame offsets of the
// block's seqs from its first, as a uvarint then zigzag varint deltas
// (frames are a few hundred bytes apart: two bytes a row instead of
// four; a delta turns negative only where a block spans a segment
// boundary). The last block is extended across transactions, as time
// blocks are.

func encodeOffs(offs []uint32) []byte {
	v := binary.AppendUvarint(nil, uint64(offs[0]))
	for i := 1; i < len(offs); i++ {
		v = binary.AppendVarint(v, int64(offs[i])-int64(offs[i-1]))
	}
	return v
}

// decodeOffs decodes an offset block, which must hold want offsets (want
// < 0: any count up to offBlock). A damaged offset that still parses is
// caught when its frame is read (CRC, seq).
func decodeOffs(v []byte, want int, dst []uint32) ([]uint32, error) {
	dst = dst[:0]
	var prev int64
	for i := 0; len(v) > 0; i++ {
		var x int64
		var l int
		if i == 0 {
			u, n := binary.Uvarint(v)
			x, l = int64(u), n
		} else {
			d, n := binary.Varint(v)
			x, l = prev+d, n
		}
		if l <= 0 || x < 0 || x > 1<<32-1 || i == offBlock {
			return dst, fmt.Errorf("%w: offset block", ErrIndex)
		}
		dst = append(dst, uint32(x))
		prev = x
		v = v[l:]
	}
	if len(dst) == 0 || want >= 0 && len(dst) != want {
		return dst, fmt.Errorf("%w: offset block of %d offsets, want %d", ErrIndex, len(dst), want)
	}
	return dst, nil
}

// offsets looks up frame offsets, keeping the last block decoded:
// candidates of one query are mostly near each other.
type offsets struct {
	b     *bolt.Bucket
	block uint64
	offs  []uint32
	ok    bool
}

func (o *offsets) of(seq uint64) (uint32, error) {
	if seq == 0 {
		return 0, fmt.Errorf("%w: offset of seq 0", ErrIndex)
	}
	blk, i := (seq-1)/offBlock, int((seq-1)%offBlock)
	if !o.ok || o.block != blk {
		v := o.b.Get(u64key(blk))
		if v == nil {
			return 0, &SeqError{Seq: seq, Err: fmt.Errorf("%w: no offset", ErrIndex)}
		}
		var err error
		o.ok = false
		if o.offs, err = decodeOffs(v, -1, o.offs); err != nil {
			return 0, &SeqError{Seq: seq, Err: err}
		}
		o.block, o.ok = blk, true
	}
	if i >= len(o.offs) {
		return 0, &SeqError{Seq: seq, Err: fmt.Errorf("%w: no offset", ErrIndex)}
	}
	return o.offs[i], nil
}
