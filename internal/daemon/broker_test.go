package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/coconut-os/coconut/internal/broker"
	"github.com/coconut-os/coconut/internal/config"
)

func TestParseBrokerAddr(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"127.0.0.1:7878", "127.0.0.1:7878", true},
		{"localhost:7878", "127.0.0.1:7878", true},
		{"127.0.0.2:0", "127.0.0.2:0", true},
		{"[::1]:7878", "[::1]:7878", true},
		{"[::ffff:127.0.0.1]:7878", "127.0.0.1:7878", true},
		{"0.0.0.0:7878", "", false},
		{"10.0.0.1:7878", "", false},
		{"[::]:7878", "", false},
		{"example.com:7878", "", false},
		{"127.0.0.1", "", false},
		{"127.0.0.1:99999", "", false},
		{"127.0.0.1:http", "", false},
		{"[fe80::1%lo]:1", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseBrokerAddr(tt.in)
			if tt.ok != (err == nil) || (err == nil && got.String() != tt.want) {
				t.Fatalf("ParseBrokerAddr(%q) = %v, %v; want %q ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

func FuzzParseBrokerAddr(f *testing.F) {
	for _, s := range []string{"127.0.0.1:7878", "[::1]:0", "localhost:1", "0.0.0.0:1", ":"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if a, err := ParseBrokerAddr(s); err == nil && !a.Addr().IsLoopback() {
			t.Fatalf("%q accepted as %v", s, a)
		}
	})
}

func TestLoopbackHost(t *testing.T) {
	for h, want := range map[string]bool{
		"127.0.0.1:7878": true, "localhost:7878": true, "[::1]:7878": true, "127.0.0.1": true,
		"evil.example:7878": false, "10.1.1.1:7878": false, "": false,
	} {
		if got := loopbackHost(h); got != want {
			t.Errorf("loopbackHost(%q) = %v, want %v", h, got, want)
		}
	}
}

func TestReadKeyFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), mode)
		os.Chmod(p, mode)
		return p
	}
	tests := []struct {
		name, path, want string
	}{
		{"good", write("good", "sk-123\n", 0o600), "sk-123"},
		{"group readable", write("group", "sk-123\n", 0o640), ""},
		{"empty", write("empty", "\n", 0o600), ""},
		{"two lines", write("two", "a\nb\n", 0o600), ""},
		{"missing", filepath.Join(dir, "missing"), ""},
		{"directory", dir, ""},
		{"fifo", mkfifo(t, filepath.Join(dir, "fifo")), ""},
		{"symlink", symlink(t, write("target", "sk-123\n", 0o600), filepath.Join(dir, "link")), ""},
		{"too large", write("large", strings.Repeat("k", 1<<20+1), 0o600), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readKeyFile(tt.path)
			if (tt.want != "") != (err == nil) || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	// A 0600 file another user owns: that user holds the key.
	if os.Geteuid() == 0 {
		p := write("theirs", "sk-123\n", 0o600)
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if _, err := readKeyFile(p); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Fatalf("a key file another user owns: %v", err)
		}
	}
}

func symlink(t *testing.T, target, p string) string {
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func mkfifo(t *testing.T, p string) string {
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestExportHeadersFileMode: the OTLP headers file holds a collector's API
// key; one others can read stops coconutd with the reason, like the
// broker's key file.
func TestExportHeadersFileMode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "otlp.headers")
	if err := os.WriteFile(p, []byte("Authorization: Bearer sk-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, 0o644)
	d := &Daemon{}
	err := d.openExport(config.ExportOTLP{Endpoint: "127.0.0.1:4317", Insecure: true, HeadersFile: p})
	if err == nil || !strings.Contains(err.Error(), "headers_file") || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable headers file: %v", err)
	}
	if _, err := readSecretFile("x", p); err == nil {
		t.Fatal("readSecretFile accepted mode 0644")
	}
	os.Chmod(p, 0o600)
	if b, err := readSecretFile("x", p); err != nil || !strings.Contains(string(b), "sk-1") {
		t.Fatalf("mode 0600: %q, %v", b, err)
	}
}

func TestRefusalStatus(t *testing.T) {
	if err := error(&refusal{reason: "x"}); !errors.Is(err, broker.ErrUnauthorized) || errors.Is(err, broker.ErrForbidden) {
		t.Fatalf("unidentified caller: %v", err)
	}
	if err := error(&refusal{forbidden: true, reason: "x"}); !errors.Is(err, broker.ErrForbidden) {
		t.Fatalf("another agent's key: %v", err)
	}
}
