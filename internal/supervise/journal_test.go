package supervise

import "testing"

// TestContinuable: a recorded allowed attribute change is never answered
// CONTINUE from its row after a restart; opens and execs may be.
func TestContinuable(t *testing.T) {
	for _, c := range []struct {
		name string
		want bool
	}{
		{"openat", true}, {"execve", true}, {"rename", true},
		{"chmod", false}, {"fchownat", false}, {"setxattr", false}, {"fremovexattr", false}, {"utimensat", false},
		{"", false},
	} {
		if got := Continuable(c.name); got != c.want {
			t.Errorf("Continuable(%q) = %v, want %v", c.name, got, c.want)
		}
	}
}
