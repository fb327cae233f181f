package gate

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/audit"
)

// TestAppend: a row the chain takes is there; a row a closed chain refuses
// is api.ErrUnavailable naming the row's type, and nothing is written.
func TestAppend(t *testing.T) {
	dir := t.TempDir()
	c, err := audit.Open(dir, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := Append(context.Background(), c, audit.DaemonStop("test", 1)); err != nil {
		t.Fatalf("append: %v", err)
	}
	rows, err := c.Query(audit.Query{Type: audit.TypeDaemonStop})
	if err != nil || len(rows) != 1 {
		t.Fatalf("rows %v, %v", rows, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	err = Append(context.Background(), c, audit.TrustAdd("ed25519:x", 0))
	if !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "(trust.add)") || !strings.Contains(err.Error(), "the operation was not performed") {
		t.Fatalf("append to a closed chain: %v", err)
	}
	if status, code := api.Status(err); status != 503 || code != api.CodeUnavailable {
		t.Errorf("status %d %s, want 503 unavailable", status, code)
	}
}
