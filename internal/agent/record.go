package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/atomicfile"
	"github.com/coconut-os/coconut/internal/manifest"
	"github.com/coconut-os/coconut/internal/state"
	"github.com/coconut-os/coconut/internal/storm"
)

// record is what the registry persists about one agent, one JSON file per
// agent under STATE/agents/. It is rewritten on every transition.
type record struct {
	AID        uint64               `json:"aid"`
	Name       string               `json:"name"`
	Class      string               `json:"class"`
	Workload   string               `json:"workload,omitempty"`
	State      state.State          `json:"state"`
	PID        int                  `json:"pid"`
	PIDStart   uint64               `json:"pid_start"` // /proc/PID/stat starttime: tells a recycled pid apart
	CgroupID   uint64               `json:"cgroup_id"`
	CgroupPath string               `json:"cgroup_path"`
	User       string               `json:"user"`
	UID        uint32               `json:"uid"`
	GID        uint32               `json:"gid"`
	Owner      uint32               `json:"owner"`
	Command    []string             `json:"command"`
	Caps       []string             `json:"caps"`
	Ceiling    []string             `json:"ceiling,omitempty"` // nil: Caps
	Quota      manifest.Quota       `json:"quota"`
	Memory     manifest.MemoryTiers `json:"memory"`
	Audit      manifest.AuditPolicy `json:"audit,omitzero"`                 // the manifest's audit policy; zero: the default
	Storm      storm.Policy         `json:"storm,omitzero"`                 // on_deny_storm as spawned; zero fields: the host's default
	Static     bool                 `json:"static,omitempty"`               // enforcement: static (reads left to the floor)
	Parent     uint64               `json:"parent,omitempty"`               // the agent that spawned this one (delegation), 0: a user
	Delegated  map[string]uint64    `json:"delegated,omitempty"`            // capability -> the agent that granted it, for caps reached by delegation
	HBMUsed    int64                `json:"hbm_used,omitempty"`             // the HBM ledger (agent_memory_tier)
	KeyHash    string               `json:"inference_key_sha256,omitempty"` // the broker key's hash; the key is only in the agent's env
	TokensUsed int64                `json:"tokens_used,omitempty"`          // inference tokens spent through the broker
	BinarySHA  string               `json:"binary_sha256"`
	SpawnTime  time.Time            `json:"spawn_time"`
	EndTime    time.Time            `json:"end_time,omitzero"`
	ExitStatus *int                 `json:"exit_status,omitempty"`
	Reason     string               `json:"reason,omitempty"`
	Adopted    bool                 `json:"adopted,omitempty"`
}

func (r *record) wire(logPath string) api.Agent {
	return api.Agent{
		AID: r.AID, Name: r.Name, Class: r.Class, State: string(r.State), PID: r.PID,
		CgroupID: r.CgroupID, CgroupPath: r.CgroupPath, User: r.User, UID: r.UID, Owner: r.Owner,
		Workload: r.Workload, Command: r.Command, Caps: r.Caps, SpawnTime: r.SpawnTime,
		EndTime: r.EndTime, ExitStatus: r.ExitStatus, Reason: r.Reason, Adopted: r.Adopted,
		BinarySHA: r.BinarySHA, LogPath: logPath,
	}
}

// store is the directory of agent records, attestations and logs.
type store struct{ dir string }

func (s store) recordPath(aid uint64) string {
	return filepath.Join(s.dir, strconv.FormatUint(aid, 10)+".json")
}
func (s store) attestPath(aid uint64) string {
	return filepath.Join(s.dir, strconv.FormatUint(aid, 10)+".att.json")
}
func (s store) logPath(aid uint64) string {
	return filepath.Join(s.dir, strconv.FormatUint(aid, 10)+".log")
}

// save replaces the agent's record. It is not fsynced: the record matters
// for adopting agents after a daemon restart, and a machine crash that
// could lose it also ends every agent; the audit chain, which is durable,
// remains the history. (The AID high-water mark and attestations are
// written durably.)
func (s store) save(r *record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Replace(s.recordPath(r.AID), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("persist agent %d: %w", r.AID, err)
	}
	return nil
}

// load reads every record. A record that cannot be read is an error: the
// daemon must not forget an agent that may still be running.
func (s store) load() ([]*record, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var out []*record
	for _, e := range ents {
		n := e.Name()
		base, ok := strings.CutSuffix(n, ".json")
		if !ok || strings.HasSuffix(base, ".att") || strings.HasPrefix(n, ".") {
			continue
		}
		if _, err := strconv.ParseUint(base, 10, 64); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.dir, n))
		if err != nil {
			return nil, err
		}
		var r record
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("agent record %s is corrupt: %w", n, err)
		}
		if !r.State.Valid() || strconv.FormatUint(r.AID, 10) != base {
			return nil, fmt.Errorf("agent record %s is corrupt: aid %d, state %q", n, r.AID, r.State)
		}
		out = append(out, &r)
	}
	return out, nil
}
