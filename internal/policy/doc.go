// Package policy owns capability semantics: given an agent's bundle (its
// capabilities, the baseline every agent has, and for grants its ceiling
// or delegation scope) and one operation (a file access on a real path, a
// connect or bind to an address, a Unix socket, a model, an application
// capability), Decide answers allow or deny and names the capability that
// is missing.
//
// Every mechanism asks it or applies what a compile function beside it
// produces from the same bundle: the seccomp supervisor calls Decide on
// each open and exec; the Landlock floor is CompileFloor's output; the
// network guard's maps hold NetRules and UnixSockets; internal/bpflsm's
// Compile turns the same capabilities and Baseline into its trie. Each
// compile function says where its form is coarser than Decide and which
// layer then decides. The matching primitives (globs, address ranges,
// Covers) stay in internal/capability; this package combines them into
// verdicts and imports nothing else of coconut.
//
// Conformance is the table of (bundle, operation, verdict) cases every
// mechanism is tested against (conformance.go).
package policy
