// Package agent is the daemon's agent registry and spawner: it allocates
// AIDs, creates each agent's cgroup, measures what will run, signs the
// attestation, starts the process through the launch trampoline, applies
// every lifecycle transition (state package) and records each one in the
// audit chain before it takes effect, persists every agent so a restarted
// daemon adopts the ones still running, and reaps the ones that end.
//
// It is the one place where an agent's state changes: see Manager.transition.
package agent
