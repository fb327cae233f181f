package checkpoint

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/audit"
)

// rewrite builds, in a new state dir, a chain that is internally
// consistent (re-hashed) but differs from e's at record bad (1-based), or
// stops before record drop when drop > 0. It copies e's checkpoint log.
func rewrite(t *testing.T, e *env, n, bad, drop int) string {
	t.Helper()
	dir := t.TempDir()
	cd := filepath.Join(dir, "chain")
	c, err := audit.Open(cd, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if drop > 0 && i+1 >= drop {
			break
		}
		r := testRec(i)
		if i+1 == bad {
			r.Result = audit.ResultDeny
		}
		if _, err := c.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	b, err := os.ReadFile(filepath.Join(e.chainDir(), LogName))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cd, LogName), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestRewrittenChain: a chain recomputed consistently by someone without
// the host key (or before the checkpoints they cannot re-sign) fails
// against the signed checkpoints, and the daemon refuses to start on it.
func TestRewrittenChain(t *testing.T) {
	e := newEnv(t, 25)
	e.fill(t, 0, 200)
	e.close(t)
	if _, _, err := VerifyChain(e.chainDir(), e.pub(), nil); err != nil {
		t.Fatalf("genuine chain: %v", err)
	}
	tests := []struct {
		name          string
		bad, drop     int
		firstBadAtMax uint64
	}{
		{"record 60 rewritten", 60, 0, 60},
		{"record 1 rewritten", 1, 0, 1},
		{"tail dropped after 150", 0, 151, 151},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := rewrite(t, e, 200, tt.bad, tt.drop)
			vr, _, err := VerifyChain(filepath.Join(dir, "chain"), e.pub(), nil)
			if err == nil {
				t.Fatal("rewritten chain verified")
			}
			if vr.FirstBad == 0 || vr.FirstBad > tt.firstBadAtMax {
				t.Fatalf("first bad %d, want 1..%d (%v)", vr.FirstBad, tt.firstBadAtMax, err)
			}
			l, err := New(Config{ChainDir: filepath.Join(dir, "chain"), TreeDir: filepath.Join(dir, "m"), Key: e.key, Interval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			c, err := audit.Open(filepath.Join(dir, "chain"), audit.Options{Observer: l})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := l.Start(c); !errors.Is(err, ErrMismatch) {
				t.Fatalf("Start on a rewritten chain: %v, want ErrMismatch", err)
			}
		})
	}
}
