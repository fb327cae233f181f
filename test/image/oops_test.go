package image

import (
	"os"
	"strings"
	"testing"
)

// kernelOops returns the guest kernel's oops or panic report from the
// serial console (from the first Oops/BUG line to the end of the panic),
// or "" when the kernel did not die.
func kernelOops(log []byte) string {
	s := string(log)
	end := strings.Index(s, "Kernel panic - not syncing")
	if end < 0 {
		return ""
	}
	start := end
	for _, marker := range []string{"Oops:", "BUG:", "general protection fault", "WARNING:"} {
		if i := strings.Index(s, marker); i >= 0 && i < start {
			start = i
		}
	}
	start = strings.LastIndexByte(s[:start], '\n') + 1
	if nl := strings.IndexByte(s[end:], '\n'); nl >= 0 {
		end += nl
	} else {
		end = len(s)
	}
	const max = 8000 // the call trace and the registers, not pages of them
	out := s[start:end]
	if len(out) > max {
		out = out[:max] + "\n[...]"
	}
	return out
}

// TestKernelOops reads the serial console of a boot that died (the int3
// oops multi-threaded TCG caused, trimmed from a real run) and of one that
// did not: the boot test reports the first and runs on with the second.
func TestKernelOops(t *testing.T) {
	died, err := os.ReadFile("testdata/serial-int3-oops.log")
	if err != nil {
		t.Fatal(err)
	}
	oops := kernelOops(died)
	for _, want := range []string{"Oops: int3", "enqueue_entity", "Call Trace:", "Kernel panic - not syncing"} {
		if !strings.Contains(oops, want) {
			t.Errorf("the report lacks %q:\n%s", want, oops)
		}
	}
	if strings.Contains(oops, "COCONUT-IMAGE-TEST user PASS") {
		t.Errorf("the report starts before the oops:\n%s", oops)
	}
	clean := died[:strings.Index(string(died), "[   31.044957] Oops")]
	if got := kernelOops(clean); got != "" {
		t.Errorf("a boot that did not die reported:\n%s", got)
	}
}
