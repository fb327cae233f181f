// Package state is the agent lifecycle as a state machine: the eight states
// of design.md, the transitions between them as a table, and an error for
// every transition the table does not list. It holds no I/O: the agent
// registry persists and audits each transition it applies.
package state
