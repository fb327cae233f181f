package loadgen

import "errors"

var (
	// ErrBadChunk: a server-sent event line is not an OpenAI stream chunk.
	ErrBadChunk = errors.New("malformed stream chunk")
	// ErrStatus: the server answered with a non-200 status.
	ErrStatus = errors.New("unexpected status")
	// ErrConfig: a benchmark or workload parameter is out of range.
	ErrConfig = errors.New("bad benchmark config")
)
