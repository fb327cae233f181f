package checkpoint

import "errors"

var (
	// ErrBadNote means a signed note or checkpoint body is malformed or its
	// signature does not verify with the host key.
	ErrBadNote = errors.New("bad checkpoint note")
	// ErrBadProof means a proof is malformed or does not verify.
	ErrBadProof = errors.New("bad proof")
	// ErrNoCheckpoint means no checkpoint covers the record yet.
	ErrNoCheckpoint = errors.New("no checkpoint covers this record yet")
	// ErrNotFound means the record is not in the chain.
	ErrNotFound = errors.New("no such record")
	// ErrMismatch means a stored checkpoint disagrees with the chain.
	ErrMismatch = errors.New("checkpoint does not match the chain")
	// ErrBadLog means the checkpoint log file is corrupt.
	ErrBadLog = errors.New("corrupt checkpoint log")
	// ErrClosed means the log was closed.
	ErrClosed = errors.New("checkpoint log closed")
)
