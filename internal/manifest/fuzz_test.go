package manifest

import (
	"errors"
	"testing"
)

func FuzzParse(f *testing.F) {
	f.Add([]byte(valid))
	f.Add([]byte(agent(cmd, "replicas: 3", "env: {A: b}", "quota: {memoryMax: 1Gi}")))
	f.Add([]byte("apiVersion: &a x\nkind: *a\n"))
	f.Add([]byte("a: [b\n"))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte(""))
	f.Add([]byte("agents: [{name: a, command: [/x], capabilities: [fs.read:/**], ceiling: [fs.read:/**]}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse("f.yaml", data)
		if err != nil {
			if m != nil || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v with manifest %v, or not ErrInvalid", err, m)
			}
			return
		}
		// Accepted manifests must hold up the invariants callers rely on.
		inst := m.Instances()
		if len(inst) == 0 || len(inst) > MaxInstances {
			t.Fatalf("%d instances", len(inst))
		}
		seen := map[string]bool{}
		for _, in := range inst {
			if seen[in.Name] || checkName(in.Name) != nil {
				t.Fatalf("bad or duplicate instance name %q", in.Name)
			}
			seen[in.Name] = true
		}
	})
}
