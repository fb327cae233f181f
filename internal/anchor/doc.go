// Package anchor keeps the audit chain's latest checkpoint where the
// host's root cannot rewrite it unnoticed. It has two modes; the daemon
// picks tpm when a TPM is reachable and fss otherwise (docs/audit-anchoring.md
// says exactly what each protects against).
//
// # tpm
//
// A TPM 2.0 NV index of type extend (TPM_NT_EXTEND, SHA-256) at
// DefaultIndex. Each anchored checkpoint is an Entry (tree size, Merkle
// root, time), appended with fsync to STATE/chain/anchor.log and then
// extended into the index: value = SHA-256(value || entry bytes). Nobody,
// root included, can set an extend index to a chosen value: a value only
// ever absorbs more entries. A verifier recomputes the digest from
// anchor.log and compares it with the TPM, then checks every anchored
// (size, root) against the chain. Rewriting or rolling back anything
// anchored therefore needs the TPM's owner authorization (to undefine and
// redefine the index) or a TPM reset. NV writes are rate-bounded
// (MinInterval, default 5 minutes) because TPM NV wears out.
//
// # fss
//
// Forward-secure sealing, after journald's FSS. A random 32-byte seed k_0
// is written once to STATE/keys/fss.seed, for the user to move off the
// host. Seal number i is a keyed BLAKE3 MAC with k_i over (i, size, root);
// then k_{i+1} = BLAKE3-derive-key("coconut fss evolve v1", k_i) replaces
// k_i in STATE/keys/fss.key (overwritten in place, fsynced), so the key
// that sealed i is gone. Seals go to STATE/chain/seals.log. With the seed,
// VerifySeals recomputes every key, checks every seal, and checks the
// current key file, so dropping trailing seals is caught too.
//
// Both files are fixed-size framed records with a CRC32C; decoders reject
// anything malformed and a crash can leave only a torn last record.
package anchor
