package quota

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestParseProcCgroup(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]string
		ok   bool
	}{
		{"hybrid", "4:memory:/a/b\n2:cpu,cpuacct:/\n0::/x\n", map[string]string{"memory": "/a/b", "cpu": "/", "cpuacct": "/"}, true},
		{"unified only", "0::/\n", nil, false},
		{"garbage", "hello\n", nil, false},
		{"relative path", "4:memory:a\n", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcCgroup(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("parseProcCgroup: %v", err)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestParseKeyed(t *testing.T) {
	b := []byte("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
	if v, err := parseKeyed(b, "oom_kill"); err != nil || v != 3 {
		t.Fatalf("oom_kill = %d, %v", v, err)
	}
	if _, err := parseKeyed(b, "usage_usec"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("missing key: %v", err)
	}
	if _, err := parseKeyed([]byte("oom_kill max\n"), "oom_kill"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("non-counter: %v", err)
	}
}

// TestFindV1 runs the v1 discovery against a fake mountinfo and
// /proc/self/cgroup, including a cgroup namespace (mount root not "/").
func TestFindV1(t *testing.T) {
	dir := t.TempDir()
	mi := filepath.Join(dir, "mountinfo")
	pc := filepath.Join(dir, "cgroup")
	os.WriteFile(mi, []byte(`30 25 0:27 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu
31 25 0:28 /ns /sys/fs/cgroup/memory rw,relatime shared:10 - cgroup cgroup rw,memory
32 25 0:29 / /sys/fs/cgroup/pids rw,relatime shared:11 - cgroup cgroup rw,pids
33 25 0:30 / /sys/fs/cgroup/unified rw,relatime shared:12 - cgroup2 cgroup2 rw
`), 0o644)
	os.WriteFile(pc, []byte("8:pids:/\n4:memory:/ns/daemon\n1:cpu:/svc\n0::/\n"), 0o644)
	got, err := findV1(mi, pc, "coconut-x")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]v1Dir{
		"cpu":    {"/sys/fs/cgroup/cpu", "/svc/coconut-x"},
		"memory": {"/sys/fs/cgroup/memory", "/daemon/coconut-x"},
		"pids":   {"/sys/fs/cgroup/pids", "/coconut-x"},
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %+v, want %+v", k, got[k], v)
		}
	}
	t.Run("missing controller", func(t *testing.T) {
		os.WriteFile(pc, []byte("4:memory:/ns\n1:cpu:/\n"), 0o644)
		if _, err := findV1(mi, pc, "coconut-x"); err == nil {
			t.Fatal("no pids line accepted")
		}
	})
	t.Run("nested in an agent", func(t *testing.T) {
		os.WriteFile(pc, []byte("8:pids:/coconut/agent-3\n4:memory:/ns\n1:cpu:/\n"), 0o644)
		if _, err := findV1(mi, pc, "coconut-x"); err == nil {
			t.Fatal("nesting accepted")
		}
	})
}

func FuzzParseProcCgroup(f *testing.F) {
	for _, s := range []string{"4:memory:/a/b\n0::/\n", "2:cpu,cpuacct:/\n", "", ":::\n", "x:y:/z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseProcCgroup(s)
		if err == nil && len(m) == 0 {
			t.Fatal("success with no hierarchies")
		}
	})
}

func FuzzParseKeyed(f *testing.F) {
	f.Add([]byte("usage_usec 12\nuser_usec 3\n"), "usage_usec")
	f.Add([]byte("oom_kill\n"), "oom_kill")
	f.Fuzz(func(t *testing.T, b []byte, key string) {
		parseKeyed(b, key)
	})
}
