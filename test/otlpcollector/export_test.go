package otlpcollector_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"github.com/coconut-os/coconut/internal/export/otlp/otlptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zeebo/blake3"

	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/export/otlp"
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

// childBatch is the child's batch size; kills how often it is killed.
const childBatch, kills = 64, 2

func child(dir, endpoint string) error {
	c, err := audit.Open(filepath.Join(dir, "chain"), audit.Options{})
	if err != nil {
		return err
	}
	e, err := otlp.New(otlp.Config{Endpoint: endpoint, Protocol: otlp.ProtocolGRPC, Insecure: true, StateFile: filepath.Join(dir, "otlp.json"), BatchRows: childBatch}, c)
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

// The shared test rows and chain helpers (otlptest).
var (
	row        = otlptest.Row
	openChain  = otlptest.OpenChain
	appendRows = otlptest.AppendRows
)

func newExporter(t *testing.T, col *collector, c otlp.Chain, dir string) *otlp.Exporter {
	t.Helper()
	e, err := otlp.New(otlp.Config{Endpoint: col.endpoint(), Protocol: col.protocol, Insecure: true, StateFile: filepath.Join(dir, "otlp.json"),
		HostID: "host-test", HostName: "test", Version: "v-test", HostKeyID: "key-test", BatchRows: 100, Timeout: 2 * time.Second}, c)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// genesisHash is the prev_hash of seq 1.
var genesisHash = strings.Repeat("0", 2*audit.HeadSize)

// waitAll waits until every seq up to the chain's head has arrived.
func waitAll(t *testing.T, s *sink, c *audit.Chain, e *otlp.Exporter) (dups int) {
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
	for _, proto := range []string{otlp.ProtocolGRPC, otlp.ProtocolHTTP} {
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
				want := map[string]any{otlp.KeyType: r.Type, otlp.KeyResult: r.Result}
				if r.AID != 0 {
					want["gen_ai.agent.id"] = strconv.FormatUint(r.AID, 10)
				}
				switch r.Type {
				case audit.TypeAgentSpawn:
					want["gen_ai.operation.name"] = "create_agent"
					want["gen_ai.agent.name"] = r.Detail["name"]
					want[otlp.KeyDetail+"class"] = "reviewer"
				case audit.TypeInferenceCall:
					want["gen_ai.operation.name"] = "chat"
					want["gen_ai.request.model"] = "qwen2.5-7b"
					want["gen_ai.usage.input_tokens"] = int64(120)
					want["gen_ai.usage.output_tokens"] = int64(42)
				case audit.TypeCapPresent:
					want["gen_ai.operation.name"] = "execute_tool"
					want["gen_ai.tool.name"] = "x.acme.deploy"
				case audit.TypeCapDeny:
					want[otlp.KeyErrno] = int64(134)
					want[otlp.KeyCap] = "fs.read"
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
				if g.resource["host.id"] != "host-test" || g.resource[otlp.KeyHostKeyID] != "key-test" || g.resource["service.name"] != "coconutd" {
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
			seq, hash, err := otlp.ReadState(filepath.Join(dir, "otlp.json"))
			if err != nil || seq != head || hash != rows[len(rows)-1].Hash {
				t.Errorf("state file: seq %d hash %s, %v; want seq %d", seq, hash, err, head)
			}
		})
	}
}

// checkLinked is what a SIEM does: hash = BLAKE3(prev_hash || body), and
// prev_hash is the hash of the row before.
func checkLinked(t *testing.T, seq uint64, g got, prev, hash string) {
	t.Helper()
	if g.attrs[otlp.KeyHash] != hash || g.attrs[otlp.KeyPrevHash] != prev {
		t.Errorf("seq %d: hash %v prev_hash %v, want %s %s", seq, g.attrs[otlp.KeyHash], g.attrs[otlp.KeyPrevHash], hash, prev)
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
	col := startCollector(t, otlp.ProtocolGRPC)
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
	col := startCollector(t, otlp.ProtocolGRPC)
	for round := 1; round <= kills; round++ {
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
		seq, _, err := otlp.ReadState(filepath.Join(dir, "otlp.json"))
		if err != nil || seq == 0 {
			t.Fatalf("round %d: state after the kill: seq %d %v", round, seq, err)
		}
		t.Logf("round %d: killed with %d records received; saved acked seq %d", round, col.sink.count(), seq)
	}
	c := openChain(t, dir)
	defer c.Close()
	e := newExporter(t, col, c, dir)
	e.Start()
	defer e.Close()
	dups := waitAll(t, col.sink, c, e)
	head, _ := c.Head()
	t.Logf("after 2 kills: all %d rows received, %d duplicates (at least once)", head, dups)
	// The acknowledged seq is saved before the next batch is sent, so each
	// kill re-sends at most the one batch that was in flight.
	if dups > kills*childBatch {
		t.Errorf("%d duplicates of %d rows after %d kills: more than the batch in flight each time (%d rows)", dups, head, kills, childBatch)
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
	col := startCollector(t, otlp.ProtocolGRPC)
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
