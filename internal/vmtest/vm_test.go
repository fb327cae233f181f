package vmtest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestVM boots each Debian kernel with BPF LSM active and runs
// internal/bpflsm's tests inside (the guest tests, the probe, the spec
// checks); a guest test failure fails the host test of that kernel. It boots
// qemu guests (a minute or more on 2 cores), so it runs with
// COCONUT_VMTEST=1: make vmtest, and .ci/run when bpf/, internal/bpflsm or
// this harness change.
func TestVM(t *testing.T) {
	if os.Getenv("COCONUT_VMTEST") == "" {
		t.Skip("boots qemu guests: run make vmtest (COCONUT_VMTEST=1)")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("no qemu-system-x86_64 (apt-get install qemu-system-x86)")
	}
	bb := "/bin/busybox"
	if !isStatic(bb) {
		t.Skip("no static /bin/busybox (apt-get install busybox-static)")
	}
	root, _ := filepath.Abs("../..")
	dir := t.TempDir()
	var workloads []Workload
	for _, w := range guestSuites {
		bin := filepath.Join(dir, w.name+".test")
		build := exec.Command("go", "test", "-c", "-o", bin, w.pkg)
		build.Dir = root
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go test -c %s: %v\n%s", w.pkg, err, out)
		}
		run := w.run
		if r := os.Getenv("COCONUT_VMTEST_RUN"); r != "" {
			run = r
		}
		args := []string{"-test.v", "-test.count=1", "-test.run", run}
		if b := os.Getenv("COCONUT_VMTEST_BENCH"); b != "" {
			args = append(args, "-test.bench", b)
		}
		workloads = append(workloads, Workload{Name: w.name, Path: bin, Args: args})
	}
	// coconutd, its trampoline and the CLI for TestGuestDaemon, and the
	// demo user its agents run as.
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "bin")+"/", "./cmd/coconutd", "./cmd/coconut", "./cmd/coconut-trampoline")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build coconutd: %v\n%s", err, out)
	}
	extra := map[string]Entry{
		"etc/passwd":        {Mode: 0o644, Data: []byte("root:x:0:0:root:/root:/bin/sh\n" + guestUser + ":x:1000:1000::/home/" + guestUser + ":/bin/sh\n")},
		"etc/group":         {Mode: 0o644, Data: []byte("root:x:0:\n" + guestUser + ":x:1000:\n")},
		"root":              {Mode: 0o700, Dir: true},
		"home/" + guestUser: {Mode: 0o755, Dir: true},
	}
	for _, b := range []string{"coconutd", "coconut", "coconut-trampoline"} {
		e, err := File(filepath.Join(dir, "bin", b), 0o755)
		if err != nil {
			t.Fatal(err)
		}
		extra["w/bin/"+b] = e
	}
	initrd := filepath.Join(dir, "initrd.cpio")
	img, err := InitramfsFiles(bb, workloads, []string{"COCONUT_VMGUEST=1", BinsEnv + "=/w/bin"}, extra)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(initrd, img, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range Kernels {
		t.Run(name, func(t *testing.T) {
			// The guests run side by side: each is one vCPU of TCG (one
			// host thread), so two of them use the host's two cores and
			// the step takes as long as its slowest guest, not the sum
			// (the path hooks' 30 programs, verified at every load, put
			// the sum past CI's 4-minute budget).
			t.Parallel()
			kernel, err := Kernel(root, name)
			if err != nil {
				t.Skipf("kernel package %s cannot be had: %v", name, err)
			}
			// TCG on a loaded 2-core host: a guest has taken up to 105 s
			// alone, and with the path hooks (30 programs verified at
			// each load) 143 s (bookworm) and over 240 s (trixie) while
			// three other builds shared the host's two cores.
			ctx, cancel := context.WithTimeout(context.Background(), 420*time.Second)
			defer cancel()
			res, err := Boot(ctx, kernel, initrd, func(l string) {
				if interesting(l) {
					t.Log(l)
				}
			})
			if err != nil {
				t.Fatalf("%v\n%s", err, res.Output)
			}
			t.Logf("%s: boot + tests + poweroff in %.1fs", name, res.Took.Seconds())
			if !strings.Contains(res.Output, "lsm=") || !strings.Contains(res.Output, ",bpf") && !strings.Contains(res.Output, "bpf,") {
				t.Errorf("bpf is not in the guest's active LSM list:\n%s", res.Output)
			}
			for _, m := range failRE.FindAllString(res.Output, -1) {
				t.Errorf("guest: %s", m)
			}
			if skipRE.MatchString(res.Output) {
				t.Errorf("a guest test skipped (nothing may skip inside the VM):\n%s", strings.Join(skipRE.FindAllString(res.Output, -1), "\n"))
			}
			for _, w := range workloads {
				rc, ok := res.RC[w.Name]
				if !ok || rc != 0 {
					t.Errorf("guest %s tests: exit %d (reported: %v)", w.Name, rc, ok)
				}
			}
			if t.Failed() {
				t.Logf("guest console:\n%s", res.Output)
			}
		})
	}
}

