package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCenterAddr(t *testing.T) {
	tests := []struct {
		name, toml, want, err string
	}{
		{"table", "[center]\naddr = \"127.0.0.1:7880\"\n", "127.0.0.1:7880", ""},
		{"old key", "center_addr = \"127.0.0.1:7881\"\n", "127.0.0.1:7881", ""},
		{"both agree", "center_addr = \"127.0.0.1:7882\"\n[center]\naddr = \"127.0.0.1:7882\"\n", "127.0.0.1:7882", ""},
		{"both differ", "center_addr = \"127.0.0.1:1\"\n[center]\naddr = \"127.0.0.1:2\"\n", "", "disagree"},
		{"unknown key", "[center]\nport = 1\n", "", "unknown keys"},
		{"price", "[broker]\nprice_per_1k_tokens = 0.002\n", "", ""},
		{"negative price", "[broker]\nprice_per_1k_tokens = -1.0\n", "", "must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "coconut.toml")
			os.WriteFile(p, []byte(tt.toml), 0o644)
			c, err := Load(p, true)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || c.CenterAddr != tt.want || c.Center.Addr != tt.want {
				t.Fatalf("%+v %v", c, err)
			}
		})
	}
}

// TestCenterByProfile: the Center is on for a workstation and off for a
// server unless the config says otherwise.
func TestCenterByProfile(t *testing.T) {
	tests := []struct{ name, toml, want, err string }{
		{"no profile", "", "", ""},
		{"workstation", "[setup]\nprofile = \"workstation\"\n", CenterAuto, ""},
		{"workstation off", "[center]\nenabled = false\n[setup]\nprofile = \"workstation\"\n", "", ""},
		{"server", "[setup]\nprofile = \"server\"\n", "", ""},
		{"server enabled", "[center]\nenabled = true\n[setup]\nprofile = \"server\"\n", CenterAuto, ""},
		{"server addr", "[center]\naddr = \"127.0.0.1:7880\"\n[setup]\nprofile = \"server\"\n", "127.0.0.1:7880", ""},
		{"addr and off", "[center]\naddr = \"127.0.0.1:7880\"\nenabled = false\n", "", "keep one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "coconut.toml")
			os.WriteFile(p, []byte(tt.toml), 0o644)
			c, err := Load(p, true)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || c.CenterListen() != tt.want {
				t.Fatalf("CenterListen %q, want %q (%v)", c.CenterListen(), tt.want, err)
			}
		})
	}
}
