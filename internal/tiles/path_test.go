package tiles

import (
	"path"
	"strings"
	"testing"
)

func TestPaths(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{TilePath(0, 0, 0), "tile/0/000"},
		{TilePath(1, 1234067, 17), "tile/1/x001/x234/067.p/17"},
		{EntriesPath(1000, 255), "tile/entries/x001/000.p/255"},
		{EntriesPath(^uint64(0), 0), "tile/entries/x018/x446/x744/x073/x709/x551/615"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
		if _, err := ParsePath(c.got); err != nil {
			t.Errorf("ParsePath(%q): %v", c.got, err)
		}
	}
	for _, p := range []string{
		"", "/checkpoint", "checkpoint/", "tile/0/000/", "tile/0/00", "tile/0/0000", "tile/00/000",
		"tile/64/000", "tile/-1/000", "tile/0/x000", "tile/0/001/002", "tile/0/000.p/0", "tile/0/000.p/256",
		"tile/0/000.p/01", "tile/0/000.p/", "tile/../../etc/passwd", "tile/0/../000", "tile/0/./000",
		"tile/entries/x..1/000", "tile/0//000", "tile/data/000", "tile/0/x001/x002/x003/x004/x005/x006/x007/000",
		"tile/0/000.p/1/x", "tile/0/0a0",
	} {
		if _, err := ParsePath(p); err == nil {
			t.Errorf("ParsePath(%q) accepted", p)
		}
	}
}

// FuzzParsePath: an accepted path is clean, relative and stays inside the
// directory, and is one Write could have made.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"checkpoint", "tile/0/000", "tile/1/x001/x234/067.p/17", "tile/entries/000.p/3", "tile/../x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		full, err := ParsePath(p)
		if err != nil {
			return
		}
		if path.Clean(p) != p || strings.HasPrefix(p, "/") || strings.Contains(p, "..") || strings.ContainsAny(p, "\\\x00") {
			t.Fatalf("accepted unclean path %q", p)
		}
		if p != CheckpointPath && full == strings.Contains(p, ".p/") {
			t.Fatalf("%q: immutable %v", p, full)
		}
	})
}
