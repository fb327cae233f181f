package audit

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrBroken means a write or fsync of the chain failed. The chain refuses
	// every later append; the caller must refuse the operation it wanted to
	// record, and the daemon must reopen the chain to recover.
	ErrBroken = errors.New("audit chain broken")
	// ErrClosed means the chain was closed.
	ErrClosed = errors.New("audit chain closed")
	// ErrLocked means another process holds the chain directory open for writing.
	ErrLocked = errors.New("audit chain locked by another writer")
	// ErrInvalidRecord means a record cannot be appended as given.
	ErrInvalidRecord = errors.New("invalid record")
	// ErrNonCanonical means a stored record is not in canonical form.
	ErrNonCanonical = errors.New("record not in canonical form")
	// ErrBadQuery means a query is malformed.
	ErrBadQuery = errors.New("bad query")

	// ErrBadSegmentName means a *.seg file name is not a 20-digit first seq.
	ErrBadSegmentName = errors.New("bad segment name")
	// ErrBadHeader means a segment header is short, has a bad magic or CRC, or
	// does not match the segment's name or its predecessor.
	ErrBadHeader = errors.New("bad segment header")
	// ErrTornFrame means a segment ends in the middle of a frame.
	ErrTornFrame = errors.New("torn frame")
	// ErrFrameLength means a frame's length field is zero or above MaxPayload.
	ErrFrameLength = errors.New("bad frame length")
	// ErrFrameCRC means a frame's CRC32C does not match its bytes.
	ErrFrameCRC = errors.New("crc mismatch")
	// ErrTornTail means a segment ends in a torn frame (Verify reports it;
	// Open cuts it from the last segment).
	ErrTornTail = errors.New("torn tail")
	// ErrHashMismatch means a frame's head is not BLAKE3(previous head ||
	// record bytes).
	ErrHashMismatch = errors.New("hash mismatch: record altered or reordered")
	// ErrSeqMissing means a sequence number is skipped.
	ErrSeqMissing = errors.New("missing")
	// ErrIndex means the query index does not match the chain; it is a
	// cache, so the chain wins and the index is rebuilt.
	ErrIndex = errors.New("query index inconsistent")
	// ErrIndexStale means a query index was made for another state of
	// the chain (it is rebuilt).
	ErrIndexStale = errors.New("query index stale")
	// ErrBadArchive means the archive manifest (ARCHIVE.json) is
	// malformed: readers refuse the chain rather than guess.
	ErrBadArchive = errors.New("bad archive manifest")
	// ErrArchiveMissing means a compressed or archived segment the
	// manifest lists is not where it says.
	ErrArchiveMissing = errors.New("archived segment missing")
	// ErrArchiveDamaged means an archived segment's size, BLAKE3 sum or
	// content is not what the manifest recorded.
	ErrArchiveDamaged = errors.New("archived segment damaged")
	// ErrSeqOrder means a sequence number repeats or goes backwards.
	ErrSeqOrder = errors.New("out of order")
	// ErrDeleted means a row asked for was deleted by the user (`coconut
	// audit archive --delete`); the error is a *DeletedError.
	ErrDeleted = errors.New("row deleted")
)

// DeletedError names a deleted row and the deletion that removed it.
type DeletedError struct {
	Seq uint64
	At  time.Time
	By  string
}

func (e *DeletedError) Error() string {
	return fmt.Sprintf("row %d was deleted on %s by `coconut audit archive --delete` (%s)", e.Seq, e.At.UTC().Format(time.RFC3339), e.By)
}

func (e *DeletedError) Is(target error) bool { return target == ErrDeleted }

// SeqError names the first bad record of a chain: Seq is the sequence
// number expected at that position.
type SeqError struct {
	Seq uint64
	Err error
}

func (e *SeqError) Error() string { return fmt.Sprintf("seq %d: %v", e.Seq, e.Err) }

func (e *SeqError) Unwrap() error { return e.Err }

// FrameError is a framing fault at a byte offset of a segment file. Len is
// the declared payload length when it could be read.
type FrameError struct {
	Offset int64
	Len    uint32
	Err    error
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("frame at offset %d: %v", e.Offset, e.Err)
}

func (e *FrameError) Unwrap() error { return e.Err }
