package cli

import (
	"testing"

	"github.com/spf13/pflag"

	"github.com/coconut-os/coconut/internal/tail"
)

// TestTailRootMatchesCLI: coconut-tail builds its own small command tree
// (internal/tail) so that it does not link the whole command line; every
// flag `coconut audit tail` takes, its own and the root's persistent ones,
// must be there too, with the same shorthand, default and help.
func TestTailRootMatchesCLI(t *testing.T) {
	full, small := newRoot(&globals{}), tail.Root()
	fullTail, _, err := full.Find([]string{"audit", "tail"})
	if err != nil {
		t.Fatal(err)
	}
	smallTail, _, err := small.Find([]string{"audit", "tail"})
	if err != nil {
		t.Fatal(err)
	}
	if fullTail.Use != smallTail.Use || fullTail.Short != smallTail.Short {
		t.Errorf("coconut-tail's audit tail is %q (%q), coconut's %q (%q)", smallTail.Use, smallTail.Short, fullTail.Use, fullTail.Short)
	}
	same := func(what string, want, got *pflag.FlagSet) {
		n := 0
		want.VisitAll(func(f *pflag.Flag) {
			n++
			g := got.Lookup(f.Name)
			switch {
			case g == nil:
				t.Errorf("%s: coconut-tail lacks --%s", what, f.Name)
			case g.Shorthand != f.Shorthand || g.DefValue != f.DefValue || g.Usage != f.Usage || g.Value.Type() != f.Value.Type():
				t.Errorf("%s --%s: coconut-tail has -%s %q %q %s, coconut -%s %q %q %s", what, f.Name, g.Shorthand, g.DefValue, g.Usage, g.Value.Type(), f.Shorthand, f.DefValue, f.Usage, f.Value.Type())
			}
		})
		if n == 0 {
			t.Errorf("%s: coconut has no flags to compare", what)
		}
	}
	same("persistent", full.PersistentFlags(), small.PersistentFlags())
	same("audit tail", fullTail.Flags(), smallTail.Flags())
}
