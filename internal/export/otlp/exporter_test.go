package otlp

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/zeebo/blake3"

	"github.com/coconut-os/coconut/internal/audit"
)

// TestMain doubles as the child of TestExportResumesAfterKill: a process
// that appends and exports until it is killed.
func TestMain(m *testing.M) {
	if dir := os.Getenv("COCONUT_OTLP_CHILD_DIR"); dir != "" {
		if err := child(dir, os.Getenv("COCONUT_OTLP_CHILD_ENDPOINT")); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func child(dir, endpoint string) error {
	c, err := audit.Open(filepath.Join(dir, "chain"), audit.Options{})
	if err != nil {
		return err
	}
	e, err := New(Config{Endpoint: endpoint, Protocol: ProtocolGRPC, Insecure: true, StateFile: filepath.Join(dir, "otlp.json"), BatchRows: 64}, c)
	if err != nil {
		return err
	}
	e.Start()
	fmt.Println("started")
	for i := 0; ; i++ {
		r, err := c.Append(context.Background(), row(i))
		if err != nil {
			return err
		}
		if i%100 == 0 {
			fmt.Println(r.Seq)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// row is a test row of one of the kinds export maps onto GenAI
// conventions, or a plain deny.
func row(i int) audit.Record {
	aid := uint64(1 + i%5)
	switch i % 4 {
	case 0:
		return audit.AgentSpawn(aid, "/usr/bin/python3", map[string]string{"name": "reviewer-" + strconv.Itoa(i), "class": "reviewer"})
	case 1:
		return audit.InferenceCall(aid, "qwen2.5-7b", true, 0, map[string]string{"endpoint": "chat/completions", "tokens_in": "120", "tokens_out": "42"})
	case 2:
		return audit.CapPresent(aid, "x.acme.deploy", "prod", 0, 4000+i)
	}
	return audit.CapDeny(aid, "fs.read", "/home/maya/.ssh/id_ed25519", 134, 4000+i, uint64(i), nil)
}

func openChain(t *testing.T, dir string) *audit.Chain {
	t.Helper()
	c, err := audit.Open(filepath.Join(dir, "chain"), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func appendRows(t *testing.T, c *audit.Chain, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if _, err := c.Append(context.Background(), row(i)); err != nil {
			t.Fatal(err)
		}
	}
}

func newExporter(t *testing.T, col *collector, c Chain, dir string) *Exporter {
	t.Helper()
	e, err := New(Config{Endpoint: col.endpoint(), Protocol: col.protocol, Insecure: true, StateFile: filepath.Join(dir, "otlp.json"),
		HostID: "host-test", HostName: "test", Version: "v-test", HostKeyID: "key-test", BatchRows: 100, Timeout: 2 * time.Second}, c)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// waitAll waits until every seq up to the chain's head has arrived.
func waitAll(t *testing.T, s *sink, c *audit.Chain, e *Exporter) (dups int) {
	t.Helper()
	head, _ := c.Head()
	deadline := time.Now().Add(60 * time.Second)
	for {
		miss, dups := s.missing(head)
		if len(miss) == 0 {
			return dups
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d rows never arrived (first %d); exporter %+v", len(miss), head, miss[0], e.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestExportAttributes: every row arrives at a real collector receiver,
// over gRPC and HTTP, with its seq, hash and the GenAI attributes, and a
// receiver can check each body against its hash and the hashes' linkage
// with BLAKE3 alone.
func TestExportAttributes(t *testing.T) {
	for _, proto := range []string{ProtocolGRPC, ProtocolHTTP} {
		t.Run(proto, func(t *testing.T) {
			dir := t.TempDir()
			c := openChain(t, dir)
			defer c.Close()
			col := startCollector(t, proto)
			appendRows(t, c, 0, 40)
			e := newExporter(t, col, c, dir)
			e.Start()
			appendRows(t, c, 40, 40) // live rows too
			dups := waitAll(t, col.sink, c, e)
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			head, _ := c.Head()
			if dups != 0 {
				t.Errorf("%d duplicates with a collector that never failed", dups)
			}
			rows, err := c.Query(audit.Query{Limit: audit.MaxLimit})
			if err != nil {
				t.Fatal(err)
			}
			prev := genesisHash
			for _, r := range rows {
				g := col.sink.get(r.Seq)[0]
				checkLinked(t, r.Seq, g, prev, r.Hash)
				prev = r.Hash
				want := map[string]any{KeyType: r.Type, KeyResult: r.Result}
				if r.AID != 0 {
					want["gen_ai.agent.id"] = strconv.FormatUint(r.AID, 10)
				}
				switch r.Type {
				case audit.TypeAgentSpawn:
					want["gen_ai.operation.name"] = "create_agent"
					want["gen_ai.agent.name"] = r.Detail["name"]
					want[KeyDetail+"class"] = "reviewer"
				case audit.TypeInferenceCall:
					want["gen_ai.operation.name"] = "chat"
					want["gen_ai.request.model"] = "qwen2.5-7b"
					want["gen_ai.usage.input_tokens"] = int64(120)
					want["gen_ai.usage.output_tokens"] = int64(42)
				case audit.TypeCapPresent:
					want["gen_ai.operation.name"] = "execute_tool"
					want["gen_ai.tool.name"] = "x.acme.deploy"
				case audit.TypeCapDeny:
					want[KeyErrno] = int64(134)
					want[KeyCap] = "fs.read"
					if g.severity != "WARN" {
						t.Errorf("seq %d: a deny has severity %q, want WARN", r.Seq, g.severity)
					}
				}
				for k, v := range want {
					if g.attrs[k] != v {
						t.Errorf("seq %d (%s): attribute %s = %v (%T), want %v", r.Seq, r.Type, k, g.attrs[k], g.attrs[k], v)
					}
				}
				if g.event != r.Type {
					t.Errorf("seq %d: event name %q, want %q", r.Seq, g.event, r.Type)
				}
				if g.resource["host.id"] != "host-test" || g.resource[KeyHostKeyID] != "key-test" || g.resource["service.name"] != "coconutd" {
					t.Errorf("seq %d: resource %v", r.Seq, g.resource)
				}
			}
			if uint64(len(rows)) != head {
				t.Fatalf("read %d rows, head %d", len(rows), head)
			}
			st := e.Status()
			if st.AckedSeq != head || st.Lag != 0 || st.Exported != head {
				t.Errorf("status %+v, want acked = exported = %d, lag 0", st, head)
			}
			a, err := loadAcked(filepath.Join(dir, "otlp.json"))
			if err != nil || a.Seq != head {
				t.Errorf("state file: %+v, %v; want seq %d", a, err, head)
			}
		})
	}
}

// checkLinked is what a SIEM does: hash = BLAKE3(prev_hash || body), and
// prev_hash is the hash of the row before.
func checkLinked(t *testing.T, seq uint64, g got, prev, hash string) {
	t.Helper()
	if g.attrs[KeyHash] != hash || g.attrs[KeyPrevHash] != prev {
		t.Errorf("seq %d: hash %v prev_hash %v, want %s %s", seq, g.attrs[KeyHash], g.attrs[KeyPrevHash], hash, prev)
		return
	}
	p, err := hex.DecodeString(prev)
	if err != nil {
		t.Fatal(err)
	}
	h := blake3.New()
	h.Write(p)
	h.Write([]byte(g.body))
	if got := hex.EncodeToString(h.Sum(nil)); got != hash {
		t.Errorf("seq %d: BLAKE3(prev_hash || body) = %s, the row's hash is %s", seq, got, hash)
	}
}

// TestExportResumesAfterRestart: a clean stop and start goes on from the
// acknowledged seq, sending nothing twice.
func TestExportResumesAfterRestart(t *testing.T) {
	dir := t.TempDir()
	c := openChain(t, dir)
	defer c.Close()
	col := startCollector(t, ProtocolGRPC)
	e := newExporter(t, col, c, dir)
	e.Start()
	appendRows(t, c, 0, 300)
	waitAll(t, col.sink, c, e)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	appendRows(t, c, 300, 300) // while no exporter runs
	e = newExporter(t, col, c, dir)
	if st := e.Status(); st.Lag != 300 {
		t.Errorf("lag before the restart's first export: %d, want 300", st.Lag)
	}
	e.Start()
	defer e.Close()
	if dups := waitAll(t, col.sink, c, e); dups != 0 {
		t.Errorf("%d rows sent twice after a clean restart", dups)
	}
}

// TestExportResumesAfterKill: a process appending and exporting is killed
// with SIGKILL; the next exporter on the same state directory resumes from
// the acknowledged seq it had saved. Every row arrives (at least once);
// the duplicates are what was acknowledged after the last save.
func TestExportResumesAfterKill(t *testing.T) {
	dir := t.TempDir()
	col := startCollector(t, ProtocolGRPC)
	for round := 1; round <= 2; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "COCONUT_OTLP_CHILD_DIR="+dir, "COCONUT_OTLP_CHILD_ENDPOINT="+col.endpoint())
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		if !sc.Scan() || sc.Text() != "started" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child did not start: %q %v", sc.Text(), sc.Err())
		}
		// Let it append and export for a while, past a save of its state.
		before := col.sink.count()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) && col.sink.count() < before+2000 {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(1500 * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		a, err := loadAcked(filepath.Join(dir, "otlp.json"))
		if err != nil || a.Seq == 0 {
			t.Fatalf("round %d: state after the kill: %+v %v", round, a, err)
		}
		t.Logf("round %d: killed with %d records received; saved acked seq %d", round, col.sink.count(), a.Seq)
	}
	c := openChain(t, dir)
	defer c.Close()
	e := newExporter(t, col, c, dir)
	e.Start()
	defer e.Close()
	dups := waitAll(t, col.sink, c, e)
	head, _ := c.Head()
	t.Logf("after 2 kills: all %d rows received, %d duplicates (at least once)", head, dups)
	if dups >= int(head)/2 {
		t.Errorf("%d duplicates of %d rows: the restart did not resume from the saved seq", dups, head)
	}
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.records
}

// TestExportCollectorDown: with the collector down, appends go on, the lag
// grows by every row appended, and nothing is lost once it is back, even
// after the chain dropped the exporter's follower (more than FollowBuffer
// rows behind). A collector that answers with an error is the same.
func TestExportCollectorDown(t *testing.T) {
	dir := t.TempDir()
	c := openChain(t, dir)
	defer c.Close()
	col := startCollector(t, ProtocolGRPC)
	e := newExporter(t, col, c, dir)
	e.Start()
	defer e.Close()
	appendRows(t, c, 0, 100)
	waitAll(t, col.sink, c, e)

	col.stop()
	n := 2*audit.FollowBuffer + 1000
	appendRows(t, c, 100, n)
	deadline := time.Now().Add(30 * time.Second)
	for e.Status().Failures == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	st := e.Status()
	if st.Failures == 0 || st.LastError == "" {
		t.Fatalf("collector down, yet no failure: %+v", st)
	}
	if st.Lag < uint64(n) {
		t.Errorf("lag %d with the collector down, want at least the %d rows appended since", st.Lag, n)
	}
	t.Logf("collector down: %+v", st)

	col.start()
	waitAll(t, col.sink, c, e)
	deadline = time.Now().Add(10 * time.Second)
	for e.Status().Lag != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := e.Status(); st.Lag != 0 || st.LastError != "" {
		t.Errorf("collector back: %+v, want lag 0 and no error", st)
	}

	col.sink.setRefuse(true)
	appendRows(t, c, 100+n, 50)
	deadline = time.Now().Add(30 * time.Second)
	for e.Status().LastError == "" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := e.Status(); st.Lag == 0 || st.LastError == "" {
		t.Errorf("collector refusing: %+v, want lag and an error", st)
	}
	col.sink.setRefuse(false)
	waitAll(t, col.sink, c, e)
}

// TestStateMismatch: a state file that names a row this chain does not
// have (another chain's, or a longer one's) is refused, never skipped past.
func TestStateMismatch(t *testing.T) {
	dir := t.TempDir()
	c := openChain(t, dir)
	defer c.Close()
	appendRows(t, c, 0, 10)
	state := filepath.Join(dir, "otlp.json")
	cfg := func() Config {
		return Config{Endpoint: "127.0.0.1:4317", Insecure: true, StateFile: state}
	}
	for _, tt := range []struct {
		name string
		a    acked
	}{
		{"past the head", acked{Seq: 11, Hash: genesisHash}},
		{"other hash", acked{Seq: 5, Hash: genesisHash}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := saveAcked(state, tt.a); err != nil {
				t.Fatal(err)
			}
			if _, err := New(cfg(), c); !errors.Is(err, ErrState) {
				t.Errorf("New with %+v: %v, want ErrState", tt.a, err)
			}
		})
	}
	if err := os.WriteFile(state, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg(), c); !errors.Is(err, ErrState) {
		t.Errorf("New with a damaged state file: %v, want ErrState", err)
	}
}

func TestConfigCheck(t *testing.T) {
	for _, tt := range []struct {
		name string
		c    Config
		ok   bool
	}{
		{"grpc host:port", Config{Endpoint: "collector:4317", StateFile: "s"}, true},
		{"http url", Config{Endpoint: "https://collector.example:4318", Protocol: "http", StateFile: "s"}, true},
		{"http host:port", Config{Endpoint: "127.0.0.1:4318", Protocol: "http", StateFile: "s"}, true},
		{"no endpoint", Config{StateFile: "s"}, false},
		{"no port", Config{Endpoint: "collector", StateFile: "s"}, false},
		{"url for grpc", Config{Endpoint: "http://collector:4317", StateFile: "s"}, false},
		{"bad protocol", Config{Endpoint: "collector:4317", Protocol: "udp", StateFile: "s"}, false},
		{"negative batch", Config{Endpoint: "collector:4317", BatchRows: -1, StateFile: "s"}, false},
		{"no state", Config{Endpoint: "collector:4317"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Check()
			if (err == nil) != tt.ok {
				t.Errorf("Check: %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrConfig) {
				t.Errorf("Check: %v is not ErrConfig", err)
			}
		})
	}
}

// FuzzLoadAcked: whatever the state file holds, loading it fails cleanly
// or gives a seq.
func FuzzLoadAcked(f *testing.F) {
	f.Add([]byte(`{"seq":12,"hash":"ab"}`))
	f.Add([]byte(`{"seq":-1}`))
	f.Add([]byte(``))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "s.json")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		a, err := loadAcked(p)
		if err != nil && !errors.Is(err, ErrState) {
			t.Fatalf("loadAcked: %v is not ErrState", err)
		}
		if err == nil && a.Seq == 0 && a.Hash != genesisHash {
			t.Fatalf("seq 0 with hash %q", a.Hash)
		}
	})
}
