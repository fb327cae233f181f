package manifest

import (
	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/storm"
)

const (
	// APIVersion is the only apiVersion this package accepts.
	APIVersion = "coconut/v1"
	// Kind is the only kind this package accepts.
	Kind = "Workload"
	// MaxSize bounds the manifest in bytes.
	MaxSize = 1 << 20
	// MaxInstances bounds the sum of replicas over all agents.
	MaxInstances = 1000
)

// Manifest is a parsed, validated workload.
type Manifest struct {
	APIVersion string
	Kind       string
	Metadata   Metadata
	Agents     []AgentSpec
	// File is the name given to Parse, used in error messages.
	File string

	lines map[string]int // field path -> line, for Line
}

// Metadata names the workload.
type Metadata struct {
	Name        string
	Description string
}

// AgentSpec is one entry of agents, with defaults filled in (Class = Name,
// Replicas = 1, the audit defaults).
type AgentSpec struct {
	Name         string
	Class        string
	Replicas     int
	Command      []string
	Script       string
	Env          map[string]string
	Workdir      string
	User         string
	Capabilities []capability.Cap
	// Ceiling is what may be granted later; nil when the manifest has none
	// (then grants are bounded only by the granter's cap.grant).
	Ceiling []capability.Cap
	Quota   Quota
	Memory  MemoryTiers
	Audit   AuditPolicy
	// Storm is on_deny_storm: what is done when the agent's denies pass a
	// rate (internal/storm); zero fields: the host's default.
	Storm storm.Policy
	// Enforcement is how file access is enforced: EnforceSupervised (the
	// default: every open is decided against the current bundle) or
	// EnforceStatic (read-only opens are left to the Landlock floor, made
	// of the bundle: faster, but reads cannot be revoked or audited).
	Enforcement string
	// Line is the line of this list item, Index its position in agents.
	Line  int
	Index int
}

// Values of an agent's `enforcement` field.
const (
	EnforceSupervised = "supervised"
	EnforceStatic     = "static"
)

// Quota is the per-instance budget; a zero field means "not set" (the
// host's defaults apply), Unlimited (`max`) in MemoryMax or Pids means no
// limit on purpose.
type Quota struct {
	CPUWeight  int
	CPUMax     string // "QUOTA PERIOD" or "max PERIOD", as cgroup cpu.max takes it
	MemoryMax  int64  // bytes, or Unlimited
	MemoryHigh int64  // bytes
	Pids       int    // or Unlimited
	IOWeight   int
	Tokens     int64
}

// MemoryTiers are the per-instance tier budgets in bytes; zero means none.
type MemoryTiers struct {
	HBM, RAM, SSD int64
}

// AuditPolicy says which events are written to the chain: each field is
// "all", "first" (the first use of each object) or "none".
type AuditPolicy struct {
	Reads, Writes, Exec, Connect string
}

// Instance is one agent to start: a spec and its replica number.
type Instance struct {
	Spec *AgentSpec
	// Name is the spec name when Replicas is 1, else NAME-1 .. NAME-N.
	Name string
	// Replica counts from 1.
	Replica int
}
