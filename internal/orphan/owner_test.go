package orphan

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestParseStart(t *testing.T) {
	tests := []struct {
		name, stat string
		want       uint64
		ok         bool
	}{
		{"plain", "42 (sleep) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 12345 8192 100", 12345, true},
		{"spaces and parens in comm", "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 777 8192 100", 777, true},
		{"too short", "42 (x) S 1 2 3", 0, false},
		{"no comm", "42 x S", 0, false},
		{"zero start", "42 (x) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 0 8192 100", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStart(tt.stat)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("parseStart = %d, %v; want %d, ok %v", got, err, tt.want, tt.ok)
			}
		})
	}
}

// TestRecordAlive: a record written by this process names it and is
// alive; one naming an exited process (or a reused pid with another start
// time) is not.
func TestRecordAlive(t *testing.T) {
	reg, state := t.TempDir(), t.TempDir()
	if err := Record(reg, state, "/sys/fs/cgroup/unified/coconut-test", "/sys/fs/bpf/coconut-test"); err != nil {
		t.Fatal(err)
	}
	owners, err := Owners(reg)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := owners["coconut-test"]
	if !ok || o.PID != os.Getpid() || o.StateDir != state || !o.Alive() || !o.StateDirExists() {
		t.Fatalf("record %+v (found %v): want this process, alive, state dir %s", o, ok, state)
	}
	reused := o
	reused.Start++
	if reused.Alive() {
		t.Error("a record whose start time differs is alive")
	}
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	exited := o
	exited.PID = cmd.Process.Pid
	if exited.Alive() {
		t.Error("a record of an exited process is alive")
	}
	if err := Forget(reg, "coconut-test"); err != nil {
		t.Fatal(err)
	}
	if owners, _ := Owners(reg); len(owners) != 0 {
		t.Errorf("after Forget: %v", owners)
	}
}

func TestOwnersRejectsMalformed(t *testing.T) {
	reg := t.TempDir()
	os.WriteFile(filepath.Join(reg, "coconut-x.json"), []byte(`{"name":"coconut-y","state_dir":"/s","pid":1,"start":1}`), 0o644)
	if _, err := Owners(reg); err == nil {
		t.Error("a record whose name is not its file's: no error")
	}
}

func FuzzParseOwner(f *testing.F) {
	f.Add([]byte(`{"name":"coconut-ab","state_dir":"/tmp/s","pid":12,"start":99,"cgroup":"/c","pins":"/p"}`))
	f.Add([]byte(`{"name":"../x","state_dir":"/tmp/s","pid":12,"start":99}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := ParseOwner(b)
		if err != nil {
			return
		}
		if o.Name == "" || o.Name == ".." || filepath.Base(o.Name) != o.Name || !filepath.IsAbs(o.StateDir) || o.PID <= 0 || o.Start == 0 {
			t.Fatalf("accepted %+v", o)
		}
	})
}

func FuzzParseStart(f *testing.F) {
	f.Add("42 (sleep) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 12345 8192 100")
	f.Add(")")
	f.Fuzz(func(t *testing.T, s string) {
		if v, err := parseStart(s); err == nil && v == 0 {
			t.Fatal("zero start accepted")
		}
	})
}
