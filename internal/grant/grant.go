package grant

import (
	"slices"

	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/policy"
)

// Add returns the capabilities of want that current does not hold yet, in
// the order asked and without repeats. All or nothing: if one of want lies
// beyond ceiling, it is returned as beyond and nothing is added.
func Add(ceiling []capability.Cap, current []string, want []capability.Cap) (added []string, beyond *capability.Cap) {
	for i, c := range want {
		if !policy.Decide(policy.Bundle{Ceiling: ceiling}, policy.Grant{Cap: c}).Allow {
			return nil, &want[i]
		}
		if s := c.String(); !slices.Contains(current, s) && !slices.Contains(added, s) {
			added = append(added, s)
		}
	}
	return added, nil
}

// Split divides current into what revoke covers (removed) and the rest
// (kept, never nil). A held capability that does not parse is kept: a
// revocation removes only what it names.
func Split(current []string, revoke []capability.Cap) (kept, removed []string) {
	kept = []string{}
	for _, s := range current {
		c, err := capability.Parse(s)
		if err == nil && policy.Within(revoke, c) {
			removed = append(removed, s)
			continue
		}
		kept = append(kept, s)
	}
	return kept, removed
}

// Parse parses the held capabilities, skipping any that do not parse
// (they grant nothing).
func Parse(held []string) []capability.Cap {
	var caps []capability.Cap
	for _, s := range held {
		if c, err := capability.Parse(s); err == nil {
			caps = append(caps, c)
		}
	}
	return caps
}
