// Package sign holds Coconut's signing primitives: ed25519 key files, DSSE
// envelopes, detached manifest signatures and the host trust store.
//
// A manifest's .sig file is a DSSE envelope whose payload is a small digest
// record ({"name","sha256","size"}) rather than the manifest itself, so the
// manifest stays a plain, editable YAML file and the signature stays small.
//
// Verification fails closed. Every failure wraps exactly one sentinel error so
// that callers can tell the cases apart with errors.Is:
//
//   - ErrUnsigned: there is no signature at all.
//   - ErrMalformedSignature: the .sig is not a canonical Coconut DSSE envelope.
//   - ErrUntrustedKey: no signature is by a key trusted for the caller.
//   - ErrBadSignature: a trusted key's signature does not verify.
//   - ErrAltered: the signature is good but the manifest changed after signing.
//
// Envelopes are accepted only in the exact byte form SignEnvelope writes
// (compact JSON, canonical standard base64, one optional trailing newline):
// an envelope has exactly one valid encoding, so no byte of it can change
// without the change being rejected.
package sign
