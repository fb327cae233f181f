package quota

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
)

// TierEnv is what an agent is told about its memory tiers: the SSD
// tier's mount (scratch, when it has ssd bytes of it), and on a machine with
// NVIDIA GPUs the HBM budget as CUDA MPS's per-client pinned device
// memory limit, so a CUDA program of the agent cannot allocate past its
// ledger even outside the broker.
func TierEnv(ssd, hbm int64, scratch string) []string {
	var env []string
	if ssd > 0 {
		env = append(env, "COCONUT_SCRATCH="+scratch)
	}
	if hbm > 0 {
		if v := mpsLimit(nvidiaDevices("/dev"), hbm); v != "" {
			env = append(env, "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT="+v)
		}
	}
	return env
}

var nvidiaDev = regexp.MustCompile(`^nvidia([0-9]+)$`)

// nvidiaDevices lists the GPU indexes that have a /dev/nvidiaN node.
func nvidiaDevices(dev string) []int {
	ents, _ := os.ReadDir(dev)
	var out []int
	for _, e := range ents {
		if m := nvidiaDev.FindStringSubmatch(e.Name()); m != nil {
			if _, err := os.Stat(filepath.Join(dev, e.Name())); err == nil {
				n, _ := strconv.Atoi(m[1])
				out = append(out, n)
			}
		}
	}
	sort.Ints(out)
	return out
}

// mpsLimit formats CUDA_MPS_PINNED_DEVICE_MEM_LIMIT ("0=1024M,1=1024M"):
// the same budget on every device, in MiB rounded down (at least 1).
func mpsLimit(devices []int, bytes int64) string {
	mib := max(bytes>>20, 1)
	s := ""
	for i, d := range devices {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprintf("%d=%dM", d, mib)
	}
	return s
}
