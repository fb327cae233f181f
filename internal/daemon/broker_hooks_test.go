package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/broker"
)

// Each broker call result lands as the row type and result that audit
// queries rely on: refusals before the backend are deny rows, a streamed
// call's admission is its own allow row.
func TestBrokerAuditRows(t *testing.T) {
	chain, err := audit.Open(t.TempDir(), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { chain.Close() })
	s := &brokerSvc{chain: chain}
	tests := []struct {
		name     string
		call     broker.Call
		typ, res string
		errno    int
	}{
		{"ok", broker.Call{Result: broker.ResultOK, Reserved: 10}, "inference.call", audit.ResultAllow, 0},
		{"admitted stream", broker.Call{Result: broker.ResultAdmitted, Reserved: 10, Stream: true}, "inference.admit", audit.ResultAllow, 0},
		{"denied", broker.Call{Result: broker.ResultDenied}, "inference.call", audit.ResultDeny, int(api.ECapability)},
		{"budget", broker.Call{Result: broker.ResultBudget}, "inference.call", audit.ResultDeny, 0},
		{"busy", broker.Call{Result: broker.ResultBusy}, "inference.call", audit.ResultDeny, 0},
		{"cancelled while queued", broker.Call{Result: broker.ResultCancelled}, "inference.call", audit.ResultDeny, 0},
		{"cancelled while running", broker.Call{Result: broker.ResultCancelled, Reserved: 10}, "inference.call", audit.ResultAllow, 0},
		{"backend error", broker.Call{Result: broker.ResultBackendError, Reserved: 10}, "inference.call", audit.ResultAllow, 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			aid := uint64(100 + i)
			tt.call.AID, tt.call.Model = aid, "m"
			if err := s.audit(context.Background(), tt.call); err != nil {
				t.Fatal(err)
			}
			rows, err := chain.Query(audit.Query{AID: &aid})
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 1 {
				t.Fatalf("%d rows, want 1", len(rows))
			}
			r := rows[0]
			if r.Type != tt.typ || r.Result != tt.res || r.Errno != tt.errno || r.Detail["result"] != tt.call.Result {
				t.Fatalf("row %s %s errno %d detail %v, want %s %s errno %d", r.Type, r.Result, r.Errno, r.Detail, tt.typ, tt.res, tt.errno)
			}
		})
	}
}

// TestRowBudget: a burst of host refusals is written, the rest counted and
// reported on the next row written once the budget refills.
func TestRowBudget(t *testing.T) {
	var b rowBudget
	now := time.Unix(1000, 0)
	written := 0
	for i := 0; i < 100; i++ {
		if _, ok := b.take(now); ok {
			written++
		}
	}
	if written != hostRowBurst {
		t.Fatalf("burst: %d rows written, want %d", written, hostRowBurst)
	}
	n, ok := b.take(now.Add(time.Second))
	if !ok || n != 100-hostRowBurst {
		t.Fatalf("after a second: ok %v, suppressed %d, want %d", ok, n, 100-hostRowBurst)
	}
	if n, ok := b.take(now.Add(time.Second)); !ok || n != 0 {
		t.Fatalf("next row: ok %v, suppressed %d, want 0", ok, n)
	}
}
