package audit

import (
	"encoding/hex"
	"maps"
	"strconv"
	"strings"
	"time"
)

// Rows of an agent's lifecycle and of changes to what it holds. Each
// constructor fixes the row's type and result; the caller gives what
// varies. Detail maps are referenced, not copied, unless said otherwise.

// resultOf is the row result of a decision.
func resultOf(allowed bool) string {
	if allowed {
		return ResultAllow
	}
	return ResultDeny
}

// CapPresent is the row of an application capability (or inference)
// presented through agent_cap_present: allow when errno is 0, else deny
// with the errno the agent is answered (ECAPABILITY).
func CapPresent(aid uint64, cap, object string, errno, pid int) Record {
	return Record{AID: aid, Type: TypeCapPresent, Cap: cap, Object: object, Result: resultOf(errno == 0),
		Errno: errno, PID: pid}
}

// CapGrant is the row of capabilities granted to agent aid (Cap: the
// granted ones, space-separated; Object: the aid), recorded before the
// grant takes effect.
func CapGrant(aid uint64, caps []string, detail map[string]string) Record {
	return capChange(TypeCapGrant, aid, caps, detail)
}

// CapRevoke is the row of capabilities revoked from agent aid, like
// CapGrant.
func CapRevoke(aid uint64, caps []string, detail map[string]string) Record {
	return capChange(TypeCapRevoke, aid, caps, detail)
}

func capChange(typ string, aid uint64, caps []string, detail map[string]string) Record {
	return Record{AID: aid, Type: typ, Cap: strings.Join(caps, " "), Object: strconv.FormatUint(aid, 10),
		Result: ResultAllow, Detail: detail}
}

// NotApplied is the row that follows a recorded change (CapGrant,
// CapRevoke) the enforcer then refused: the same row with result deny and
// Detail["error"] why. r's Detail is copied, not changed.
func NotApplied(r Record, why string) Record {
	d := maps.Clone(r.Detail)
	if d == nil {
		d = map[string]string{}
	}
	d["error"] = why
	r.Result, r.Detail = ResultDeny, d
	return r
}

// AgentSpawn is the row of a new agent: Object its program (argv[0]),
// Detail what it was started as (name, class, user, binary_sha256,
// cgroup_id, authorizer_uid, via, workload).
func AgentSpawn(aid uint64, program string, detail map[string]string) Record {
	return Record{AID: aid, Type: TypeAgentSpawn, Object: program, Result: ResultAllow, Detail: detail}
}

// AgentAttest is the row of the agent's signed attestation: Object
// "sha256:" and the hex SHA-256 of the envelope, signed by hostKeyID.
func AgentAttest(aid uint64, envelopeSHA256 [32]byte, hostKeyID string) Record {
	return Record{AID: aid, Type: TypeAgentAttest, Object: "sha256:" + hex.EncodeToString(envelopeSHA256[:]),
		Result: ResultAllow, Detail: map[string]string{"host_key_id": hostKeyID}}
}

// AgentState is the row of a lifecycle transition to state to (Detail:
// from, and reason and who asked where known). It decides nothing: no
// result.
func AgentState(aid uint64, to string, pid int, detail map[string]string) Record {
	return Record{AID: aid, Type: TypeAgentState, Object: to, PID: pid, Detail: detail}
}

// AgentQuota is the row of a quota change by uid: Object the new quota,
// Detail["from"] the old one.
func AgentQuota(aid uint64, quota string, uid uint32, from string) Record {
	return Record{AID: aid, Type: TypeAgentQuota, Object: quota, Result: ResultAllow,
		Detail: map[string]string{"uid": strconv.FormatUint(uint64(uid), 10), "from": from}}
}

// AgentMemory is the row of a memory reservation in tier, granted or
// refused (Detail: tier, alloc, used, limit, and reason when refused).
func AgentMemory(aid uint64, tier string, allowed bool, detail map[string]string) Record {
	return Record{AID: aid, Type: TypeAgentMemory, Object: tier, Result: resultOf(allowed), Detail: detail}
}

// AgentOrphan is the row of a cgroup found with no registry record, which
// the daemon kills: Object the cgroup's path.
func AgentOrphan(aid uint64, cgroupPath, reason string) Record {
	return Record{AID: aid, Type: TypeAgentOrphan, Object: cgroupPath, Result: ResultDeny,
		Detail: map[string]string{"reason": reason}}
}

// AgentAdopt is the row of a running agent (in state, main process pid)
// taken over by a restarted daemon.
func AgentAdopt(aid uint64, state string, pid int) Record {
	return Record{AID: aid, Type: TypeAgentAdopt, Object: state, PID: pid, Result: ResultAllow}
}

// AgentPrune is the row of an ended agent whose files `coconut agent prune`
// (or agent_retention) removes: by uid, for ended before cutoff; written
// before anything is removed, so a prune the chain cannot record does not
// happen.
func AgentPrune(aid uint64, byUID uint32, cutoff, ended time.Time) Record {
	return Record{AID: aid, Type: TypeAgentPrune, Object: "ended_before=" + cutoff.UTC().Format(time.RFC3339), Result: ResultAllow,
		Detail: map[string]string{"by_uid": strconv.FormatUint(uint64(byUID), 10), "ended": ended.UTC().Format(time.RFC3339)}}
}

// SpawnRefused is the row of a spawn refused before any agent existed
// (aid 0): Object the manifest file, by uid, for reason.
func SpawnRefused(file string, uid uint32, reason string) Record {
	return Record{Type: TypeSpawnRefused, Object: file, Result: ResultDeny,
		Detail: map[string]string{"uid": strconv.FormatUint(uint64(uid), 10), "reason": reason}}
}
