package grant

import (
	"slices"

	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/policy"
)

// Delegation (issue 3, item 6). An agent that holds cap.grant:SCOPE may
// spawn agents and grant them, at spawn or later, capabilities within
// SCOPE; every capability a child holds by delegation remembers who
// granted it, and revoking a capability from an agent revokes what it
// reached by delegation from every agent downstream.

// Scopes returns what an agent holding held may delegate: the scopes of
// its cap.grant capabilities.
func Scopes(held []string) []capability.Cap {
	return policy.GrantScopes(Parse(held))
}

// Beyond returns the first of caps that no scope covers (or that does not
// parse), or "" when all lie within scopes.
func Beyond(scopes []capability.Cap, caps []string) string {
	for _, s := range caps {
		c, err := capability.Parse(s)
		if err != nil || !policy.Within(scopes, c) {
			return s
		}
	}
	return ""
}

// ChildCeiling is the ceiling of a delegated child that declared none: its
// bundle plus every scope the parent may delegate, so that the parent may
// later grant it anything within its cap.grant (the floor is built from
// it).
func ChildCeiling(caps []string, scopes []capability.Cap) []string {
	out := append([]string{}, caps...)
	for _, s := range scopes {
		if str := s.String(); !slices.Contains(out, str) {
			out = append(out, str)
		}
	}
	return out
}

// Lost returns what a child holding held loses when agent from, which
// delegated to it, loses removed: each capability from delegated that a
// removed one reaches (covers, or holds within a removed cap.grant's
// scope). What the child holds on its own, or from another agent, stays.
func Lost(held []string, delegated map[string]uint64, from uint64, removed []capability.Cap) []capability.Cap {
	var lose []capability.Cap
	for _, s := range held {
		if delegated[s] != from {
			continue
		}
		if c, err := capability.Parse(s); err == nil && policy.Reaches(removed, c) {
			lose = append(lose, c)
		}
	}
	return lose
}
