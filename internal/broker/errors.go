package broker

import "errors"

// Sentinel errors. Callers match them with errors.Is; the HTTP front maps
// each to one status in one place (httpStatus).
var (
	// ErrBadRequest: the request is malformed or out of range (400).
	ErrBadRequest = errors.New("invalid request")
	// ErrUnauthorized: the caller is not an identified agent (401).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: the caller may not use this (403).
	ErrForbidden = errors.New("forbidden")
	// ErrOverBudget: a token or KV budget refuses the request (429).
	ErrOverBudget = errors.New("over budget")
	// ErrBusy: the broker's queue is full (429).
	ErrBusy = errors.New("broker busy")
	// ErrBackend: the backend failed or broke its stream (502).
	ErrBackend = errors.New("backend error")
	// ErrClosed: the broker is shutting down (503).
	ErrClosed = errors.New("broker closed")
	// ErrAudit: the call could not be recorded before it started (503).
	ErrAudit = errors.New("audit unavailable")
)

// BackendError is an upstream's refusal with its own status and body, so a
// client error of the upstream (a 4xx) reaches the agent as it was sent.
type BackendError struct {
	Status int
	Body   []byte
}

func (e *BackendError) Error() string {
	return "backend error: upstream status " + itoa(int64(e.Status))
}

// Is makes errors.Is(err, ErrBackend) true for a BackendError.
func (e *BackendError) Is(target error) bool { return target == ErrBackend }
