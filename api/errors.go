package api

import (
	"errors"
	"fmt"
	"net/http"
)

// Error codes on the wire. Each maps to one HTTP status and to one sentinel
// below, so errors.Is works on both sides of the socket.
const (
	CodeInvalid       = "invalid"         // 400: the request or manifest is wrong
	CodeUnauthorized  = "denied"          // 403: the caller may not do this
	CodeNotFound      = "not_found"       // 404
	CodeConflict      = "conflict"        // 409: e.g. the agent already ended
	CodeTooLarge      = "too_large"       // 413
	CodeECapability   = "ecapability"     // 403 with the capability model's answer
	CodeUnimplemented = "not_implemented" // 501: the part that answers it is not built yet
	CodeInternal      = "internal"        // 500
	CodeSignature     = "signature"       // 400: unsigned, untrusted or altered manifest
	CodeUnavailable   = "unavailable"     // 503: e.g. the audit chain refuses appends
)

// Sentinels, one per code.
var (
	ErrInvalid       = errors.New("invalid request")
	ErrDenied        = errors.New("permission denied")
	ErrNotFound      = errors.New("not found")
	ErrConflict      = errors.New("conflict")
	ErrTooLarge      = errors.New("request too large")
	ErrECapability   = errors.New("capability denied")
	ErrUnimplemented = errors.New("not implemented")
	ErrInternal      = errors.New("internal error")
	ErrSignature     = errors.New("manifest signature refused")
	ErrUnavailable   = errors.New("unavailable")
)

var codes = []struct {
	code   string
	status int
	err    error
}{
	{CodeInvalid, http.StatusBadRequest, ErrInvalid},
	{CodeSignature, http.StatusBadRequest, ErrSignature},
	{CodeUnauthorized, http.StatusForbidden, ErrDenied},
	{CodeECapability, http.StatusForbidden, ErrECapability},
	{CodeNotFound, http.StatusNotFound, ErrNotFound},
	{CodeConflict, http.StatusConflict, ErrConflict},
	{CodeTooLarge, http.StatusRequestEntityTooLarge, ErrTooLarge},
	{CodeUnimplemented, http.StatusNotImplemented, ErrUnimplemented},
	{CodeUnavailable, http.StatusServiceUnavailable, ErrUnavailable},
	{CodeInternal, http.StatusInternalServerError, ErrInternal},
}

// ErrorBody is the JSON body of every non-2xx answer.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail carries the code and a one-line sentence for a human.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Status returns the HTTP status and wire code for err: the first sentinel
// err matches, else internal.
func Status(err error) (int, string) {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.status, c.code
		}
	}
	return http.StatusInternalServerError, CodeInternal
}

// RemoteError is an error answered by the daemon. It matches the sentinel of
// its code with errors.Is.
type RemoteError struct {
	Status  int
	Code    string
	Message string
}

func (e *RemoteError) Error() string { return e.Message }

func (e *RemoteError) Is(target error) bool {
	for _, c := range codes {
		if c.code == e.Code {
			return target == c.err
		}
	}
	return target == ErrInternal
}

// Errorf wraps a sentinel with a sentence: Errorf(ErrNotFound, "agent %d", aid).
func Errorf(sentinel error, format string, args ...any) error {
	return &wrapped{msg: fmt.Sprintf(format, args...), err: sentinel}
}

type wrapped struct {
	msg string
	err error
}

func (w *wrapped) Error() string { return w.msg }
func (w *wrapped) Unwrap() error { return w.err }
