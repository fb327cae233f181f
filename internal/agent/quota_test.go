package agent

import (
	"testing"

	"github.com/coconut-os/coconut/internal/manifest"
	"github.com/coconut-os/coconut/internal/quota"
)

func TestLimits(t *testing.T) {
	tests := []struct {
		name string
		q    manifest.Quota
		mem  manifest.MemoryTiers
		want quota.Limits
	}{
		{"nothing", manifest.Quota{}, manifest.MemoryTiers{}, quota.Limits{}},
		{"ram is the limit", manifest.Quota{}, manifest.MemoryTiers{RAM: 64 << 20}, quota.Limits{MemoryMax: 64 << 20}},
		{"lower of max and ram", manifest.Quota{MemoryMax: 32 << 20}, manifest.MemoryTiers{RAM: 64 << 20}, quota.Limits{MemoryMax: 32 << 20}},
		{"ram below max", manifest.Quota{MemoryMax: 128 << 20, MemoryHigh: 100 << 20}, manifest.MemoryTiers{RAM: 64 << 20}, quota.Limits{MemoryMax: 64 << 20}},
		{"cpu and pids pass through", manifest.Quota{CPUWeight: 300, CPUMax: "max 100000", Pids: 9, IOWeight: 7, Tokens: 5}, manifest.MemoryTiers{HBM: 1},
			quota.Limits{CPUWeight: 300, CPUMax: "max 100000", Pids: 9, IOWeight: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := limits(tt.q, tt.mem); got != tt.want {
				t.Fatalf("limits = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestQuotaString(t *testing.T) {
	tests := []struct {
		q    manifest.Quota
		want string
	}{
		{manifest.Quota{}, "unlimited"},
		{manifest.Quota{CPUWeight: 500, CPUMax: "50000 100000", Pids: 16}, "cpu_weight=500 cpu_max=50000/100000 pids=16"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := quotaString(tt.q); got != tt.want {
				t.Fatalf("quotaString = %q, want %q", got, tt.want)
			}
		})
	}
}
