package api

import (
	"encoding/json"
	"strconv"
	"time"
)

// Version is the path prefix of every call.
const Version = "/v1"

// MaxBodyBytes bounds every request body. A signed manifest is at most 1 MiB;
// base64 and JSON framing stay well inside this.
const MaxBodyBytes = 4 << 20

// Agent is an agent as the daemon reports it.
type Agent struct {
	AID        uint64    `json:"aid"`
	Name       string    `json:"name"`
	Class      string    `json:"class"`
	State      string    `json:"state"`
	PID        int       `json:"pid"`
	CgroupID   uint64    `json:"cgroup_id"`
	CgroupPath string    `json:"cgroup_path"`
	User       string    `json:"user"`
	UID        uint32    `json:"uid"`
	Owner      uint32    `json:"owner"` // uid of the authorizer
	Workload   string    `json:"workload,omitempty"`
	Command    []string  `json:"command"`
	Caps       []string  `json:"caps"`
	SpawnTime  time.Time `json:"spawn_time"`
	EndTime    time.Time `json:"end_time,omitzero"`
	ExitStatus *int      `json:"exit_status,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Adopted    bool      `json:"adopted,omitempty"`
	BinarySHA  string    `json:"binary_sha256"`
	LogPath    string    `json:"log_path"`
}

// SpawnRequest is agent_spawn: a manifest and its detached DSSE signature.
// The daemon verifies the signature against its trust store before it reads
// a single field of the manifest.
type SpawnRequest struct {
	File      string `json:"file"`      // base name, for error messages
	Manifest  []byte `json:"manifest"`  // the YAML bytes, exactly as signed
	Signature []byte `json:"signature"` // the .sig file's bytes; empty = unsigned
}

// SpawnResponse lists the agents created, in manifest order.
type SpawnResponse struct {
	Agents []Agent `json:"agents"`
}

// RunRequest is `coconut agent run`: one agent without a manifest file. The
// caller (SO_PEERCRED) is the authorizer.
type RunRequest struct {
	Name    string            `json:"name"`
	Class   string            `json:"class"`
	User    string            `json:"user"`
	Caps    []string          `json:"caps"`
	Workdir string            `json:"workdir"`
	Env     map[string]string `json:"env"`
	Command []string          `json:"command"`
	// Quota is the agent's budget from its first instruction, as a
	// manifest's quota and memory fields would give it. A zero field
	// takes the host's default (Doctor.QuotaDefaults); -1 in pids or
	// memory_max is no limit, asked for explicitly (`--pids max`); any
	// other negative value is refused.
	Quota *QuotaBudget `json:"quota,omitempty"`
	// OnDenyStorm is the agent's deny storm policy (issue 19) in the
	// compact form "ACTION[,rate=N][,window=D]", ACTION one of throttle,
	// quarantine, kill, none; empty: the host's (Doctor.DenyStorm).
	OnDenyStorm string `json:"on_deny_storm,omitempty"`
}

// Attestation is agent_attest's answer: the DSSE envelope (in-toto Statement
// signed by the host key) and the host key id that signed it.
type Attestation struct {
	AID       uint64          `json:"aid"`
	HostKeyID string          `json:"host_key_id"`
	Envelope  json.RawMessage `json:"envelope"`
}

// Quota is agent_quota: the budget and what the agent uses now.
type Quota struct {
	AID    uint64      `json:"aid"`
	Budget QuotaBudget `json:"budget"`
	Usage  QuotaUsage  `json:"usage"`
	// Controllers says where limits are enforced: "v2" (unified
	// hierarchy), "v1" (hybrid host: v1 controller groups) or "none".
	Controllers string `json:"controllers"`
	// Unenforced names budget fields that are recorded but have no
	// controller on this host (io_weight without the io controller).
	Unenforced []string `json:"unenforced,omitempty"`
}

// QuotaBudget mirrors the manifest's quota block; zero means unlimited.
// As the body of PUT /v1/agents/{aid}/quota it is a change: a zero field
// keeps the current value, -1 (cpu_max "max") removes the limit. The
// memory tiers (hbm, ram, ssd) are fixed at spawn and must be zero there.
type QuotaBudget struct {
	CPUWeight  int    `json:"cpu_weight"`
	CPUMax     string `json:"cpu_max,omitempty"`
	MemoryMax  int64  `json:"memory_max"`
	MemoryHigh int64  `json:"memory_high"`
	Pids       int    `json:"pids"`
	IOWeight   int    `json:"io_weight"`
	Tokens     int64  `json:"tokens"`
	HBM        int64  `json:"hbm"`
	RAM        int64  `json:"ram"`
	SSD        int64  `json:"ssd"`
}

// QuotaUsage is read from the agent's cgroup.
type QuotaUsage struct {
	CPUUsec       uint64 `json:"cpu_usec"`
	Pids          int    `json:"pids"`
	MemoryCurrent int64  `json:"memory_current"` // -1 when no memory controller is attached
	MemoryPeak    int64  `json:"memory_peak"`    // -1 likewise
	OOMKills      uint64 `json:"oom_kills"`      // processes the kernel OOM-killed inside the agent
	Tokens        int64  `json:"tokens"`
}

// CapsRequest is agent_cap_grant / agent_cap_revoke.
type CapsRequest struct {
	Caps []string `json:"caps"`
}

// PresentRequest is agent_cap_present.
type PresentRequest struct {
	Cap    string `json:"cap"`
	Object string `json:"object"`
}

// MemoryRequest is agent_memory_tier. With Tier empty it only reads. Alloc
// > 0 allocates from the tier and is refused past its budget; Alloc < 0
// frees (hbm only: the ledger). For ram and ssd the kernel does the
// allocating: Alloc asks whether that much more still fits.
type MemoryRequest struct {
	Tier  string `json:"tier"`
	Alloc int64  `json:"alloc"`
}

// TrustRequest adds a publisher key to the daemon's trust store.
type TrustRequest struct {
	PublicKey []byte `json:"public_key"` // PEM
	Comment   string `json:"comment"`
}

// PruneRequest is agent_prune's body (issue 17).
type PruneRequest struct {
	EndedBefore time.Time `json:"ended_before"`
}

// PruneResult is what agent_prune removed: the ended agents' registry
// records, attestations and logs (the audit chain is never touched).
type PruneResult struct {
	EndedBefore time.Time `json:"ended_before"`
	Pruned      []uint64  `json:"pruned"` // AIDs, ascending
	Bytes       int64     `json:"bytes"`  // freed under STATE/agents
	Kept        int       `json:"kept"`   // ended agents that ended later
}

// TrustEntry is one trusted publisher key.
type TrustEntry struct {
	KeyID   string    `json:"keyid"`
	AddedBy uint32    `json:"added_by"`
	AddedAt time.Time `json:"added_at"`
	Comment string    `json:"comment,omitempty"`
}

// Record is one audit row (docs/cli.md "audit row").
type Record struct {
	Seq    uint64            `json:"seq"`
	Time   time.Time         `json:"time"`
	AID    uint64            `json:"aid"`
	Type   string            `json:"type"`
	Cap    string            `json:"cap"`
	Object string            `json:"object"`
	Result string            `json:"result"`
	Errno  int               `json:"errno"`
	PID    int               `json:"pid"`
	KSeq   uint64            `json:"kseq"`
	Detail map[string]string `json:"detail,omitempty"`
	Hash   string            `json:"hash"`
}

// AuditPage is a page of agent_audit_query. Next is the AfterSeq to ask for
// the following page; zero when this page was the last.
type AuditPage struct {
	Records []Record `json:"records"`
	Next    uint64   `json:"next"`
}

// Doctor is the daemon's report about itself and the kernel.
type Doctor struct {
	Version     string            `json:"version"`
	Enforcer    string            `json:"enforcer"`
	EnforcerWhy string            `json:"enforcer_why"`
	ECapability int               `json:"ecapability"`
	Anchor      string            `json:"anchor"`
	Counters    map[string]uint64 `json:"counters"`
	StateDir    string            `json:"state_dir"`
	CgroupRoot  string            `json:"cgroup_root"`
	HostKeyID   string            `json:"host_key_id"`
	ChainHead   uint64            `json:"chain_head"`
	Agents      int               `json:"agents"`
	Checks      []Check           `json:"checks"`
	PID         int               `json:"pid"`
	// BrokerSocket and BrokerAddr are where agents reach the inference
	// broker (issue 6): its Unix socket and its loopback TCP address.
	BrokerSocket string `json:"broker_socket,omitempty"`
	BrokerAddr   string `json:"broker_addr,omitempty"`
	// CenterAddr is the loopback address the Center serves on (issue 13),
	// absent when it is off (the server profile, or [center] enabled =
	// false).
	CenterAddr string `json:"center_addr,omitempty"`
	// ChainHeadHash is the hash of row ChainHead and Checkpoint the size
	// of the latest signed checkpoint (issue 13: coconut-tail's header).
	ChainHeadHash string `json:"chain_head_hash,omitempty"`
	Checkpoint    uint64 `json:"checkpoint,omitempty"`
	// QuotaDefaults is every agent's budget for what it leaves unset
	// (issue 19: coconut.toml [quota.defaults]).
	QuotaDefaults *QuotaDefaults `json:"quota_defaults,omitempty"`
	// DenyStorm is the on_deny_storm of every agent that names none
	// (issue 19), as "ACTION,rate=N,window=D".
	DenyStorm string `json:"deny_storm,omitempty"`
	// CountersAlarm (issue 20) lists every source whose kernel denies and
	// chain deny rows have ever differed on this host, kept in the state
	// directory across restarts: what a user reports, and what the Center
	// shows as an alarm. Absent when they never have.
	CountersAlarm []CounterAlarm `json:"counters_alarm,omitempty"`
	// Export is the audit chain's export to an OpenTelemetry collector
	// (issue 17: [export.otlp]); absent when none is configured.
	Export *DoctorExport `json:"export,omitempty"`
	// Witnesses are the [[witness]] entries of coconut.toml (issue 17):
	// where each stands with the host's checkpoints. Absent when none.
	Witnesses []DoctorWitness `json:"witnesses,omitempty"`
}

// DoctorWitness is one witness's standing: the newest checkpoint it
// cosigned and how far the chain's checkpoints are past it.
type DoctorWitness struct {
	Name string `json:"name"` // its key's name
	URL  string `json:"url"`
	// CosignedSize is the size of the newest checkpoint it cosigned (0:
	// none yet); LagCheckpoints counts the stored checkpoints after it,
	// LagRows the records the latest checkpoint signs past it.
	CosignedSize   uint64     `json:"cosigned_size"`
	LagCheckpoints int        `json:"lag_checkpoints"`
	LagRows        uint64     `json:"lag_rows"`
	CosignedAt     *time.Time `json:"cosigned_at,omitempty"`
	LastAttempt    *time.Time `json:"last_attempt,omitempty"`
	LastError      string     `json:"last_error,omitempty"` // "" once a submission succeeds
	Failures       uint64     `json:"failures,omitempty"`   // failed in a row
	// Alarm says the witness saw another history than this chain (it
	// refused a checkpoint as inconsistent: a fork; or it holds more of
	// this log than the chain has). Kept until its state file is removed.
	Alarm   string     `json:"alarm,omitempty"`
	AlarmAt *time.Time `json:"alarm_at,omitempty"`
}

// DoctorExport is where the OTLP export of the audit chain stands. LagRows
// is ChainHead - AckedSeq: rows appended that the collector has not yet
// acknowledged (they wait in the chain; none is dropped).
type DoctorExport struct {
	Endpoint string `json:"endpoint"`
	Protocol string `json:"protocol"` // grpc or http
	AckedSeq uint64 `json:"acked_seq"`
	LagRows  uint64 `json:"lag_rows"`
	// Exported counts rows acknowledged since this daemon started, Resent
	// rows sent again after a failed call, Failures the failed calls.
	Exported  uint64     `json:"exported"`
	Resent    uint64     `json:"resent"`
	Failures  uint64     `json:"failures"`
	LastError string     `json:"last_error,omitempty"` // the last failure; "" once a call succeeds
	LastAck   *time.Time `json:"last_ack,omitempty"`   // when the collector last acknowledged a batch
}

// QuotaDefaults is the budget an agent gets for what its manifest's quota
// (or agent run's flags) leaves unset, resolved on this host; an agent
// asks for no limit with `max`. Zero pids or memory_max: no limit.
type QuotaDefaults struct {
	Pids      int    `json:"pids"`
	MemoryMax int64  `json:"memory_max"`
	Memory    string `json:"memory"` // as configured: a share of RAM ("25%"), a size or "max"
	CPUWeight int    `json:"cpu_weight"`
	// Enforced is false on a host with no usable controller: the
	// defaults are not applied there (Why says why).
	Enforced bool   `json:"enforced"`
	Why      string `json:"why,omitempty"`
}

// CounterAlarm is one source's record of its counters disagreeing.
type CounterAlarm struct {
	Source        string    `json:"source"`         // "supervisor" (seccomp supervisor) or "netguard" (network guard)
	Difference    int64     `json:"difference"`     // kernel denies minus chain deny rows, when last seen differing
	MaxDifference int64     `json:"max_difference"` // the largest difference seen (by magnitude)
	KernelDenies  uint64    `json:"kernel_denies"`  // the source's kernel count then (since that daemon started)
	ChainDenies   uint64    `json:"chain_denies"`   // its chain rows then
	FirstSeen     time.Time `json:"first_seen"`
	LastSeen      time.Time `json:"last_seen"`
	DaemonPID     int       `json:"daemon_pid"` // the coconutd that saw it last
	Now           bool      `json:"now"`        // they differ at this answer
}

// Check is one line of doctor's findings.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// AuditProof is an inclusion proof of one audit row to the latest signed
// checkpoint (`coconut audit prove`), checkable offline with only the
// host's public key. Record is the row's canonical bytes (what the chain
// hashes); Hashes (base64) lead from it to the root signed in Checkpoint,
// a C2SP signed note.
type AuditProof struct {
	Seq         uint64            `json:"seq"`
	Record      string            `json:"record"`
	LeafIndex   uint64            `json:"leaf_index"`
	TreeSize    uint64            `json:"tree_size"`
	Hashes      [][]byte          `json:"hashes"`
	Checkpoint  string            `json:"checkpoint"`
	Consistency *AuditConsistency `json:"consistency,omitempty"`
}

// AuditConsistency proves that the proof's checkpoint extends an older
// one (OldCheckpoint, a signed note).
type AuditConsistency struct {
	OldCheckpoint string   `json:"old_checkpoint"`
	Hashes        [][]byte `json:"hashes"`
}

// Memory is agent_memory_tier's answer: used and limit per tier, in bytes.
// A limit of 0 means the agent has no budget in that tier (ram: no limit).
type Memory struct {
	AID uint64     `json:"aid"`
	HBM MemoryTier `json:"hbm"`
	RAM MemoryTier `json:"ram"`
	SSD MemoryTier `json:"ssd"`
}

// MemoryTier is one tier of Memory.
type MemoryTier struct {
	Used  int64 `json:"used"`
	Limit int64 `json:"limit"`
	// Path is the SSD tier's scratch directory (COCONUT_SCRATCH).
	Path string `json:"path,omitempty"`
}

// Inference is the inference broker's snapshot, for `coconut top` and the
// Center: the backend's load and, per agent the caller may see, the tokens
// it was served and what it waits for. Totals cover every agent.
type Inference struct {
	Policy      string           `json:"policy"`       // vtc or fifo
	Slots       int              `json:"slots"`        // backend concurrency
	InFlight    int              `json:"in_flight"`    // requests on the backend
	Queued      int              `json:"queued"`       // requests waiting for admission
	ContextUsed int64            `json:"context_used"` // prompt + max_tokens in flight
	TokensIn    int64            `json:"tokens_in"`    // prompt tokens served, all agents
	TokensOut   int64            `json:"tokens_out"`   // completion tokens served, all agents
	Blocked     []uint64         `json:"blocked"`      // Inference-blocked agents
	Agents      []InferenceAgent `json:"agents"`
}

// InferenceAgent is one agent's line of Inference.
type InferenceAgent struct {
	AID       uint64 `json:"aid"`
	TokensIn  int64  `json:"tokens_in"`
	TokensOut int64  `json:"tokens_out"`
	Queued    int    `json:"queued"`
	InFlight  int    `json:"in_flight"`
	Reserved  int64  `json:"reserved"` // tokens reserved by its requests in flight
	Blocked   bool   `json:"blocked"`
	Reason    string `json:"reason,omitempty"` // why it waits: token or kv budget
}

// CenterLoginRequest is POST /v1/center/login's optional body: the Center
// page to land on after logging in ("/review/SEQ"; empty: the agents).
type CenterLoginRequest struct {
	Next string `json:"next,omitempty"`
}

// CenterLogin is a single-use login link to the Center for the calling
// uid; it expires after ExpiresIn seconds.
type CenterLogin struct {
	URL       string `json:"url"`
	ExpiresIn int    `json:"expires_in"`
}

// DenyCount is how many denies a deny row stands for: its detail's count
// (an aggregate row, docs/audit-format.md "Aggregate deny rows"), else 1.
// The chain side's twin is audit.DenyCount.
func (r Record) DenyCount() uint64 {
	if n, err := strconv.ParseUint(r.Detail["count"], 10, 64); err == nil && n > 0 {
		return n
	}
	return 1
}
