// Package gate writes the audit row an operation depends on: the one
// "append or fail" of coconutd. If the chain cannot take the row, the
// operation it records must not happen, and the error (api.ErrUnavailable,
// 503 on the socket) says so.
package gate

import (
	"context"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/audit"
)

// Appender is the chain (*audit.Chain).
type Appender interface {
	Append(ctx context.Context, r audit.Record) (audit.Record, error)
}

// Append appends r to c. Its error means the operation r records was not
// performed and must not be: the caller returns it instead of going on.
func Append(ctx context.Context, c Appender, r audit.Record) error {
	if _, err := c.Append(ctx, r); err != nil {
		return api.Errorf(api.ErrUnavailable, "audit chain refused a row (%s): %v; the operation was not performed", r.Type, err)
	}
	return nil
}
