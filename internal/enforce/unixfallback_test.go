package enforce

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/coconut-os/coconut/internal/netguard"
	"github.com/coconut-os/coconut/internal/testutil"
)

// TestAllowUnix: the supervisor's Unix allowlist is the bundle's
// net.connect:unix: capabilities in kernel form, replaced by an update.
func TestAllowUnix(t *testing.T) {
	s := &supervisor{agents: map[uint64]*fsAgent{}}
	s.set(Agent{AID: 1, Caps: caps(t, "net.connect:unix:/run/a.sock", "net.connect:unix:@abs", "fs.read:/run/**",
		"net.connect:127.0.0.1:80")})
	tests := []struct {
		name string
		aid  uint64
		addr string
		want bool
	}{
		{"pathname", 1, "/run/a.sock", true},
		{"abstract", 1, "\x00abs", true},
		{"abstract name as a path", 1, "abs", false},
		{"abstract of another length", 1, "\x00abs\x00", false},
		{"at-sign path is not abstract", 1, "@abs", false},
		{"fs scope is no socket", 1, "/run/b.sock", false},
		{"empty", 1, "", false},
		{"unknown agent", 2, "/run/a.sock", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.AllowUnix(tt.aid, tt.addr); got != tt.want {
				t.Errorf("AllowUnix(%d, %q) = %v", tt.aid, tt.addr, got)
			}
		})
	}
	// A revoke: the next decision uses the new bundle.
	s.set(Agent{AID: 1, Caps: caps(t, "net.connect:unix:@abs")})
	if s.AllowUnix(1, "/run/a.sock") || !s.AllowUnix(1, "\x00abs") {
		t.Error("update not applied")
	}
}

// TestFallbackNeedsSupervisor: a guard without its Unix hooks and no
// supervisor to replace them fails the load (fail closed); with the
// hooks, the same configuration loads.
func TestFallbackNeedsSupervisor(t *testing.T) {
	const unified = "/sys/fs/cgroup/unified"
	testutil.RequireRoot(t, "cgroup BPF")
	if _, err := os.Stat(filepath.Join(unified, "cgroup.procs")); err != nil {
		t.Skipf("no cgroup2 hierarchy at %s", unified)
	}
	root := filepath.Join(unified, "coconut-enforce-test-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if pins, err := netguard.PinDir(root); err == nil {
			netguard.Uninstall(pins)
		}
		os.Remove(root)
	})
	_, err := LoadPortable(Config{CgroupRoot: root, NoUnixHooks: true})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "seccomp supervisor") {
		t.Fatalf("LoadPortable without hooks or supervisor: %v, want ErrUnavailable naming the supervisor", err)
	}
	p, err := LoadPortable(Config{CgroupRoot: root})
	if err != nil {
		t.Fatalf("LoadPortable with the hooks: %v", err)
	}
	defer p.Close()
	if hooks, _ := p.UnixSockets(); !hooks || !strings.Contains(strings.Join(p.Rights(), ","), "netguard.connect_unix") {
		t.Errorf("with the hooks: UnixSockets %v, rights %v", hooks, p.Rights())
	}
}
