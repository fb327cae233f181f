// Package config reads /etc/coconut/coconut.toml. Every setting has a
// default, so a missing default file is fine; a file named explicitly must
// exist, and unknown keys are errors (a typo must not silently fall back
// to a default).
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/coconut-os/coconut/internal/storm"
)

// DefaultPath is read when no --config is given.
const DefaultPath = "/etc/coconut/coconut.toml"

// Config is the daemon's configuration file.
type Config struct {
	// User is the workstation user: whom agents spawned by root run as.
	User string `toml:"user"`
	// DemoUser is created and used when root spawns and User is empty.
	DemoUser   string `toml:"demo_user"`
	Enforcer   string `toml:"enforcer"`
	StateDir   string `toml:"state_dir"`
	Socket     string `toml:"socket"`
	CenterAddr string `toml:"center_addr"`
	BrokerAddr string `toml:"broker_addr"`
	LogLevel   string `toml:"log_level"`
	// TPMSocket is swtpm's unix data socket for the audit anchor; empty
	// uses /dev/tpmrm0 when present, forward-secure seals otherwise.
	TPMSocket string `toml:"tpm_socket"`
	// Broker configures the inference broker ([broker]); see broker.go.
	Broker Broker `toml:"broker"`
	// Quota holds [quota.defaults], every agent's budget for what it
	// leaves unset (quota.go).
	Quota Quota `toml:"quota"`
	// Setup holds `coconut init`'s answers ([setup]); see setup.go.
	Setup Setup `toml:"setup"`
	// Center is the [center] table (center.go).
	Center Center `toml:"center"`
	// OnDenyStorm is every agent's deny storm policy for what its own
	// leaves unset (issue 19, internal/storm): "ACTION[,rate=N][,window=D]".
	OnDenyStorm string `toml:"on_deny_storm"`
	// AuditReserve is the free space kept on the audit chain's filesystem
	// (issue 19): below it new spawns are refused. "": 64M.
	AuditReserve string `toml:"audit_reserve"`
	// AuditEachUse keeps one audit row per allowed use (cap.use) and per
	// finished inference call (issue 19). Unset or false: the first use
	// of each (agent, capability, object), and the first call of each
	// (agent, model, endpoint, stream), has its row, and further ones are
	// counted into aggregate rows (a few a second per agent).
	AuditEachUse bool `toml:"audit_each_use"`
	// Export is the [export] table (issue 17, export.go).
	Export Export `toml:"export"`
	// AuditCompress keeps sealed audit segments zstd-compressed (issue 17;
	// docs/audit-format.md). Unset: true.
	AuditCompress *bool `toml:"audit_compress"`
	// AgentLogMax caps each agent's log (issue 17): past it the oldest
	// part is dropped, about half the cap kept. "": 8M.
	AgentLogMax string `toml:"agent_log_max"`
	// AgentRetention prunes ended agents' records, attestations and logs
	// this long after they ended (issue 17; "30d"). "": kept.
	AgentRetention string `toml:"agent_retention"`
	// Witnesses are the [[witness]] entries (issue 17, witness.go): each
	// new signed checkpoint is submitted to each of them.
	Witnesses []Witness `toml:"witness"`
}

// CompressAudit is audit_compress with its default.
func (c Config) CompressAudit() bool { return c.AuditCompress == nil || *c.AuditCompress }

// Load reads path. explicit says the user named it: then it must exist.
func Load(path string, explicit bool) (Config, error) {
	var c Config
	md, err := toml.DecodeFile(path, &c)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !explicit {
			return Config{}, nil
		}
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return Config{}, fmt.Errorf("config %s: unknown keys: %s", path, strings.Join(keys, ", "))
	}
	switch c.Enforcer {
	case "", "auto", "portable", "bpf-lsm":
	default:
		return Config{}, fmt.Errorf("config %s: enforcer %q: must be auto, portable or bpf-lsm", path, c.Enforcer)
	}
	// The syntax now; a share of RAM is resolved by the daemon.
	if _, err := c.Quota.Defaults.Resolve(1 << 40); err != nil {
		return Config{}, fmt.Errorf("config %s: [quota.defaults] %w", path, err)
	}
	if c.OnDenyStorm != "" {
		if _, err := storm.Parse(c.OnDenyStorm); err != nil {
			return Config{}, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := c.Broker.validate(); err != nil {
		return Config{}, fmt.Errorf("config %s: [broker] %w", path, err)
	}
	if err := c.Setup.validate(); err != nil {
		return Config{}, fmt.Errorf("config %s: [setup] %w", path, err)
	}
	if err := c.Export.OTLP.validate(); err != nil {
		return Config{}, fmt.Errorf("config %s: [export.otlp] %w", path, err)
	}
	if err := validateWitnesses(c.Witnesses); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	if err := c.mergeCenter(); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Exists reports whether a file is at path.
func Exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
