package agent

import (
	"strings"
	"testing"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/config"
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

func TestApplyDefaults(t *testing.T) {
	d := config.Defaults{Pids: 1024, MemoryMax: 6 << 30, CPUWeight: 100}
	tests := []struct {
		name string
		q    manifest.Quota
		mem  manifest.MemoryTiers
		want manifest.Quota
	}{
		{"nothing set", manifest.Quota{}, manifest.MemoryTiers{}, manifest.Quota{Pids: 1024, MemoryMax: 6 << 30, CPUWeight: 100}},
		{"own values kept", manifest.Quota{Pids: 32, MemoryMax: 64 << 20, CPUWeight: 200, Tokens: 9}, manifest.MemoryTiers{},
			manifest.Quota{Pids: 32, MemoryMax: 64 << 20, CPUWeight: 200, Tokens: 9}},
		{"max is no limit", manifest.Quota{Pids: manifest.Unlimited, MemoryMax: manifest.Unlimited}, manifest.MemoryTiers{},
			manifest.Quota{CPUWeight: 100}},
		{"ram tier is a memory bound", manifest.Quota{}, manifest.MemoryTiers{RAM: 8 << 30}, manifest.Quota{Pids: 1024, CPUWeight: 100}},
		{"memory high is a memory bound", manifest.Quota{MemoryHigh: 8 << 30}, manifest.MemoryTiers{},
			manifest.Quota{Pids: 1024, MemoryHigh: 8 << 30, CPUWeight: 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := applyDefaults(tt.q, tt.mem, d); got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	if got := applyDefaults(manifest.Quota{Pids: manifest.Unlimited}, manifest.MemoryTiers{}, config.Defaults{}); got != (manifest.Quota{}) {
		t.Fatalf("no defaults configured: %+v", got)
	}
}

func TestRunQuotaMax(t *testing.T) {
	q, _, err := runQuota(&api.QuotaBudget{Pids: -1, MemoryMax: -1})
	if err != nil || q.Pids != manifest.Unlimited || q.MemoryMax != manifest.Unlimited {
		t.Fatalf("pids and memory_max -1: %+v, %v", q, err)
	}
	for _, b := range []api.QuotaBudget{{Pids: -2}, {MemoryHigh: -1}, {CPUWeight: -1}, {MemoryMax: -5}} {
		if _, _, err := runQuota(&b); err == nil || !strings.Contains(err.Error(), "must not be negative at spawn") {
			t.Errorf("%+v: err %v", b, err)
		}
	}
}
