package capability

import "errors"

// Sentinel errors; every error returned by Parse wraps exactly one of them.
var (
	// ErrSyntax: the string is not of the form DOMAIN.VERB[:SCOPE].
	ErrSyntax = errors.New("capability syntax")
	// ErrUnknownDomain: the domain is not fs, net, inference, cap or x.
	ErrUnknownDomain = errors.New("unknown capability domain")
	// ErrUnknownVerb: the domain is known but the verb is not.
	ErrUnknownVerb = errors.New("unknown capability verb")
	// ErrScope: the scope is missing or malformed for the capability.
	ErrScope = errors.New("capability scope")
)
