package capability

// Covers reports whether c allows everything o allows: same Name, and c's
// scope includes all of o's. It is used to check that a grant stays within a
// ceiling or a cap.grant scope, so when the answer is not certain it is false.
// fs scopes are compared as written: expand both or neither.
func (c Cap) Covers(o Cap) bool {
	if c.Name() != o.Name() {
		return false
	}
	switch c.Domain {
	case "fs":
		return coversPath(c.Scope, o.Scope)
	case "net":
		if isUnix(c.Scope) || isUnix(o.Scope) {
			// Exact addresses, no patterns: only the same socket.
			return c.Scope == o.Scope
		}
		cs, err1 := parseNet(c.Scope)
		os, err2 := parseNet(o.Scope)
		return err1 == nil && err2 == nil && cs.covers(os)
	case "inference":
		cs, err1 := parseInference(c.Scope)
		os, err2 := parseInference(o.Scope)
		return err1 == nil && err2 == nil && cs.covers(os)
	case "cap":
		ci, err1 := Parse(c.Scope)
		oi, err2 := Parse(o.Scope)
		return err1 == nil && err2 == nil && ci.Domain != "cap" && ci.Covers(oi)
	case "x":
		// An unscoped application capability allows every scope; scoped
		// ones are opaque text, so only an identical scope is covered.
		return c.Scope == "" || c.Scope == o.Scope
	}
	return false
}
