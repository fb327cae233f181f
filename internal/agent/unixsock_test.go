package agent

import (
	"slices"
	"testing"

	"github.com/coconut-os/coconut/internal/capability"
)

func TestImplicitCaps(t *testing.T) {
	m := testManager(t)
	m.cfg.Socket = "/run/coconut/coconut.sock"
	unixOf := func(caps []capability.Cap) []string {
		var out []string
		for _, c := range caps {
			if a, ok := c.UnixSocket(); ok {
				out = append(out, a)
			}
		}
		return out
	}
	with, _ := capability.ParseAll([]string{"fs.read:/tmp/**", "inference:model=*", "net.connect:unix:/run/app.sock"})
	without, _ := capability.ParseAll([]string{"net.connect:10.0.0.1:443"})
	tests := []struct {
		name       string
		caps       []capability.Cap
		wantBroker bool
		extra      []string
	}{
		{"inference agent", with, true, []string{"/run/app.sock"}},
		{"no inference", without, false, nil},
		{"empty bundle", nil, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := slices.Clone(tt.caps)
			got := unixOf(m.implicitCaps(tt.caps))
			want := append(slices.Clone(tt.extra), hostUnixSockets...)
			want = append(want, m.cfg.Socket)
			if tt.wantBroker {
				want = append(want, m.cfg.Broker.Socket)
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("unix sockets = %q, want %q", got, want)
			}
			if !slices.Equal(before, tt.caps) {
				t.Fatalf("the caller's slice was changed: %v", tt.caps)
			}
		})
	}
}
