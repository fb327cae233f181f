package attest

import (
	"encoding/hex"
	"fmt"
	"time"
)

// PredicateType identifies Coconut's agent predicate.
const PredicateType = "https://coconut.dev/attestation/agent/v1"

// PayloadType is the DSSE payload type of an in-toto Statement.
const PayloadType = "application/vnd.in-toto+json"

// Authorization sources recorded in Authorizer.Via.
const (
	ViaManifest    = "manifest"
	ViaCommandLine = "command-line"
)

// maxExactInt is the largest integer a JSON number (an IEEE double, which
// the protobuf Struct holding the predicate uses) represents exactly.
const maxExactInt = 1 << 53

// Claims is the attestation predicate: what the host says about one agent.
type Claims struct {
	HostID       string       `json:"host_id"` // machine id or hostname
	HostKeyID    string       `json:"host_key_id"`
	AID          uint64       `json:"aid"`
	Name         string       `json:"name"`
	Class        string       `json:"class"`
	CgroupID     uint64       `json:"cgroup_id"`
	CgroupPath   string       `json:"cgroup_path"`
	SpawnTime    time.Time    `json:"spawn_time"`
	Authorizer   Authorizer   `json:"authorizer"`
	Manifest     *ManifestRef `json:"manifest,omitempty"` // nil for coconut agent run
	Binary       Digest       `json:"binary"`
	Script       *Digest      `json:"script,omitempty"`
	Command      []string     `json:"command"`
	User         string       `json:"user"`
	UID          uint32       `json:"uid"`
	GID          uint32       `json:"gid"`
	Capabilities []string     `json:"capabilities"`
	Enforcement  Enforcement  `json:"enforcement"`
}

// Authorizer is who asked for the agent.
type Authorizer struct {
	UID  uint32 `json:"uid"`
	User string `json:"user"`
	// KeyID is the user's key when the manifest was signed by a key that
	// user added to the trust store.
	KeyID string `json:"key_id,omitempty"`
	Via   string `json:"via"` // ViaManifest or ViaCommandLine
}

// ManifestRef names the signed manifest the agent was spawned from.
type ManifestRef struct {
	Name        string `json:"name"`
	File        string `json:"file"`
	SHA256      string `json:"sha256"`
	SignerKeyID string `json:"signer_key_id"`
}

// Digest is a measured file.
type Digest struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// Enforcement records how the capabilities are enforced.
type Enforcement struct {
	Backend      string   `json:"backend"`
	KernelRights []string `json:"kernel_rights"`
	Notes        string   `json:"notes"`
}

// subjectName is the in-toto subject name of an agent.
func subjectName(hostID string, aid uint64) string {
	return fmt.Sprintf("agent:%s/%d", hostID, aid)
}

// validate checks what both Sign and Verify require of claims. It returns a
// plain error; callers wrap it with their own sentinel.
func (c *Claims) validate() error {
	if c.HostID == "" {
		return fmt.Errorf("host_id is empty")
	}
	if c.AID == 0 {
		return fmt.Errorf("aid is 0")
	}
	// Larger values would be rounded in the JSON predicate, attesting a
	// different agent than the one meant.
	if c.AID > maxExactInt || c.CgroupID > maxExactInt {
		return fmt.Errorf("aid %d or cgroup_id %d exceeds 2^53 and cannot be represented exactly", c.AID, c.CgroupID)
	}
	if err := checkSHA256("binary.sha256", c.Binary.SHA256); err != nil {
		return err
	}
	if c.Script != nil {
		if err := checkSHA256("script.sha256", c.Script.SHA256); err != nil {
			return err
		}
	}
	switch c.Authorizer.Via {
	case ViaManifest:
		if c.Manifest == nil {
			return fmt.Errorf("authorizer.via is %q but there is no manifest", ViaManifest)
		}
		if err := checkSHA256("manifest.sha256", c.Manifest.SHA256); err != nil {
			return err
		}
	case ViaCommandLine:
		if c.Manifest != nil {
			return fmt.Errorf("authorizer.via is %q but a manifest is given", ViaCommandLine)
		}
	default:
		return fmt.Errorf("authorizer.via is %q, want %q or %q", c.Authorizer.Via, ViaManifest, ViaCommandLine)
	}
	return nil
}

func checkSHA256(field, s string) error {
	if len(s) != 64 {
		return fmt.Errorf("%s %q is not a hex SHA-256", field, s)
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return fmt.Errorf("%s %q is not a lowercase hex SHA-256", field, s)
		}
	}
	if _, err := hex.DecodeString(s); err != nil {
		return fmt.Errorf("%s: %v", field, err)
	}
	return nil
}
