package manifest

import (
	"strings"
	"testing"
)

// TestQuotaMax: `max` in pids and memoryMax asks for no limit explicitly
// (the host's defaults then do not apply); an absent field stays zero.
func TestQuotaMax(t *testing.T) {
	tests := []struct {
		name    string
		quota   string
		want    Quota
		wantErr string
	}{
		{"absent", "quota: {cpuWeight: 50}", Quota{CPUWeight: 50}, ""},
		{"pids max", "quota: {pids: max}", Quota{Pids: Unlimited}, ""},
		{"quoted", `quota: {pids: "max", memoryMax: "max"}`, Quota{Pids: Unlimited, MemoryMax: Unlimited}, ""},
		{"memoryMax max with high", "quota: {memoryMax: max, memoryHigh: 1Gi}", Quota{MemoryMax: Unlimited, MemoryHigh: 1 << 30}, ""},
		{"pids Max", "quota: {pids: Max}", Quota{}, "agents[0].quota.pids: must be an integer, got a string"},
		{"pids -1", "quota: {pids: -1}", Quota{}, "agents[0].quota.pids: must be between 1"},
		{"memoryHigh max", "quota: {memoryHigh: max}", Quota{}, "agents[0].quota.memoryHigh: size must be bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse("m.yaml", []byte(agent(cmd, tt.quota)))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Agents[0].Quota; got != tt.want {
				t.Fatalf("quota %+v, want %+v", got, tt.want)
			}
		})
	}
}
