package broker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// harness runs a broker behind a real HTTP server; the X-AID header picks
// the tenant (tests only).
type harness struct {
	t       *testing.T
	b       *Broker
	srv     *httptest.Server
	mu      sync.Mutex
	tenants map[uint64]Tenant
	calls   []Call
	events  chan string // "aid:blocked" / "aid:unblocked"
}

func allowAll(string) bool { return true }

func newHarness(t *testing.T, cfg Config, hooks Hooks) *harness {
	t.Helper()
	h := &harness{t: t, tenants: map[uint64]Tenant{}, events: make(chan string, 64)}
	hooks.Identify = func(r *http.Request) (Tenant, error) {
		aid, err := strconv.ParseUint(r.Header.Get("X-AID"), 10, 64)
		if err != nil {
			return Tenant{}, fmt.Errorf("no agent")
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		ten, ok := h.tenants[aid]
		if !ok {
			return Tenant{}, fmt.Errorf("%w: unknown agent %d", ErrForbidden, aid)
		}
		return ten, nil
	}
	if hooks.Audit == nil {
		hooks.Audit = func(_ context.Context, c Call) error {
			h.mu.Lock()
			h.calls = append(h.calls, c)
			h.mu.Unlock()
			return nil
		}
	}
	hooks.Blocked = func(aid uint64, blocked bool, reason string) {
		state := "unblocked"
		if blocked {
			state = "blocked"
		}
		h.events <- fmt.Sprintf("%d:%s", aid, state)
	}
	b, err := New(cfg, hooks)
	if err != nil {
		t.Fatal(err)
	}
	h.b = b
	h.srv = httptest.NewServer(b.Handler())
	t.Cleanup(func() {
		h.srv.Close()
		b.Close()
	})
	return h
}

// tenant registers an agent allowed every model.
func (h *harness) tenant(ten Tenant) {
	ten.Models = allowAll
	h.tenantRaw(ten)
}

// tenantRaw registers an agent as given (nil Models: no capability).
func (h *harness) tenantRaw(ten Tenant) {
	h.mu.Lock()
	h.tenants[ten.AID] = ten
	h.mu.Unlock()
}

func (h *harness) auditRows() []Call {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Call(nil), h.calls...)
}

// finalRows splits the audit rows into final rows and the admission rows
// of streamed calls.
func (h *harness) finalRows() (final, admits []Call) {
	for _, c := range h.auditRows() {
		if c.Result == ResultAdmitted {
			admits = append(admits, c)
		} else {
			final = append(final, c)
		}
	}
	return final, admits
}

func (h *harness) post(ctx context.Context, aid uint64, path, body string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("X-AID", strconv.FormatUint(aid, 10))
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (h *harness) mustPost(aid uint64, path, body string) (int, []byte) {
	h.t.Helper()
	st, b, err := h.post(context.Background(), aid, path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	return st, b
}

// sseEvents splits an SSE body into its data payloads.
func sseEvents(t *testing.T, body []byte) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

func chatBody(maxTokens int, stream bool, extra string) string {
	s := fmt.Sprintf(`{"model":"m1","messages":[{"role":"user","content":"abcd"}],"max_tokens":%d,"min_tokens":%d`, maxTokens, maxTokens)
	if stream {
		s += `,"stream":true`
	}
	return s + extra + "}"
}

func fixedSim(t *testing.T, c SimConfig) *Sim {
	t.Helper()
	if c.Output == "" {
		c.Output = "fixed"
		c.OutputMean = 1 << 20
		c.OutputMax = 1 << 20
	}
	s, err := NewSim(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// gate is a Backend whose calls block until released; it records the
// highest concurrency per tenant-free backend and emits `out` tokens.
type gate struct {
	release chan struct{}
	out     int64
	cur     atomic.Int64
	peak    atomic.Int64
	started chan struct{}
}

func newGate(out int64) *gate {
	return &gate{release: make(chan struct{}), out: out, started: make(chan struct{}, 256)}
}

func (g *gate) Generate(ctx context.Context, r *Request, emit func(Chunk) error) (Result, error) {
	n := g.cur.Add(1)
	defer g.cur.Add(-1)
	for {
		p := g.peak.Load()
		if n <= p || g.peak.CompareAndSwap(p, n) {
			break
		}
	}
	g.started <- struct{}{}
	select {
	case <-g.release:
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	for range g.out {
		if err := emit(Chunk{Text: "tok "}); err != nil {
			return Result{}, err
		}
	}
	return Result{HaveUsage: true, Finish: "stop", Usage: Usage{PromptTokens: r.PromptTokens, CompletionTokens: g.out}}, nil
}

func (g *gate) Models(context.Context) ([]string, error) { return []string{"m1"}, nil }
func (g *gate) Close() error                             { return nil }

func decodeJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("bad JSON %q: %v", b, err)
	}
}

func runtimeGosched() { runtime.Gosched(); time.Sleep(time.Millisecond) }

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

func httpGet(path string) *http.Request { return httptest.NewRequest(http.MethodGet, path, nil) }

// needOf is what a chat body reserves (prompt reservation + max_tokens).
func needOf(t *testing.T, body string) int64 {
	t.Helper()
	r, err := DecodeRequest(EndpointChat, []byte(body), 256, 65536)
	if err != nil {
		t.Fatal(err)
	}
	return r.Need()
}
