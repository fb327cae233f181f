package config

import (
	"strings"
	"testing"
)

func TestQuotaDefaultsResolve(t *testing.T) {
	const ram = 24 << 30
	tests := []struct {
		name    string
		in      QuotaDefaults
		want    Defaults
		wantErr string
	}{
		{"unset", QuotaDefaults{}, Defaults{Pids: 1024, MemoryMax: ram / 4, CPUWeight: 100, Memory: "25%"}, ""},
		{"share", QuotaDefaults{Memory: "10%"}, Defaults{Pids: 1024, MemoryMax: ram * 10 / 100, CPUWeight: 100, Memory: "10%"}, ""},
		{"size", QuotaDefaults{Pids: "64", Memory: "512M", CPUWeight: 300}, Defaults{Pids: 64, MemoryMax: 512 << 20, CPUWeight: 300, Memory: "512M"}, ""},
		{"bytes", QuotaDefaults{Memory: "8388608"}, Defaults{Pids: 1024, MemoryMax: 8 << 20, CPUWeight: 100, Memory: "8388608"}, ""},
		{"max", QuotaDefaults{Pids: "max", Memory: "max"}, Defaults{CPUWeight: 100, Memory: "max"}, ""},
		{"pids too many", QuotaDefaults{Pids: "4194305"}, Defaults{}, `pids "4194305"`},
		{"pids word", QuotaDefaults{Pids: "lots"}, Defaults{}, `pids "lots"`},
		{"zero share", QuotaDefaults{Memory: "0%"}, Defaults{}, "a share is 1%..100%"},
		{"tiny", QuotaDefaults{Memory: "1M"}, Defaults{}, "below the 4194304 bytes"},
		{"size word", QuotaDefaults{Memory: "plenty"}, Defaults{}, "want a share of RAM"},
		{"weight", QuotaDefaults{CPUWeight: 10001}, Defaults{}, "cpu_weight 10001: must be 1..10000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.Resolve(ram)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
	if _, err := (QuotaDefaults{}).Resolve(0); err == nil || !strings.Contains(err.Error(), "RAM is unknown") {
		t.Fatalf("a share with unknown RAM: %v", err)
	}
}

// FuzzQuotaDefaults: any setting either resolves to limits within the
// kernel's bounds or is refused with an error; nothing panics.
func FuzzQuotaDefaults(f *testing.F) {
	for _, s := range [][2]string{{"1024", "25%"}, {"max", "max"}, {"64", "512M"}, {"0", "0%"}, {"-1", "-5G"}, {"9999999999999", "100%"}, {"", "1.5G"}} {
		f.Add(s[0], s[1], 100)
	}
	f.Fuzz(func(t *testing.T, pids, memory string, weight int) {
		d, err := QuotaDefaults{Pids: Setting(pids), Memory: Setting(memory), CPUWeight: weight}.Resolve(24 << 30)
		if err != nil {
			return
		}
		if d.Pids < 0 || d.Pids > 4<<20 || d.MemoryMax < 0 || d.MemoryMax != 0 && d.MemoryMax < 4<<20 || d.CPUWeight < 1 || d.CPUWeight > 10000 {
			t.Fatalf("%q %q %d resolved out of bounds: %+v", pids, memory, weight, d)
		}
	})
}
