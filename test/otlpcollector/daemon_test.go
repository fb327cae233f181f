package otlpcollector_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/export/otlp"
	"github.com/coconut-os/coconut/internal/testutil"
)

// TestCoconutdExports: coconutd with [export.otlp] in its config sends its
// chain to the collector; doctor --json and /metrics say the lag; after a
// restart it resumes from the acknowledged seq (every row, its own
// daemon.stop included, arrives; at most the batch in flight twice).
func TestCoconutdExports(t *testing.T) {
	testutil.RequireRoot(t, "coconutd creates cgroups")
	dir, err := os.MkdirTemp("", "coconut-otel-daemon-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bins := filepath.Join(dir, "bin")
	// Built in coconutd's own module, with its go.mod, not this one's.
	if out, err := exec.Command("go", "-C", "../..", "build", "-o", bins+"/", "./cmd/coconutd", "./cmd/coconut").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	col := startCollector(t, otlp.ProtocolGRPC)
	state, sock := filepath.Join(dir, "state"), filepath.Join(dir, "sock")
	cfg := filepath.Join(dir, "coconut.toml")
	headers := filepath.Join(dir, "otlp.headers")
	if err := os.WriteFile(headers, []byte("# test\nX-Scope-OrgID: otel-test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "[export.otlp]\nendpoint = %q\ninsecure = true\nheaders_file = %q\n", col.endpoint(), headers), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "daemon.log")
	var daemon *exec.Cmd
	start := func() {
		logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer logf.Close()
		daemon = exec.Command(filepath.Join(bins, "coconutd"), "--state-dir", state, "--socket", sock, "--config", cfg, "--broker-addr", "127.0.0.1:0")
		daemon.Stdout, daemon.Stderr = logf, logf
		if err := daemon.Start(); err != nil {
			t.Fatal(err)
		}
	}
	stop := func() {
		daemon.Process.Signal(syscall.SIGTERM)
		daemon.Wait()
	}
	defer func() {
		stop()
		if out, err := exec.Command(filepath.Join(bins, "coconutd"), "--uninstall", "--kill-agents", "--state-dir", state, "--config", "/dev/null").CombinedOutput(); err != nil {
			t.Errorf("coconutd --uninstall: %v\n%s", err, out)
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("coconutd log:\n%s", b)
		}
	}()
	// doctor waits until the collector acknowledged the whole chain.
	caughtUp := func() api.Doctor {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			cmd := exec.Command(filepath.Join(bins, "coconut"), "doctor", "--json")
			cmd.Env = append(os.Environ(), "COCONUT_SOCKET="+sock, "COCONUT_STATE_DIR="+state)
			out, _ := cmd.Output()
			var d api.Doctor
			if json.Unmarshal(out, &d) == nil && d.Export != nil && d.ChainHead > 0 && d.Export.LagRows == 0 && d.Export.AckedSeq == d.ChainHead {
				if d.Export.Endpoint != col.endpoint() || d.Export.Protocol != "grpc" || d.Export.LastError != "" || d.Export.LastAck == nil {
					t.Errorf("doctor export %+v", *d.Export)
				}
				return d
			}
			if time.Now().After(deadline) {
				t.Fatalf("export never caught up; doctor said %s", out)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	start()
	d := caughtUp()
	resp, err := http.Get("http://" + d.BrokerAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"coconut_export_otlp_lag_rows 0", fmt.Sprintf("coconut_export_otlp_acked_seq %d", d.ChainHead), "coconut_export_otlp_rows_total"} {
		if !strings.Contains(string(m), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if g := col.sink.get(1); len(g) != 1 || g[0].event != audit.TypeDaemonStart || g[0].resource[otlp.KeyHostKeyID] != d.HostKeyID {
		t.Errorf("seq 1 at the collector: %+v", g)
	}
	first := d.ChainHead

	stop()
	start()
	d = caughtUp()
	miss, dups := col.sink.missing(d.ChainHead)
	if len(miss) != 0 {
		t.Fatalf("rows never exported: %v", miss)
	}
	if dups > otlp.DefaultBatchRows {
		t.Errorf("%d duplicates after a clean restart, more than one batch", dups)
	}
	stopped := false
	for q := first + 1; q <= d.ChainHead; q++ {
		if g := col.sink.get(q); len(g) > 0 && g[0].event == audit.TypeDaemonStop {
			stopped = true
		}
	}
	if !stopped {
		t.Errorf("the first daemon's daemon.stop (after seq %d) never reached the collector", first)
	}
	t.Logf("chain %d rows, all at the collector, %d duplicates", d.ChainHead, dups)
}
