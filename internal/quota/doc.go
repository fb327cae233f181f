// Package quota is the fair-share controller: it turns an agent's budget
// (CPU weight and max, memory max and high, pids, IO weight) into cgroup
// controller settings keyed on the agent's AID, reads usage back, counts
// OOM kills, and keeps the tiered memory budgets (RAM: the memory limits;
// SSD: a size-enforced scratch filesystem; HBM: a ledger the inference
// broker draws from).
//
// The agent's identity is always its directory in the unified (cgroup2)
// hierarchy, made by package cgroup. Where that hierarchy has the cpu,
// memory and pids controllers they are enabled there (ModeV2). On a hybrid
// host, where they live in v1 hierarchies, each agent gets a directory
// named agent-AID inside coconut's own subtree of each v1 controller, below
// the daemon's own v1 cgroup (ModeV1); the trampoline joins those groups
// before the agent's first instruction (Group.Procs). Either way the
// settings are written through github.com/containerd/cgroups/v3.
//
// Errors: ErrInvalid for a budget that is malformed or out of range,
// ErrUnsupported for a limit this host cannot enforce (never silently
// dropped), ErrOverBudget for a tier allocation past its budget.
package quota
