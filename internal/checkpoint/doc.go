// Package checkpoint proves records of the audit chain to third parties.
//
// It keeps an RFC 6962 Merkle tree (SHA-256, github.com/transparency-dev/merkle)
// over the chain's records, leaf i being the canonical bytes of the record
// with seq i+1, exactly the bytes the BLAKE3 chain hashes. Every Every
// records or Interval (whichever comes first, and only when the tree grew)
// it signs a checkpoint in the C2SP tlog-checkpoint format as a C2SP signed
// note (golang.org/x/mod/sumdb/note) with the host's ed25519 key:
//
//	coconut/ed25519:<key id>     origin, also the note's key name
//	<tree size>
//	<base64 root hash>
//
//	— coconut/ed25519:<key id> <base64 key hash || signature>
//
// # Storage
//
// Signed checkpoints are appended to STATE/chain/checkpoints.log beside the
// segments (framed: length u32 LE | note | CRC32C u32 LE, fsynced). They are
// part of the evidence and never deleted.
//
// The tree itself is a cache, rebuildable from the chain, kept under
// STATE/index/merkle: one append-only file per level L holding, in order,
// the hashes of every complete subtree of 2^L leaves. The compact range
// (github.com/transparency-dev/merkle/compact) reports each node as it
// completes, so every file only ever grows at its end, and an inclusion or
// consistency proof for any size is a handful of reads at known offsets
// (O(log n)), never a rescan of the leaves. The cost is 64 bytes of disk
// per record (32 for the leaf, 32 for all levels above together). The
// files are not fsynced: after a crash they are cut to a consistent size,
// checked against the latest signed checkpoint's root, and caught up from
// the chain (or rebuilt from scratch when they disagree). Every proof is
// checked against the signed root before it is handed out, so a damaged
// cache yields an error, never a false proof.
//
// # Verification
//
// VerifyInclusion checks a Proof offline with only the host's public key.
// VerifyConsistency checks that a later checkpoint extends an earlier one.
// VerifyLog recomputes the tree from a chain directory and checks every
// stored checkpoint: signature, growing sizes, and root equal to the tree
// at that size (which implies each is consistent with the previous one).
package checkpoint
