// Package grant is the bookkeeping of capability grants, revocations and
// delegation between agents: which requested capabilities a grant adds,
// what a revocation removes and keeps, what an agent may delegate, the
// ceiling a delegated child gets, and what a cascade takes from a child
// when its delegating parent loses a capability. The verdicts themselves
// (is this within the ceiling, within the scope, reached by it) are
// internal/policy's; this package applies them to an agent's bundle as
// the registry stores it (capability strings), and holds no state.
//
// The registry (internal/agent) owns the order: the row first, then the
// enforcer, then the record.
package grant
