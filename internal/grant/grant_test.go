package grant

import (
	"slices"
	"testing"

	"github.com/coconut-os/coconut/internal/capability"
)

func caps(t *testing.T, ss ...string) []capability.Cap {
	t.Helper()
	out, err := capability.ParseAll(ss)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAdd(t *testing.T) {
	tests := []struct {
		name             string
		ceiling, current []string
		want             []string
		added            []string
		beyond           string
	}{
		{"new within ceiling", []string{"fs.read:/data/**"}, nil, []string{"fs.read:/data/a"}, []string{"fs.read:/data/a"}, ""},
		{"held already", []string{"fs.read:/data/**"}, []string{"fs.read:/data/a"}, []string{"fs.read:/data/a"}, nil, ""},
		{"repeat asked once", []string{"net.connect:10.0.0.1:80"}, nil, []string{"net.connect:10.0.0.1:80", "net.connect:10.0.0.1:80"}, []string{"net.connect:10.0.0.1:80"}, ""},
		{"beyond ceiling: nothing", []string{"fs.read:/data/**"}, nil, []string{"fs.read:/data/a", "fs.read:/etc/shadow"}, nil, "fs.read:/etc/shadow"},
		{"empty ceiling", nil, nil, []string{"fs.read:/tmp/x"}, nil, "fs.read:/tmp/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			added, beyond := Add(caps(t, tt.ceiling...), tt.current, caps(t, tt.want...))
			if tt.beyond != "" {
				if beyond == nil || beyond.String() != tt.beyond || added != nil {
					t.Fatalf("Add = %v, beyond %v; want nothing added, beyond %s", added, beyond, tt.beyond)
				}
				return
			}
			if beyond != nil || !slices.Equal(added, tt.added) {
				t.Fatalf("Add = %v, beyond %v; want %v", added, beyond, tt.added)
			}
		})
	}
}

func TestSplit(t *testing.T) {
	current := []string{"fs.read:/data/a", "fs.read:/data/b", "net.connect:10.0.0.1:80", "not a cap"}
	kept, removed := Split(current, caps(t, "fs.read:/data/**"))
	if !slices.Equal(removed, []string{"fs.read:/data/a", "fs.read:/data/b"}) || !slices.Equal(kept, []string{"net.connect:10.0.0.1:80", "not a cap"}) {
		t.Fatalf("kept %v removed %v", kept, removed)
	}
	kept, removed = Split([]string{"fs.read:/data/a"}, caps(t, "fs.read:/data/**"))
	if kept == nil || len(kept) != 0 || len(removed) != 1 {
		t.Fatalf("kept %#v (want empty, not nil) removed %v", kept, removed)
	}
	if _, removed = Split(current, caps(t, "fs.write:/data/**")); removed != nil {
		t.Fatalf("a write revoke removed reads: %v", removed)
	}
}

func TestDelegation(t *testing.T) {
	held := []string{"cap.grant:fs.read:/data/**", "fs.read:/data/**", "net.connect:10.0.0.1:80"}
	scopes := Scopes(held)
	if len(scopes) != 1 || scopes[0].String() != "fs.read:/data/**" {
		t.Fatalf("scopes %v", scopes)
	}
	if b := Beyond(scopes, []string{"fs.read:/data/x"}); b != "" {
		t.Errorf("within scope reported beyond: %s", b)
	}
	if b := Beyond(scopes, []string{"fs.read:/data/x", "net.connect:10.0.0.1:80"}); b != "net.connect:10.0.0.1:80" {
		t.Errorf("Beyond = %q, want the net cap (the parent holds it but may not delegate it)", b)
	}
	if b := Beyond(scopes, []string{"garbage"}); b != "garbage" {
		t.Errorf("unparsable cap not refused: %q", b)
	}
	if got := ChildCeiling([]string{"fs.read:/data/x"}, scopes); !slices.Equal(got, []string{"fs.read:/data/x", "fs.read:/data/**"}) {
		t.Errorf("ChildCeiling = %v", got)
	}
	if Scopes([]string{"fs.read:/data/**"}) != nil {
		t.Error("an agent without cap.grant has scopes")
	}
}

func TestLost(t *testing.T) {
	child := []string{"fs.read:/data/a", "fs.read:/data/b", "fs.read:/own/c", "fs.read:/data/d"}
	delegated := map[string]uint64{"fs.read:/data/a": 7, "fs.read:/data/b": 7, "fs.read:/data/d": 9}
	// Parent 7 lost its cap.grant over /data: what it delegated goes, what
	// the child holds itself or got from agent 9 stays.
	lose := Lost(child, delegated, 7, caps(t, "cap.grant:fs.read:/data/**"))
	var got []string
	for _, c := range lose {
		got = append(got, c.String())
	}
	if !slices.Equal(got, []string{"fs.read:/data/a", "fs.read:/data/b"}) {
		t.Fatalf("Lost = %v", got)
	}
	if lose := Lost(child, delegated, 7, caps(t, "fs.read:/other/**")); lose != nil {
		t.Fatalf("unrelated loss cascaded: %v", lose)
	}
}
