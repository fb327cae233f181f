// Package audit is the audit chain: an append-only, BLAKE3-linked log of
// Records kept in segment files under one directory (STATE_DIR/chain). Every
// spawn, attestation and state change of every agent is a row here.
//
// # Record bytes
//
// A record's canonical bytes (RecordBytes) are the compact JSON object
//
//	{"seq":N,"time":T,"aid":N,"type":S,"cap":S,"object":S,"result":S,
//	 "errno":N,"pid":N,"kseq":N[,"detail":{...}]}
//
// with the fields in exactly this order, no whitespace, strings escaped as
// Go's encoding/json escapes them (including \u003c, \u003e, \u0026), time
// as UTC RFC 3339 with exactly nine fraction digits and a literal Z
// ("2026-03-01T12:00:00.000000000Z"), "detail" omitted when empty and its
// keys sorted, and no "hash". Strings are valid UTF-8; result is "allow",
// "deny" or "" (an event that decides nothing). DecodeRecord accepts only
// these bytes, so a record has one byte form and one hash.
//
// # Linking
//
//	head_0 = 32 zero bytes (Genesis)
//	head_n = BLAKE3-256(head_{n-1} || record_bytes_n)
//
// Record.Hash (the "hash" of an audit row) is hex(head_n). Seqs start at 1
// and are contiguous across segments.
//
// # Segments
//
// The directory holds segment files named by their first seq, zero-padded to
// 20 digits: 00000000000000000001.seg. A segment is a 52-byte header
//
//	magic "COCOAUD1" | first seq u64 LE | head before first seq (32 bytes) |
//	CRC32C (Castagnoli) u32 LE of the preceding 48 bytes
//
// followed by frames, one per record:
//
//	length u32 LE | record bytes (length, 1..MaxPayload) | head_n (32 bytes) |
//	CRC32C u32 LE over length||record bytes||head_n
//
// A new segment is started once the active one would pass
// Options.SegmentBytes; it is written with only its header to
// NAME.seg.tmp, fsynced and renamed, so no segment has a torn header. The
// header's previous head lets the last segment be checked alone. Nothing
// is ever deleted. Merkle proofs and signed checkpoints
// (internal/checkpoint) follow the chain as its Observer and read records
// with Payloads.
//
// # Durability and failure
//
// Append returns after the record is written and fsynced. Appends are group
// committed: while one batch is written and fdatasynced (one write, one
// sync), the writer frames and hashes every request that arrives into the
// next batch; records are encoded without reflection. If a
// write or fsync fails, the chain is broken: that batch and every later
// Append fail with ErrBroken, and the caller must refuse the operation it
// wanted to record. Reopening the chain recovers.
//
// Open checks the last segment (every one with Options.VerifyAll). A torn
// tail — what a crash mid-write leaves at the end of the last segment: a
// short frame, or a frame with a bad CRC or a zero length followed by
// nothing but zeros — is cut (truncate, fsync) and a "chain.truncated"
// record is appended whose detail gives the segment, offset and bytes cut.
// Only unacknowledged appends can be in a torn tail. Any other bad frame or
// record makes Open fail with a *SeqError naming the expected seq. Verify
// checks a whole directory offline and reports a torn tail as an error.
//
// # Reading
//
// Query reads up to the last fsynced record and checks framing, CRCs and
// canonical form but not linkage, which is Verify's job. With
// Options.IndexDir, queries read only candidate frames through the on-disk
// query index (diskindex.go: by aid, type, capability, result and time,
// tailing the chain in the background, rebuilt when damaged); without it
// they scan the segments in order. Follow streams the matching records after
// AfterSeq and then new ones; a follower more than FollowBuffer records
// behind is dropped (its channel closes after a gapless prefix) and resumes
// with AfterSeq set to the last seq it got.
package audit
