package policy

import (
	"errors"
	"reflect"
	"testing"

	"github.com/coconut-os/coconut/internal/capability"
)

func caps(t testing.TB, ss ...string) []capability.Cap {
	t.Helper()
	out, err := capability.ParseAll(ss)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestWithin: grants, delegation and revocation bounds.
func TestWithin(t *testing.T) {
	bound := caps(t, "fs.read:/srv/**", "net.connect:10.0.0.0/8:443", "x.acme.mail")
	for _, tt := range []struct {
		c    string
		want bool
	}{
		{"fs.read:/srv/a/**", true}, {"fs.read:/srv", true}, {"fs.write:/srv/a", false}, {"fs.read:/etc", false},
		{"net.connect:10.1.2.3:443", true}, {"net.connect:10.1.2.3:80", false}, {"x.acme.mail:to=bob", true},
		{"x.acme.calendar", false},
	} {
		if got := Within(bound, caps(t, tt.c)[0]); got != tt.want {
			t.Errorf("Within(%s) = %v, want %v", tt.c, got, tt.want)
		}
	}
	if Within(nil, caps(t, "fs.read:/a")[0]) {
		t.Error("an empty bound covers something")
	}
}

// TestGrantScopesAndReaches: what cap.grant delegates, and what a
// revocation reaches through it.
func TestGrantScopesAndReaches(t *testing.T) {
	held := caps(t, "cap.grant:fs.read:/srv/**", "fs.read:/etc", "cap.grant:inference:model=llama*")
	got := GrantScopes(held)
	want := caps(t, "fs.read:/srv/**", "inference:model=llama*")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GrantScopes = %v, want %v", got, want)
	}
	if !Reaches(caps(t, "cap.grant:fs.read:/srv/**"), caps(t, "fs.read:/srv/a")[0]) {
		t.Error("a removed cap.grant does not reach what it delegated")
	}
	if !Reaches(caps(t, "fs.read:/srv/**"), caps(t, "fs.read:/srv/a")[0]) {
		t.Error("a removed capability does not reach what it covers")
	}
	if Reaches(caps(t, "cap.grant:fs.read:/srv/**"), caps(t, "fs.read:/etc")[0]) {
		t.Error("a removed cap.grant reaches beyond its scope")
	}
}

// TestCompileFloor: globs widen to their prefix, missing paths are left
// out, the baseline comes first.
func TestCompileFloor(t *testing.T) {
	exists := func(p string) bool { return p != "/srv/missing" }
	f := CompileFloor(caps(t, "fs.read:/srv/a/*.txt", "fs.write:/srv/missing", "fs.exec:/usr/bin/true", "fs.read:/srv/b/**",
		"net.connect:127.0.0.1:80"), Baseline{Read: []string{"/lib"}}, exists)
	want := FloorPaths{Read: []string{"/lib", "/srv/a", "/srv/b"}, Exec: []string{"/usr/bin/true"}}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("CompileFloor = %+v, want %+v", f, want)
	}
	if g := globFree("/*/x"); g != "/" {
		t.Errorf("globFree(/*/x) = %q", g)
	}
}

// TestNetRulesAndUnixSockets: the network guard's inputs.
func TestNetRulesAndUnixSockets(t *testing.T) {
	b := caps(t, "net.connect:127.0.0.1:80-81", "net.bind:*:8080", "net.connect:unix:/run/a.sock",
		"net.connect:unix:@abs", "fs.read:/x")
	rules, err := NetRules(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 2 || rules[0].Verb != "connect" || rules[0].Lo != 80 || rules[0].Hi != 81 || !rules[1].Any || rules[1].Verb != "bind" {
		t.Errorf("NetRules = %+v", rules)
	}
	socks, err := UnixSockets(b)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/run/a.sock", "\x00abs"}; !reflect.DeepEqual(socks, want) {
		t.Errorf("UnixSockets = %q, want %q", socks, want)
	}
	// A hand-made capability that never passed Parse fails closed.
	bad := []capability.Cap{{Domain: "net", Verb: "connect", Scope: "nonsense"}}
	var re *RuleError
	if _, err := NetRules(bad); !errors.As(err, &re) || re.Cap != bad[0] {
		t.Errorf("NetRules(bad) = %v", err)
	}
}

// FuzzDecide: any file path and access gets an answer, never a panic; an
// allowed answer names nothing missing and a denial names something, and
// an access the bundle allows stays allowed under a wider bundle.
func FuzzDecide(f *testing.F) {
	f.Add("fs.read:/srv/**", "/srv/a", uint8(Read))
	f.Add("fs.write:/a/*/x", "/a/b/x", uint8(Read|Write))
	f.Add("fs.exec:/usr/bin/true", "/usr/bin/true", uint8(Exec))
	f.Fuzz(func(t *testing.T, c, p string, a uint8) {
		cp, err := capability.Parse(c)
		if err != nil {
			return
		}
		b := Bundle{Caps: []capability.Cap{cp}, Base: System}
		v := Decide(b, File{Path: p, Access: Access(a)})
		if v.Allow != (v.Missing == "") && !(Access(a) == 0 || Access(a)&^(Read|Write|Exec) != 0) {
			t.Fatalf("%s %q %d: %v", c, p, a, v)
		}
		wider := Bundle{Caps: append(caps(t, "fs.write:/**", "fs.exec:/**"), cp), Base: System}
		if v.Allow && !Decide(wider, File{Path: p, Access: Access(a)}).Allow {
			t.Fatalf("%s %q %d: allowed, but not under a wider bundle", c, p, a)
		}
	})
}
