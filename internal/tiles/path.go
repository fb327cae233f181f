package tiles

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrBadPath means a requested path is not one of the layout's.
var ErrBadPath = errors.New("not a tlog-tiles path")

// ParsePath checks that p (relative, slash-separated, as in a URL) names a
// file of the layout, "checkpoint" or a tile or entry bundle path in its
// canonical encoding, and reports whether it is a full tile (immutable).
// Anything else (dots, empty or doubled slashes, leading zeros, a partial
// width of 0 or over 255, a level over 63) is refused, so a server joining
// p to its directory can reach no other file.
func ParsePath(p string) (immutable bool, err error) {
	if p == CheckpointPath {
		return false, nil
	}
	rest, ok := strings.CutPrefix(p, "tile/")
	if !ok {
		return false, fmt.Errorf("%w: %q", ErrBadPath, clip(p))
	}
	level, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return false, fmt.Errorf("%w: %q", ErrBadPath, clip(p))
	}
	if level != "entries" {
		if l, ok := decimal(level, 63); !ok || l < 0 {
			return false, fmt.Errorf("%w: level %q", ErrBadPath, clip(level))
		}
	}
	index, width, partial := strings.Cut(rest, ".p/")
	if partial {
		if w, ok := decimal(width, 255); !ok || w < 1 {
			return false, fmt.Errorf("%w: partial width %q", ErrBadPath, clip(width))
		}
	}
	groups := strings.Split(index, "/")
	if len(groups) > 7 { // a uint64 has 20 digits
		return false, fmt.Errorf("%w: index %q", ErrBadPath, clip(index))
	}
	for i, g := range groups {
		last := i == len(groups)-1
		if !last {
			if !strings.HasPrefix(g, "x") {
				return false, fmt.Errorf("%w: index group %q", ErrBadPath, clip(g))
			}
			g = g[1:]
		}
		if len(g) != 3 || strings.Trim(g, "0123456789") != "" {
			return false, fmt.Errorf("%w: index group %q", ErrBadPath, clip(g))
		}
	}
	return !partial, nil
}

// decimal parses a canonical decimal (no sign, no leading zero) up to max.
func decimal(s string, max int) (int, bool) {
	if s == "" || len(s) > 3 || (len(s) > 1 && s[0] == '0') || strings.Trim(s, "0123456789") != "" {
		return -1, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n <= max
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
