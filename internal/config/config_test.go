package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	tests := []struct {
		name, body, wantErr string
		explicit            bool
		want                Config
	}{
		{name: "good", body: "user = \"maya\"\nenforcer = \"auto\"\n", want: Config{User: "maya", Enforcer: "auto"}},
		{name: "tpm socket", body: "tpm_socket = \"/run/swtpm/sock\"\n", want: Config{TPMSocket: "/run/swtpm/sock"}},
		{name: "unknown", body: "usr = \"maya\"\n", wantErr: "unknown keys: usr"},
		{name: "enforcer", body: "enforcer = \"magic\"\n", wantErr: "must be auto, portable or bpf-lsm"},
		{name: "syntax", body: "user = \n", wantErr: "config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(write(tt.name, tt.body), true)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || c != tt.want {
				t.Fatalf("got %+v, %v", c, err)
			}
		})
	}
	if _, err := Load(filepath.Join(dir, "missing"), false); err != nil {
		t.Fatalf("missing default config: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing"), true); err == nil {
		t.Fatal("missing explicit config accepted")
	}
}
