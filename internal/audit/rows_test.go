package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestConstructorsByteIdentical: every row constructor makes exactly the
// bytes its call site built by hand before (issue 12). Each "before" is
// the literal that stood at the call site, with the same inputs.
func TestConstructorsByteIdentical(t *testing.T) {
	sum := sha256.Sum256([]byte("envelope"))
	state := map[string]string{"from": "Attested", "reason": "started", "by_uid": "1000"}
	spawn := map[string]string{"name": "coder", "class": "worker", "user": "maya", "binary_sha256": "ab",
		"cgroup_id": "77", "authorizer_uid": "1000", "via": "socket", "workload": "dream"}
	mem := func() map[string]string {
		return map[string]string{"tier": "hbm", "alloc": "4096", "used": "0", "limit": "8192"}
	}
	memDeny := mem()
	memDeny["reason"] = "over the limit"
	capsDetail := func() map[string]string {
		return map[string]string{"by_uid": "1000", "by_aid": "3", "cause": "parent revoked"}
	}
	changed := []string{"fs.read:/data/**", "net.connect:10.0.0.1:443"}
	grantFail := capsDetail()
	grantFail["error"] = "beyond the ceiling"
	infer := map[string]string{"tokens_in": "10", "tokens_out": "20", "reserved": "30", "queue_wait_ms": "1.000",
		"duration_ms": "2.000", "status": "200", "result": "ok", "endpoint": "chat", "stream": "false"}
	knock := map[string]string{"pid": "4242", "suppressed": "3"}
	const aid, pid, uid = uint64(42), 1234, uint32(1000)
	const ecap = 134

	tests := []struct {
		name        string
		got, before Record
	}{
		{"CapPresent allow", CapPresent(aid, "x.acme.deploy", "prod", 0, pid),
			Record{AID: aid, Type: "cap.present", Cap: "x.acme.deploy", Object: "prod", Result: ResultAllow, Errno: 0, PID: pid}},
		{"CapPresent deny", CapPresent(aid, "x.acme.deploy", "prod", ecap, pid),
			Record{AID: aid, Type: "cap.present", Cap: "x.acme.deploy", Object: "prod", Result: ResultDeny, Errno: ecap, PID: pid}},
		{"CapGrant", CapGrant(aid, changed, capsDetail()),
			Record{AID: aid, Type: "cap.grant", Cap: strings.Join(changed, " "), Object: strconv.FormatUint(aid, 10), Result: ResultAllow, Detail: capsDetail()}},
		{"CapRevoke", CapRevoke(aid, changed, capsDetail()),
			Record{AID: aid, Type: "cap.revoke", Cap: strings.Join(changed, " "), Object: strconv.FormatUint(aid, 10), Result: ResultAllow, Detail: capsDetail()}},
		{"NotApplied", NotApplied(CapGrant(aid, changed, capsDetail()), "beyond the ceiling"),
			Record{AID: aid, Type: "cap.grant", Cap: strings.Join(changed, " "), Object: strconv.FormatUint(aid, 10), Result: ResultDeny, Detail: grantFail}},
		{"AgentSpawn", AgentSpawn(aid, "/usr/bin/python3", spawn),
			Record{AID: aid, Type: "agent.spawn", Object: "/usr/bin/python3", Result: ResultAllow, Detail: spawn}},
		{"AgentAttest", AgentAttest(aid, sum, "ed25519:abcd"),
			Record{AID: aid, Type: "agent.attest", Object: "sha256:" + hex.EncodeToString(sum[:]), Result: ResultAllow, Detail: map[string]string{"host_key_id": "ed25519:abcd"}}},
		{"AgentState", AgentState(aid, "Active", pid, state),
			Record{AID: aid, Type: "agent.state", Object: "Active", PID: pid, Detail: state}},
		{"AgentQuota", AgentQuota(aid, "pids=64", uid, "pids=32"),
			Record{AID: aid, Type: "agent.quota", Object: "pids=64", Result: ResultAllow, Detail: map[string]string{"uid": strconv.FormatUint(uint64(uid), 10), "from": "pids=32"}}},
		{"AgentMemory allow", AgentMemory(aid, "hbm", true, mem()),
			Record{AID: aid, Type: "agent.memory", Object: "hbm", Result: ResultAllow, Detail: mem()}},
		{"AgentMemory deny", AgentMemory(aid, "hbm", false, memDeny),
			Record{AID: aid, Type: "agent.memory", Object: "hbm", Result: ResultDeny, Detail: memDeny}},
		{"AgentOrphan", AgentOrphan(aid, "/sys/fs/cgroup/coconut/agent-42", "cgroup without a registry record"),
			Record{AID: aid, Type: "agent.orphan", Object: "/sys/fs/cgroup/coconut/agent-42", Result: ResultDeny, Detail: map[string]string{"reason": "cgroup without a registry record"}}},
		{"AgentAdopt", AgentAdopt(aid, "Active", pid),
			Record{AID: aid, Type: "agent.adopt", Object: "Active", PID: pid, Result: ResultAllow}},
		{"SpawnRefused", SpawnRefused("team.toml", uid, "manifest: bad signature"),
			Record{Type: "spawn.refused", Object: "team.toml", Result: ResultDeny, Detail: map[string]string{"uid": strconv.FormatUint(uint64(uid), 10), "reason": "manifest: bad signature"}}},
		{"InferenceCall refused caller", InferenceCall(0, "/v1/chat/completions", false, ecap, knock),
			Record{AID: 0, Type: "inference.call", Cap: "inference", Object: "/v1/chat/completions", Result: ResultDeny, Errno: ecap, Detail: knock}},
		{"InferenceCall allow", InferenceCall(aid, "llama", true, 0, infer),
			Record{AID: aid, Type: "inference.call", Cap: "inference", Object: "llama", Result: ResultAllow, Errno: 0, Detail: infer}},
		{"InferenceCall budget", InferenceCall(aid, "llama", false, 0, infer),
			Record{AID: aid, Type: "inference.call", Cap: "inference", Object: "llama", Result: ResultDeny, Errno: 0, Detail: infer}},
		{"InferenceAdmit", InferenceAdmit(aid, "llama", infer),
			Record{AID: aid, Type: "inference.admit", Cap: "inference", Object: "llama", Result: ResultAllow, Errno: 0, Detail: infer}},
		{"TrustAdd", TrustAdd("ed25519:abcd", uid),
			Record{Type: "trust.add", Object: "ed25519:abcd", Result: ResultAllow, Detail: map[string]string{"uid": strconv.FormatUint(uint64(uid), 10)}}},
		{"DaemonStart", DaemonStart("0.9.0", pid, "ed25519:abcd", "portable"),
			Record{Type: "daemon.start", Object: "0.9.0", Result: ResultAllow, PID: pid, Detail: map[string]string{"host_key_id": "ed25519:abcd", "enforcer": "portable"}}},
		{"DaemonStop", DaemonStop("0.9.0", pid),
			Record{Type: "daemon.stop", Object: "0.9.0", Result: ResultAllow, PID: pid}},
		{"ChainTruncated", ChainTruncated("00000000000000000001.seg", 4096, 17),
			Record{Type: TypeTruncated, Object: "00000000000000000001.seg", Detail: map[string]string{"segment": "00000000000000000001.seg", "offset": "4096", "bytes": "17"}}},
		{"CapDeny", CapDeny(aid, "fs.read", "/etc/shadow", ecap, pid, 9, map[string]string{"source": "supervisor"}),
			Record{AID: aid, Type: "cap.deny", Cap: "fs.read", Object: "/etc/shadow", Result: ResultDeny, Errno: ecap, PID: pid, KSeq: 9, Detail: map[string]string{"source": "supervisor"}}},
		{"CapUse", CapUse(aid, "fs.read", "/data/x", pid, 9, nil),
			Record{AID: aid, Type: "cap.use", Cap: "fs.read", Object: "/data/x", Result: ResultAllow, PID: pid, KSeq: 9}},
	}
	when := time.Date(2026, 3, 1, 12, 0, 0, 5, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.got.Seq, tt.got.Time = 7, when
			tt.before.Seq, tt.before.Time = 7, when
			got, err := RecordBytes(tt.got)
			if err != nil {
				t.Fatal(err)
			}
			want, err := RecordBytes(tt.before)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("constructor row\n%s\nbefore\n%s", got, want)
			}
		})
	}
}

// TestNotAppliedKeepsRow: NotApplied does not change the row it follows.
func TestNotAppliedKeepsRow(t *testing.T) {
	r := CapRevoke(1, []string{"fs.read:/x"}, map[string]string{"by_uid": "0"})
	n := NotApplied(r, "no")
	if r.Result != ResultAllow || r.Detail["error"] != "" || n.Detail["error"] != "no" || n.Result != ResultDeny {
		t.Errorf("row %+v, not applied %+v", r, n)
	}
}
