package audit

import (
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
