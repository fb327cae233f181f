package quota

import (
	"errors"
	"testing"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		l    Limits
		ok   bool
	}{
		{"zero", Limits{}, true},
		{"full", Limits{CPUWeight: 100, CPUMax: "50000 100000", MemoryMax: 64 << 20, MemoryHigh: 32 << 20, Pids: 64, IOWeight: 10}, true},
		{"weight too big", Limits{CPUWeight: 10001}, false},
		{"weight negative", Limits{CPUWeight: -5}, false},
		{"io weight too big", Limits{IOWeight: 20000}, false},
		{"memory tiny", Limits{MemoryMax: 4096}, false},
		{"high above max", Limits{MemoryMax: 8 << 20, MemoryHigh: 16 << 20}, false},
		{"pids negative", Limits{Pids: -2}, false},
		{"cpu max garbage", Limits{CPUMax: "lots"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.l.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate(%+v) = %v, want ok=%v", tt.l, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	base := Limits{CPUWeight: 100, MemoryMax: 64 << 20, Pids: 10, CPUMax: "50000 100000"}
	tests := []struct {
		name    string
		ch      Limits
		want    Limits
		wantErr bool
	}{
		{"nothing", Limits{}, base, false},
		{"weight", Limits{CPUWeight: 500}, Limits{CPUWeight: 500, MemoryMax: 64 << 20, Pids: 10, CPUMax: "50000 100000"}, false},
		{"remove memory and cpu max", Limits{MemoryMax: -1, CPUMax: "max"}, Limits{CPUWeight: 100, Pids: 10}, false},
		{"bad remove", Limits{Pids: -7}, base, true},
		{"invalid result", Limits{MemoryMax: 100}, base, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := base.Merge(tt.ch)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Merge: %v", err)
			}
			if got != tt.want {
				t.Fatalf("Merge = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseCPUMax(t *testing.T) {
	tests := []struct {
		in     string
		quota  int64
		period uint64
		ok     bool
	}{
		{"50000 100000", 50000, 100000, true},
		{"max", -1, 100000, true},
		{"max 20000", -1, 20000, true},
		{"25000", 25000, 100000, true},
		{"", 0, 0, false},
		{"10 100000", 0, 0, false},
		{"50000 10", 0, 0, false},
		{"50000 100000 1", 0, 0, false},
		{"-5 100000", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			q, p, err := ParseCPUMax(tt.in)
			if (err == nil) != tt.ok || (tt.ok && (q != tt.quota || p != tt.period)) {
				t.Fatalf("ParseCPUMax(%q) = %d, %d, %v", tt.in, q, p, err)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1048576", 1 << 20, true},
		{"512M", 512 << 20, true},
		{"2GiB", 2 << 30, true},
		{"4k", 4 << 10, true},
		{"max", -1, true},
		{"", 0, false},
		{"-1", 0, false},
		{"1.5G", 0, false},
		{"99999999999T", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("ParseSize(%q) = %d, %v", tt.in, got, err)
			}
		})
	}
}

func TestShares(t *testing.T) {
	for w, want := range map[int]uint64{0: 1024, 100: 1024, 1: 10, 10000: 102400} {
		if got := shares(w); got != want {
			t.Errorf("shares(%d) = %d, want %d", w, got, want)
		}
	}
}

func TestReserve(t *testing.T) {
	tests := []struct {
		name           string
		used, limit, n int64
		want           int64
		err            error
	}{
		{"fits", 0, 100, 60, 60, nil},
		{"exactly", 60, 100, 40, 100, nil},
		{"over", 60, 100, 41, 60, ErrOverBudget},
		{"no budget", 0, 0, 1, 0, ErrNoTier},
		{"free", 60, 100, -60, 0, nil},
		{"free too much", 10, 100, -11, 10, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Reserve(HBM, tt.used, tt.limit, tt.n)
			if got != tt.want || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("Reserve = %d, %v; want %d, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

func TestParseTier(t *testing.T) {
	for _, s := range []string{"hbm", "ram", "ssd"} {
		if _, err := ParseTier(s); err != nil {
			t.Errorf("ParseTier(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "HBM", "disk"} {
		if _, err := ParseTier(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseTier(%q) = %v, want ErrInvalid", s, err)
		}
	}
}

func FuzzParseCPUMax(f *testing.F) {
	for _, s := range []string{"50000 100000", "max", "max 1000", "1 1", "", "9223372036854775807 1000000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, p, err := ParseCPUMax(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		if p < minCPUPeriod || p > maxCPUPeriod || (q != -1 && q < minCPUQuota) {
			t.Fatalf("accepted out-of-range %q: %d %d", s, q, p)
		}
	})
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"1", "512M", "2GiB", "max", "", "-3", "8T"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err == nil && n < -1 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
	})
}
