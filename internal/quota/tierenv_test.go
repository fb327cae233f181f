package quota

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMPSLimit(t *testing.T) {
	tests := []struct {
		devices []int
		bytes   int64
		want    string
	}{
		{nil, 1 << 30, ""},
		{[]int{0}, 2 << 30, "0=2048M"},
		{[]int{0, 1}, 1536 << 20, "0=1536M,1=1536M"},
		{[]int{3}, 100, "3=1M"},
	}
	for _, tt := range tests {
		if got := mpsLimit(tt.devices, tt.bytes); got != tt.want {
			t.Errorf("mpsLimit(%v, %d) = %q, want %q", tt.devices, tt.bytes, got, tt.want)
		}
	}
}

func TestNvidiaDevices(t *testing.T) {
	dev := t.TempDir()
	for _, n := range []string{"nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "nvme0"} {
		os.WriteFile(filepath.Join(dev, n), nil, 0o600)
	}
	got := nvidiaDevices(dev)
	if len(got) != 2 || got[0] != 0 || got[1] != 1 {
		t.Fatalf("devices %v", got)
	}
}
