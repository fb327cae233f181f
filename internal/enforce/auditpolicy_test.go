package enforce

import (
	"testing"

	"github.com/coconut-os/coconut/internal/manifest"
	"github.com/coconut-os/coconut/internal/supervise"
)

func TestAuditPolicy(t *testing.T) {
	read := func(p string) supervise.Event {
		return supervise.Event{Path: p, Access: supervise.Read, Allowed: true}
	}
	write := func(p string) supervise.Event {
		return supervise.Event{Path: p, Access: supervise.Write | supervise.Read, Allowed: true}
	}
	exec := func(p string) supervise.Event {
		return supervise.Event{Path: p, Access: supervise.Exec, Allowed: true}
	}
	deny := supervise.Event{Path: "/x", Access: supervise.Read}
	tests := []struct {
		name   string
		policy manifest.AuditPolicy
		events []supervise.Event
		want   []bool
	}{
		{"default: first read per path", manifest.AuditPolicy{},
			[]supervise.Event{read("/a"), read("/a"), read("/b"), write("/a"), write("/a"), exec("/e"), exec("/e")},
			[]bool{true, false, true, true, true, true, true}},
		{"reads every", manifest.AuditPolicy{Reads: "all"},
			[]supervise.Event{read("/a"), read("/a")}, []bool{true, true}},
		{"reads none", manifest.AuditPolicy{Reads: "none"},
			[]supervise.Event{read("/a"), read("/b"), deny}, []bool{false, false, true}},
		{"writes first, read-write counts as write", manifest.AuditPolicy{Reads: "none", Writes: "first"},
			[]supervise.Event{write("/a"), write("/a"), read("/a")}, []bool{true, false, false}},
		{"exec none", manifest.AuditPolicy{Exec: "none"},
			[]supervise.Event{exec("/e"), deny}, []bool{false, true}},
		{"unknown level records", manifest.AuditPolicy{Reads: "sometimes"},
			[]supervise.Event{read("/a"), read("/a")}, []bool{true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newAuditPolicy(tt.policy)
			for i, ev := range tt.events {
				if got := p.Want(ev); got != tt.want[i] {
					t.Errorf("event %d (%+v): Want = %v, want %v", i, ev, got, tt.want[i])
				}
			}
		})
	}
}

func TestAuditConnectLevels(t *testing.T) {
	tests := []struct {
		level   string
		kernel  bool
		records []bool // for "tcp a", "tcp a", "tcp b"
	}{
		{"", true, []bool{true, true, true}},
		{"all", true, []bool{true, true, true}},
		{"first", true, []bool{true, false, true}},
		{"none", false, []bool{false, false, false}},
	}
	for _, tt := range tests {
		t.Run("connect "+tt.level, func(t *testing.T) {
			p := newAuditPolicy(manifest.AuditPolicy{Connect: tt.level})
			if p.recordsConnects() != tt.kernel {
				t.Errorf("recordsConnects = %v, want %v", p.recordsConnects(), tt.kernel)
			}
			for i, obj := range []string{"tcp a", "tcp a", "tcp b"} {
				if got := p.wantConnect(obj); got != tt.records[i] {
					t.Errorf("connect %d: %v, want %v", i, got, tt.records[i])
				}
			}
		})
	}
}
