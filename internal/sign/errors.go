package sign

import "errors"

var (
	// ErrUnsigned means a manifest has no signature.
	ErrUnsigned = errors.New("manifest is not signed: no .sig file; sign it with coconut manifest sign")
	// ErrMalformedSignature means a signature file is not a valid Coconut DSSE envelope.
	ErrMalformedSignature = errors.New("malformed signature")
	// ErrUntrustedKey means no signature is made by a key trusted for the caller.
	ErrUntrustedKey = errors.New("untrusted signing key")
	// ErrBadSignature means a trusted key's signature does not verify.
	ErrBadSignature = errors.New("signature does not verify")
	// ErrAltered means the signature is valid but the manifest bytes differ.
	ErrAltered = errors.New("manifest was altered after signing")

	// ErrKeyExists means GenerateKey would overwrite an existing key file.
	ErrKeyExists = errors.New("key file already exists")
	// ErrKeyPermissions means a private key file is readable by group or other.
	ErrKeyPermissions = errors.New("private key file is readable by group or other")
	// ErrMalformedKey means a key file or PEM block is not an ed25519 key.
	ErrMalformedKey = errors.New("malformed key")

	// ErrInsecureTrustDir means the trust directory is writable by group or other.
	ErrInsecureTrustDir = errors.New("trust directory is writable by group or other")
	// ErrMalformedTrustEntry means a file in the trust directory is not a valid entry.
	ErrMalformedTrustEntry = errors.New("malformed trust entry")
	// ErrTrustConflict means a key is already trusted on behalf of another user.
	ErrTrustConflict = errors.New("key already trusted by another user")
)
