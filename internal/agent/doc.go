// Package agent is the daemon's agent registry and spawner: it allocates
// AIDs, creates each agent's cgroup, measures what will run, signs the
// attestation, starts the process through the launch trampoline, applies
// every lifecycle transition (state package) and records each one in the
// audit chain before it takes effect, persists every agent so a restarted
// daemon adopts the ones still running, and reaps the ones that end.
//
// It is the one place where an agent's state changes: see Manager.transition.
//
// The Manager keeps the registry (manager.go, record.go, aid.go), the
// lifecycle (spawn.go, watch.go, quarantine.go) and the API the server
// calls. The rest is in small types it owns, each saying what it owns:
// planner and users (plan.go, user.go: requests into measured plans),
// budget (budget.go: the quota controller, SSD tiers, OOM watch and CPU
// governor), grants (caps.go, delegate.go: bundle changes and delegation),
// supervision (supervision.go: the seccomp supervisor's side of launch,
// adoption and revocation), Tenants (inference.go: the broker's view, with
// the inference keys) and reserve (reserve.go: the audit chain's disk
// headroom). The deny consumer's counters, aggregates and storm watch are
// in counters.go, aggregate.go and storm.go.
package agent
