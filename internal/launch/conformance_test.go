package launch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coconut-os/coconut/internal/policy"
)

// TestConformanceFloor: one agent per bundle of the policy's table runs
// under the Landlock floor policy.CompileFloor makes of that bundle (as
// its ceiling) and opens, writes and executes the real files of every
// file case. The floor is coarser than the policy (no globs but a
// trailing /**, the ELF interpreter's exec right): it must allow every
// case the table allows, and refuse those the table refuses where it is
// exact (Case.FloorExact); the rest are the supervisor's.
func TestConformanceFloor(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch users and create cgroups")
	}
	if LandlockABI() < 1 {
		t.Skip("no Landlock in this kernel")
	}
	// Not t.TempDir(): its parent is 0700 and the agent runs as nobody.
	dir, err := os.MkdirTemp("", "conformance-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.ReadFile("/usr/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range policy.Files(root) {
		d := p
		if !strings.HasSuffix(p, "/") {
			d = filepath.Dir(p)
		}
		if err := os.MkdirAll(d, 0o777); err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(p, "/") {
			if err := os.WriteFile(p, exe, 0o777); err != nil {
				t.Fatal(err)
			}
		}
	}
	filepath.Walk(root, func(p string, _ os.FileInfo, _ error) error { return os.Chmod(p, 0o777) })
	os.Chmod(root, 0o755)

	var all []policy.Case
	for _, c := range policy.Conformance(root) {
		f, ok := c.Op.(policy.File)
		if !ok || f.Access == 0 || (!c.Allow && !c.FloorExact) {
			continue
		}
		if !strings.HasPrefix(f.Path, root+"/") {
			if _, err := os.Stat(f.Path); err != nil {
				continue // a system path this machine lacks
			}
		}
		all = append(all, c)
	}
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	self, _ := os.Executable()
	n, nAllowed := 0, 0
	for _, cases := range policy.ByBundle(all) {
		k := strings.Join(cases[0].Caps, " ")
		b, err := cases[0].Bundle()
		if err != nil {
			t.Fatal(err)
		}
		fp := policy.CompileFloor(b.Caps, policy.System, exists)
		var args []string
		for _, c := range cases {
			f := c.Op.(policy.File)
			op := map[policy.Access]string{policy.Read: "open-r", policy.Write: "open-w", policy.Exec: "forkexec",
				policy.Read | policy.Write: "open-rw"}[f.Access]
			args = append(args, op, f.Path)
		}
		out, _, err := runSpec(t, self, func(s *Spec) {
			s.Env = append(s.Env, "LAUNCH_TEST_PROBE=1")
			s.Dir = "/"
			s.Floor = &Floor{Read: fp.Read, Write: fp.Write, Exec: fp.Exec}
		}, args...)
		if err != nil {
			t.Fatalf("bundle %q: %v", k, err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != len(cases) {
			t.Fatalf("bundle %q: %d results for %d cases:\n%s", k, len(lines), len(cases), out)
		}
		for i, c := range cases {
			// Strict both ways: an allowed case must succeed (an EIO or
			// ENOENT is not an allow), a denied one must be EACCES.
			allowed := strings.HasSuffix(lines[i], " errno=0")
			if !allowed && !strings.HasSuffix(lines[i], " errno=13") {
				t.Errorf("case %q: Landlock floor %q: neither success nor EACCES", c.Name, lines[i])
				continue
			}
			if allowed {
				nAllowed++
			}
			if allowed != c.Allow {
				t.Errorf("case %q: Landlock floor %q, policy table allow=%v", c.Name, lines[i], c.Allow)
			}
			n++
		}
	}
	t.Logf("%d conformance cases against the Landlock floor (%d allowed, %d refused)", n, nAllowed, n-nAllowed)
}
