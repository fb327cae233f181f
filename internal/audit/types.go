package audit

// Row types: every type of row coconutd writes, one constant each. Rows
// are made by the constructors beside them (rows*.go), never by hand
// outside this package; docs/audit-format.md "Row types" lists exactly
// these constants (TestRowTypesDocumented).
const (
	// TypeCapDeny: a capability the kernel, the supervisor or the network
	// guard refused (CapDeny), or further denies of one key gathered into
	// one row (CapDenyAggregate).
	TypeCapDeny = "cap.deny"
	// TypeCapUse: an allowed use the agent's audit policy wants on record
	// (CapUse), or further uses of one key counted into one row
	// (CapUseAggregate).
	TypeCapUse = "cap.use"
	// TypeCapPresent: an application capability or inference presented
	// through agent_cap_present (CapPresent).
	TypeCapPresent = "cap.present"
	// TypeCapGrant: capabilities granted to a running agent (CapGrant).
	TypeCapGrant = "cap.grant"
	// TypeCapRevoke: capabilities revoked from a running agent (CapRevoke).
	TypeCapRevoke = "cap.revoke"

	// TypeAgentSpawn: an agent was created (AgentSpawn).
	TypeAgentSpawn = "agent.spawn"
	// TypeAgentAttest: the agent's attestation was signed (AgentAttest).
	TypeAgentAttest = "agent.attest"
	// TypeAgentState: a lifecycle transition (AgentState).
	TypeAgentState = "agent.state"
	// TypeAgentQuota: the agent's quota was changed (AgentQuota).
	TypeAgentQuota = "agent.quota"
	// TypeAgentMemory: a memory tier reservation, granted or refused
	// (AgentMemory).
	TypeAgentMemory = "agent.memory"
	// TypeAgentOrphan: a cgroup with no registry record, killed at start
	// (AgentOrphan).
	TypeAgentOrphan = "agent.orphan"
	// TypeAgentAdopt: a running agent taken over by a restarted daemon
	// (AgentAdopt).
	TypeAgentAdopt = "agent.adopt"
	// TypeAgentDenyStorm: one row per deny storm, and what coconutd did
	// about it under the agent's on_deny_storm policy (DenyStorm).
	TypeAgentDenyStorm = "agent.deny_storm"
	// TypeAgentPrune: an ended agent's record, attestation and log were
	// removed from the state directory (AgentPrune); its rows stay.
	TypeAgentPrune = "agent.prune"
	// TypeSpawnRefused: a manifest or run request refused before any agent
	// existed (SpawnRefused).
	TypeSpawnRefused = "spawn.refused"

	// TypeInferenceCall: an inference call, finished or refused
	// (InferenceCall), or further finished calls of one key counted into
	// one row (InferenceCallAggregate).
	TypeInferenceCall = "inference.call"
	// TypeInferenceAdmit: an inference call admitted past the queue
	// (InferenceAdmit).
	TypeInferenceAdmit = "inference.admit"

	// TypeTrustAdd: a signing key added to the trust store (TrustAdd).
	TypeTrustAdd = "trust.add"
	// TypeDaemonStart and TypeDaemonStop: coconutd started (DaemonStart)
	// and stopped (DaemonStop).
	TypeDaemonStart = "daemon.start"
	TypeDaemonStop  = "daemon.stop"

	// TypeTruncated: Open cut a torn tail (ChainTruncated).
	TypeTruncated = "chain.truncated"
	// TypeAuditDelete: sealed segments deleted by the user, recorded
	// before their files go (AuditDelete).
	TypeAuditDelete = "audit.delete"
)
