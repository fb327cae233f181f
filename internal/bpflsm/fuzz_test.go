package bpflsm

import (
	"errors"
	"path"
	"testing"

	"github.com/coconut-os/coconut/internal/capability"
)

// FuzzCompileAgrees: a scope either compiles to rules that decide every
// path exactly as the portable matcher does (never wider, never narrower),
// or is refused with ErrInexpressible.
func FuzzCompileAgrees(f *testing.F) {
	for _, s := range [][2]string{{"/a/b/**", "/a/b"}, {"/a/b/**", "/a/bc"}, {"/a/b", "/a/b/c"}, {"/**", "/"}, {"/a/*/c", "/a/x/c"}, {"/", "/"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, scope, p string) {
		c, err := capability.Parse("fs.read:" + scope)
		if err != nil {
			return
		}
		pol, err := Compile([]capability.Cap{c}, Baseline{})
		if err != nil {
			if !errors.Is(err, ErrInexpressible) {
				t.Fatalf("%s: %v", scope, err)
			}
			return
		}
		if p == "" || p[0] != '/' || path.Clean(p) != p || len(p)+1 > PathMax {
			return
		}
		for i := 0; i < len(p); i++ {
			if p[i] == 0 {
				return
			}
		}
		if want, got := c.MatchPath(p), Decide(pol.Files, p)&RightRead != 0; want != got {
			t.Fatalf("scope %q path %q: portable %v, bpf-lsm rules %v (%v)", scope, p, want, got, pol.Files)
		}
	})
}