// guestSuites are the test binaries the guests run.
var guestSuites = []struct{ name, pkg, run string }{
	{"bpflsm", "./internal/bpflsm", "TestGuest|TestProbe|TestSpec|TestCompile"},
	{"enforce", "./internal/enforce", "TestChooseBPFLSM|TestGuest"},
	{"daemon", "./internal/vmtest", "TestGuestDaemon"},
}

// guestUser is the unprivileged user the guest's coconutd runs agents as
// (--user): the initramfs has it in /etc/passwd, with no useradd.
const guestUser = "coconut-demo"

var (
	failRE = regexp.MustCompile(`(?m)^\s*--- FAIL: .*$`)
	skipRE = regexp.MustCompile(`(?m)^\s*--- SKIP: .*$`)
)

func interesting(l string) bool {
	l = strings.TrimSpace(l)
	return strings.HasPrefix(l, "---") || strings.HasPrefix(l, "COCONUT-VMTEST") || strings.HasPrefix(l, "Benchmark") ||
		strings.HasPrefix(l, "PASS") || strings.HasPrefix(l, "FAIL") || strings.Contains(l, "_test.go:") || strings.HasPrefix(l, "ok")
}

func isStatic(p string) bool {
	out, err := exec.Command("file", "-L", p).Output()
	if err != nil {
		// no file(1): trust the path if it exists.
		_, serr := os.Stat(p)
		return serr == nil
	}
	return strings.Contains(string(out), "statically linked")
}

// TestVMBench is make vmbench: TestBenchInGuest in each guest, printed as a
// table, and the JSON (per kernel, each with its headline) written to
// $COCONUT_VMBENCH_JSON (default bin/vmbench.json).
func TestVMBench(t *testing.T) {
	if os.Getenv("COCONUT_VMBENCH") == "" {
		t.Skip("boots qemu guests: run make vmbench (COCONUT_VMBENCH=1)")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("no qemu-system-x86_64 (apt-get install qemu-system-x86)")
	}
	root, _ := filepath.Abs("../..")
	dir := t.TempDir()
	bin := filepath.Join(dir, "bpflsm.test")
	build := exec.Command("go", "test", "-c", "-o", bin, "./internal/bpflsm")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go test -c: %v\n%s", err, out)
	}
	img, err := Initramfs("/bin/busybox", []Workload{{Name: "bench", Path: bin, Args: []string{"-test.v", "-test.count=1", "-test.run", "^TestBenchInGuest$"}}},
		[]string{"COCONUT_VMGUEST=1", "COCONUT_VMBENCH=1"})
	if err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(dir, "initrd.cpio")
	os.WriteFile(initrd, img, 0o644)
	all := map[string]json.RawMessage{}
	fmt.Printf("%-10s %-22s %12s %14s %16s %21s\n", "kernel", "", "bpflsm/none", "nonagent/none", "ops_after_revoke", "fd_reads_after_revoke")
	for _, name := range Kernels {
		kernel, err := Kernel(root, name)
		if err != nil {
			t.Skipf("kernel package %s cannot be had: %v", name, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Second)
		res, err := Boot(ctx, kernel, initrd, nil)
		cancel()
		if err != nil || res.RC["bench"] != 0 {
			t.Fatalf("%s: %v\n%s", name, err, res.Output)
		}
		m := benchRE.FindStringSubmatch(res.Output)
		if m == nil {
			t.Fatalf("%s: no COCONUT-VMBENCH line:\n%s", name, res.Output)
		}
		var r struct {
			Kernel   string
			Headline struct {
				Bpflsm   float64 `json:"bpflsm_open_ratio"`
				Nonagent float64 `json:"nonagent_open_ratio"`
				Ops      int     `json:"ops_after_revoke"`
				FD       int     `json:"fd_reads_after_revoke"`
			}
		}
		if err := json.Unmarshal([]byte(m[1]), &r); err != nil {
			t.Fatal(err)
		}
		all[name] = json.RawMessage(m[1])
		fmt.Printf("%-10s %-22s %12.3f %14.3f %16d %21d\n", name, r.Kernel, r.Headline.Bpflsm, r.Headline.Nonagent, r.Headline.Ops, r.Headline.FD)
	}
	// The top-level headline is bookworm's (the older kernel); every
	// kernel's own is under kernels.
	var first map[string]json.RawMessage
	json.Unmarshal(all[Kernels[0]], &first)
	b, _ := json.MarshalIndent(map[string]any{"headline": first["headline"], "kernels": all}, "", "  ")
	out := os.Getenv("COCONUT_VMBENCH_JSON")
	if out == "" {
		out = filepath.Join(root, "bin", "vmbench.json")
	}
	os.MkdirAll(filepath.Dir(out), 0o755)
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("JSON: %s\n%s\n", out, b)
}

var benchRE = regexp.MustCompile(`COCONUT-VMBENCH (\{.*\})`)
