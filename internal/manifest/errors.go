package manifest

import (
	"errors"
	"fmt"
	"strconv"
)

// ErrInvalid is matched by every *Error: the manifest was refused.
var ErrInvalid = errors.New("invalid manifest")

// Error is one problem at one place in a manifest. Line is 1-based; 0 when
// the problem has no line (empty input, say).
type Error struct {
	File  string
	Line  int
	Field string
	Msg   string
}

// Error formats as FILE:LINE: FIELD: MSG, leaving out the parts that are
// empty or zero.
func (e *Error) Error() string {
	s := e.File
	if e.Line > 0 {
		s += ":" + strconv.Itoa(e.Line)
	}
	if s != "" {
		s += ": "
	}
	if e.Field != "" {
		s += e.Field + ": "
	}
	return s + e.Msg
}

// Is makes errors.Is(err, ErrInvalid) true for every *Error.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// Errorf builds an *Error; the daemon uses it to report its own findings
// (a missing binary, a refused user) in the same FILE:LINE: FIELD form.
func Errorf(file string, line int, field, format string, args ...any) *Error {
	return &Error{File: file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)}
}
