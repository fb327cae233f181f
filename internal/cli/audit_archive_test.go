package cli

import (
	"testing"
	"time"
)

// TestParseBefore: --before takes a date, RFC 3339 or an age, and
// refuses anything else with the forms it wants.
func TestParseBefore(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2026-11-01":                time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		"2026-11-01T08:30:00+01:00": time.Date(2026, 11, 1, 7, 30, 0, 0, time.UTC),
		"30d":                       now.Add(-30 * 24 * time.Hour),
		"12h":                       now.Add(-12 * time.Hour),
	} {
		got, err := parseBefore(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseBefore(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0d", "-3d", "yesterday", "2026-13-01", "-1h", "99999d"} {
		if _, err := parseBefore(in, now); err == nil {
			t.Errorf("parseBefore(%q) accepted", in)
		}
	}
}
