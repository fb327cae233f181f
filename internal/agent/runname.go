package agent

import (
	"path/filepath"
	"strings"
)

// nameFromCommand derives the default name of a `coconut agent run` agent
// from its command's base name. The user did not choose that name, so it
// is made valid rather than refused: lower-cased, every run of other
// characters turned into one '-', trimmed to 63 ("python3.11" →
// "python3-11"). A base name with nothing usable in it gives "run".
func nameFromCommand(command string) string {
	base := strings.ToLower(filepath.Base(command))
	var b strings.Builder
	dash := false
	for _, r := range base {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
			continue
		}
		dash = true
	}
	name := b.String()
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	if name == "" {
		return "run"
	}
	return name
}
