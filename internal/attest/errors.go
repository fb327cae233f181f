package attest

import "errors"

var (
	// ErrSignature means the envelope is malformed or not signed by the host key.
	ErrSignature = errors.New("attestation signature invalid")
	// ErrStatement means the payload is not an in-toto v1 Statement.
	ErrStatement = errors.New("attestation is not an in-toto v1 statement")
	// ErrPredicate means the predicate type or the claims are wrong.
	ErrPredicate = errors.New("attestation predicate invalid")
	// ErrSubject means the subject does not match the claims.
	ErrSubject = errors.New("attestation subject does not match its claims")
	// ErrUntrustedSigner means the manifest signer key is not in the trust store.
	ErrUntrustedSigner = errors.New("manifest signer key is not trusted")
	// ErrInvalidClaims means Sign was given claims it cannot attest faithfully.
	ErrInvalidClaims = errors.New("invalid attestation claims")
)
