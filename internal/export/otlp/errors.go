package otlp

import "errors"

// Errors.
var (
	// ErrConfig: the [export.otlp] table is not usable.
	ErrConfig = errors.New("export.otlp")
	// ErrState: the acknowledged-seq file does not belong to this chain
	// (it names a row the chain does not have, or one with another hash).
	ErrState = errors.New("export state does not match the chain")
)
