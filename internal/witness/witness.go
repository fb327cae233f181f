// Package witness submits signed checkpoints to C2SP tlog-witness
// witnesses (POST /add-checkpoint) and returns their cosignatures, so a
// verifier can require that someone outside the host saw each checkpoint
// and checked it consistent with the last one it saw: a rewritten chain
// whose new checkpoint forks from what the witness holds is refused there.
package witness

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// ErrConflict means the witness holds a different size than oldSize; Size
// in the *ConflictError says which, so the caller can prove from there.
var ErrConflict = errors.New("witness holds another tree size")

// ErrRefused means the witness refused the checkpoint (a forked or
// unverifiable checkpoint, an unknown log, a bad proof): a 4xx answer
// other than 409 and 429. Sending it again will not help.
var ErrRefused = errors.New("witness refused the checkpoint")

// ErrInconsistent is the refusal that means a fork (422): the checkpoint
// is not consistent with the one the witness holds for this log (the
// proof does not lead from its tree to ours, or the same size has
// another root). It is also ErrRefused.
var ErrInconsistent = errors.New("witness holds a checkpoint this one is not consistent with")

// ErrUnavailable means the witness could not answer now (429 pushback,
// 5xx): try again later.
var ErrUnavailable = errors.New("witness unavailable")

// StatusError is an answer other than 200 and 409.
type StatusError struct {
	Base   string // the witness URL
	Status int
	Text   string // "422 Unprocessable Entity"
	Body   string // clipped
}

func (e *StatusError) Error() string {
	what := ErrRefused
	switch {
	case e.Status == http.StatusUnprocessableEntity:
		what = ErrInconsistent
	case e.Status == http.StatusTooManyRequests || e.Status >= 500:
		what = ErrUnavailable
	}
	return fmt.Sprintf("%v: %s answered %s %q", what, e.Base, e.Text, e.Body)
}

// Is sorts the status: 422 is ErrInconsistent and ErrRefused, 429 and
// 5xx ErrUnavailable, any other ErrRefused.
func (e *StatusError) Is(target error) bool {
	unavailable := e.Status == http.StatusTooManyRequests || e.Status >= 500
	switch target {
	case ErrInconsistent:
		return e.Status == http.StatusUnprocessableEntity
	case ErrUnavailable:
		return unavailable
	case ErrRefused:
		return !unavailable
	}
	return false
}

// ConflictError is a 409 answer: the witness's tree size.
type ConflictError struct{ Size uint64 }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%v: it holds size %d", ErrConflict, e.Size)
}
func (e *ConflictError) Unwrap() error { return ErrConflict }

// maxAnswer bounds a witness's answer (cosignature lines).
const maxAnswer = 64 << 10

// Submit sends the signed checkpoint note to the witness at base (its URL
// prefix), with the consistency proof from oldSize (the size the witness
// last cosigned for this log, 0 at first), and returns the cosignature
// lines it answered ("— name base64\n" each), to store beside the note.
func Submit(ctx context.Context, c *http.Client, base string, oldSize uint64, proof [][]byte, signed []byte) ([]byte, error) {
	var body bytes.Buffer
	fmt.Fprintf(&body, "old %d\n", oldSize)
	for _, h := range proof {
		body.WriteString(base64.StdEncoding.EncodeToString(h) + "\n")
	}
	body.WriteString("\n")
	body.Write(signed)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+"/add-checkpoint", &body)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, base, err)
	}
	if len(b) > maxAnswer {
		return nil, fmt.Errorf("witness %s: answer over %d bytes", base, maxAnswer)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if !validCosignatures(b) {
			return nil, fmt.Errorf("witness %s: answer is not cosignature lines: %q", base, clip(b))
		}
		return b, nil
	case http.StatusConflict:
		n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("witness %s: 409 without a tree size: %q", base, clip(b))
		}
		return nil, &ConflictError{Size: n}
	default:
		return nil, &StatusError{Base: base, Status: resp.StatusCode, Text: resp.Status, Body: clip(b)}
	}
}

// validCosignatures: one or more note signature lines, nothing else.
func validCosignatures(b []byte) bool {
	if len(b) == 0 || b[len(b)-1] != '\n' {
		return false
	}
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if !strings.HasPrefix(l, "— ") || strings.Count(l, " ") != 2 {
			return false
		}
	}
	return true
}

func clip(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}
