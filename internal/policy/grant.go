package policy

import "github.com/coconut-os/coconut/internal/capability"

// Within reports whether some capability of bound covers c: c lies within
// a ceiling, a cap.grant scope, a spawn-time floor or a revocation. When
// coverage is not certain the answer is false (capability.Covers).
func Within(bound []capability.Cap, c capability.Cap) bool {
	for _, b := range bound {
		if b.Covers(c) {
			return true
		}
	}
	return false
}

// GrantScopes returns what an agent holding caps may delegate: the inner
// capabilities of its cap.grant capabilities.
func GrantScopes(caps []capability.Cap) []capability.Cap {
	var out []capability.Cap
	for _, c := range caps {
		if c.Domain != "cap" || c.Verb != "grant" {
			continue
		}
		if inner, err := capability.Parse(c.Scope); err == nil {
			out = append(out, inner)
		}
	}
	return out
}

// Reaches reports whether held, delegated by an agent that lost removed,
// depended on one of them: a removed capability covers it, or it lies
// within a removed cap.grant's scope.
func Reaches(removed []capability.Cap, held capability.Cap) bool {
	return Within(removed, held) || Within(GrantScopes(removed), held)
}
