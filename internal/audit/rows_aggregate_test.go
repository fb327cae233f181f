package audit

import (
	"errors"
	"testing"
	"time"
)

// TestCapDenyAggregate: the aggregate row keeps its count, kseq range and
// time span in Detail, encodes canonically, and DenyCount reads its count
// (1 for a single deny).
func TestCapDenyAggregate(t *testing.T) {
	first := time.Date(2026, 3, 1, 12, 0, 0, 5, time.UTC)
	r := CapDenyAggregate(7, "fs.read", "/etc/shadow", 134, 42, 99, 10, 200, first, first.Add(time.Second), map[string]string{"source": "supervisor"})
	want := map[string]string{"source": "supervisor", "count": "99", "first_kseq": "10", "last_kseq": "200",
		"first_time": "2026-03-01T12:00:00.000000005Z", "last_time": "2026-03-01T12:00:01.000000005Z"}
	for k, v := range want {
		if r.Detail[k] != v {
			t.Errorf("detail %s = %q, want %q", k, r.Detail[k], v)
		}
	}
	if r.Type != "cap.deny" || r.Result != ResultDeny || r.KSeq != 200 || r.Errno != 134 {
		t.Errorf("row %+v", r)
	}
	if n := DenyCount(r); n != 99 {
		t.Errorf("DenyCount = %d, want 99", n)
	}
	if n := DenyCount(CapDeny(7, "fs.read", "/x", 134, 1, 3, nil)); n != 1 {
		t.Errorf("DenyCount of a single deny = %d", n)
	}
	r.Detail["count"] = "0"
	if n := DenyCount(r); n != 1 {
		t.Errorf("DenyCount of a bad count = %d, want 1", n)
	}
}

// TestCapUseAggregate: the allowed-use aggregate is a cap.use row (allow)
// with the same count, kseq range and span, read by RowCount; it encodes
// canonically and does not change the caller's detail map.
func TestCapUseAggregate(t *testing.T) {
	first := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	in := map[string]string{"source": "supervisor", "syscall": "execve"}
	r := CapUseAggregate(7, "fs.exec", "/usr/bin/true", 42, 1499, 11, 3000, first, first.Add(2*time.Second), in)
	if r.Type != TypeCapUse || r.Result != ResultAllow || r.KSeq != 3000 || r.Errno != 0 || r.Cap != "fs.exec" {
		t.Errorf("row %+v", r)
	}
	for k, v := range map[string]string{"count": "1499", "first_kseq": "11", "last_kseq": "3000", "syscall": "execve",
		"first_time": "2026-03-01T12:00:00Z", "last_time": "2026-03-01T12:00:02Z"} {
		if r.Detail[k] != v {
			t.Errorf("detail %s = %q, want %q", k, r.Detail[k], v)
		}
	}
	if len(in) != 2 {
		t.Errorf("the caller's detail was changed: %v", in)
	}
	if n := RowCount(r); n != 1499 {
		t.Errorf("RowCount = %d", n)
	}
	if n := RowCount(CapUse(7, "fs.exec", "/usr/bin/true", 1, 1, nil)); n != 1 {
		t.Errorf("RowCount of a single use = %d", n)
	}
	if err := validate(&r); err != nil {
		t.Errorf("validate: %v", err)
	}
}

// TestInferenceCallAggregate: the broker's aggregate is an allowed
// inference.call row whose detail carries the summed tokens.
func TestInferenceCallAggregate(t *testing.T) {
	first := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	r := InferenceCallAggregate(9, "sim-small", 199, 2388, 199, first, first.Add(time.Second), map[string]string{"endpoint": "chat", "stream": "false"})
	if r.Type != TypeInferenceCall || r.Result != ResultAllow || r.Object != "sim-small" || r.Cap != "inference" {
		t.Errorf("row %+v", r)
	}
	for k, v := range map[string]string{"count": "199", "tokens_in": "2388", "tokens_out": "199", "result": "ok", "endpoint": "chat", "stream": "false"} {
		if r.Detail[k] != v {
			t.Errorf("detail %s = %q, want %q", k, r.Detail[k], v)
		}
	}
	if RowCount(r) != 199 {
		t.Errorf("RowCount = %d", RowCount(r))
	}
}

// TestChainErr: Err is nil on a healthy chain, ErrLowSpace when the
// filesystem has less than the reserve (a reserve no disk has), nil again
// once the reserve is lowered, and ErrClosed after Close.
func TestChainErr(t *testing.T) {
	c := openT(t, t.TempDir(), Options{})
	if err := c.Err(); err != nil {
		t.Fatalf("fresh chain: %v", err)
	}
	c.SetReserve(1 << 62)
	if err := c.Err(); !errors.Is(err, ErrLowSpace) {
		t.Fatalf("reserve of 4 EiB: %v, want ErrLowSpace", err)
	}
	if err := c.Err(); !errors.Is(err, ErrLowSpace) {
		t.Fatalf("cached reading: %v, want ErrLowSpace", err)
	}
	c.SetReserve(1)
	if err := c.Err(); err != nil {
		t.Fatalf("reserve of 1 byte: %v", err)
	}
	c.Close()
	if err := c.Err(); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed chain: %v, want ErrClosed", err)
	}
}
