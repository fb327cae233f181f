// Package enforce is the one interface between the agent registry and the
// kernel mechanisms that enforce capabilities. A backend binds an agent's
// bundle before its first instruction, changes it on grant and revoke,
// answers presentations, and reports every kernel deny as an Event with the
// kernel's own sequence number.
//
// Backends: portable (Landlock floor, cgroup BPF network guard, and the
// seccomp supervisor's decisions: Portable implements supervise.Decider
// over every agent's current bundle and the Supervisor interface that
// serves, hands over and resumes listeners) and, later, bpf-lsm. Choose
// picks one; if none can load, agents must not start (fail closed).
//
// The supervisor's listeners are kept by a holder process outside the
// daemon (supervise.Hold), so a restarted daemon resumes them: see
// docs/security.md for what each layer guarantees.
//
// What an error from Choose means: nil, the backend is loaded and every
// agent spawned from now on is enforced; ErrUnavailable, the named (or
// every) backend cannot work on this kernel, with the reason; anything
// else, loading failed for another reason and nothing is enforced.
package enforce
