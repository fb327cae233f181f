// Package attest produces and checks agent attestations: an in-toto
// Statement (v1) wrapped in a DSSE envelope signed by the host key, binding
// an AID to what authorized it (the user, the signed manifest and its
// publisher key) and what it runs (the measured binary and script, command,
// user, capabilities and how they are enforced).
//
// An attestation is verifiable offline with only the host's public key and,
// optionally, the trust store. The subject is "agent:<host_id>/<aid>" with
// the binary's SHA-256 as digest; the predicate (PredicateType) is Claims.
//
// Verify fails closed; each failure wraps one sentinel: ErrSignature (the
// envelope is malformed or not validly signed by the host key),
// ErrStatement (not an in-toto v1 Statement), ErrPredicate (wrong predicate
// type or invalid claims), ErrSubject (subject does not match the claims),
// ErrUntrustedSigner (the manifest's publisher key is not trusted). Errors
// from package sign are wrapped too, so errors.Is works for both.
package attest
