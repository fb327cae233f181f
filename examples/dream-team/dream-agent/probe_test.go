package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestProbeSSH(t *testing.T) {
	const secret = "-----BEGIN OPENSSH PRIVATE KEY----- not really\n"
	tests := []struct {
		name  string
		setup func(t *testing.T, ssh string)
		want  string
	}{
		{
			name: "readable key",
			setup: func(t *testing.T, ssh string) {
				mustWrite(t, filepath.Join(ssh, "id_ed25519"), secret)
			},
			want: "succeeded (47 bytes) — nothing stopped me",
		},
		{
			// Tests run as root, so mode bits cannot deny; a directory in
			// the key's place makes the read fail with EISDIR instead.
			name: "key is a directory",
			setup: func(t *testing.T, ssh string) {
				if err := os.Mkdir(filepath.Join(ssh, "id_ed25519"), 0o700); err != nil {
					t.Fatal(err)
				}
			},
			want: "failed errno=21 (is a directory)",
		},
		{
			name:  "no key",
			setup: func(t *testing.T, ssh string) {},
			want:  "failed errno=2 (no such file or directory)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			ssh := filepath.Join(home, ".ssh")
			if err := os.Mkdir(ssh, 0o700); err != nil {
				t.Fatal(err)
			}
			tt.setup(t, ssh)
			got := probeSSH(home)
			want := "probe: read " + filepath.Join(ssh, "id_ed25519") + ": " + tt.want
			if got != want {
				t.Errorf("probeSSH =\n %q\nwant\n %q", got, want)
			}
			if strings.Contains(got, "OPENSSH") {
				t.Errorf("probe printed the key: %q", got)
			}
		})
	}
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
