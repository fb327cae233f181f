package daemon

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/broker"
)

// aggBroker is a real broker (simulated backend) behind an HTTP server
// whose calls are audited by brokerSvc.audit into a real chain, with the
// call aggregator on; X-AID names the tenant.
func aggBroker(t *testing.T, eachUse bool) (*brokerSvc, *broker.Broker, *httptest.Server, *audit.Chain) {
	t.Helper()
	chain, err := audit.Open(t.TempDir(), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { chain.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := &brokerSvc{chain: chain, log: log, calls: newCallAggregator(chain, log, eachUse)}
	b, err := broker.New(broker.Config{}, broker.Hooks{
		Identify: func(r *http.Request) (broker.Tenant, error) {
			aid, err := strconv.ParseUint(r.Header.Get("X-AID"), 10, 64)
			if err != nil {
				return broker.Tenant{}, errors.New("no agent")
			}
			return broker.Tenant{AID: aid, Models: func(string) bool { return true }}, nil
		},
		Audit: s.audit,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(b.Handler())
	t.Cleanup(func() { srv.Close(); b.Close(); s.calls.close() })
	return s, b, srv, chain
}

func call(t *testing.T, srv *httptest.Server, aid uint64, stream bool) int {
	body := fmt.Sprintf(`{"model":"coconut-sim","messages":[{"role":"user","content":"hello there"}],"max_tokens":3,"stream":%t}`, stream)
	req, _ := http.NewRequest("POST", srv.URL+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("X-AID", strconv.FormatUint(aid, 10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// sums are an agent's inference.call rows: calls counted, tokens, rows.
func sums(t *testing.T, chain *audit.Chain, aid uint64) (calls uint64, in, out int64, rows int) {
	t.Helper()
	recs, err := chain.Query(audit.Query{AID: &aid, Type: audit.TypeInferenceCall, Limit: audit.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		calls += audit.RowCount(r)
		i, _ := strconv.ParseInt(r.Detail["tokens_in"], 10, 64)
		o, _ := strconv.ParseInt(r.Detail["tokens_out"], 10, 64)
		in, out, rows = in+i, out+o, rows+1
	}
	return calls, in, out, rows
}

// TestInferenceCallsAggregated (issue 19.1): 200 calls of one agent from
// 8 connections, streamed and not, leave a few inference.call rows, not
// 200: a first row per (model, endpoint, stream) and aggregates at most
// four a second; the rows count exactly 200 calls and their tokens equal
// the broker's own usage counters for the agent; flushAgent writes what
// is pending at once; another agent's first call still has its row.
func TestInferenceCallsAggregated(t *testing.T) {
	s, b, srv, chain := aggBroker(t, false)
	const n, conns = 200, 8
	var wg sync.WaitGroup
	start := time.Now()
	for c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; i < n; i += conns {
				if st := call(t, srv, 1, i%2 == 0); st != http.StatusOK {
					t.Errorf("call %d: status %d", i, st)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if call(t, srv, 2, false) != http.StatusOK {
		t.Fatal("agent 2's call refused")
	}
	s.calls.flushAgent(1)
	calls, in, out, rows := sums(t, chain, 1)
	var st broker.AgentStats
	for _, a := range b.Stats().Agents {
		if a.AID == 1 {
			st = a
		}
	}
	if calls != n || in != st.TokensIn || out != st.TokensOut || in == 0 || out == 0 {
		t.Fatalf("rows count %d calls, tokens %d in %d out; the broker metered %d in %d out; want %d calls and equal tokens", calls, in, out, st.TokensIn, st.TokensOut, n)
	}
	// Rows of their own: the calls of a key that finished before its
	// first row was durable (at most one per connection); then at most
	// one aggregate per 250 ms of the run, and one per key at the flush.
	if max := conns + int(elapsed/callAggregateEvery) + 2; rows > max {
		t.Errorf("%d rows for %d calls in %v, want at most %d", rows, n, elapsed, max)
	}
	adm, err := chain.Query(audit.Query{AID: ptrU(1), Type: audit.TypeInferenceAdmit, Limit: audit.MaxLimit})
	if err != nil || len(adm) == 0 || len(adm) > conns/2 {
		t.Errorf("%d inference.admit rows (%v), want those admitted before the first streamed call's row (1..%d)", len(adm), err, conns/2)
	}
	if c2, _, _, r2 := sums(t, chain, 2); c2 != 1 || r2 != 1 {
		t.Errorf("agent 2: %d rows counting %d, want its first call's own row", r2, c2)
	}
	t.Logf("%d calls in %v: %d rows, tokens in %d out %d", n, elapsed, rows, in, out)
}

// TestInferenceAggregationFailsClosed: below the chain's reserve a call
// that would only be counted gets a row of its own (its tokens are spent)
// and is refused; a streamed one is refused before its first token; with
// audit_each_use every call has its row.
func TestInferenceAggregationFailsClosed(t *testing.T) {
	_, _, srv, chain := aggBroker(t, false)
	for range 2 {
		if st := call(t, srv, 1, false); st != http.StatusOK {
			t.Fatalf("status %d", st)
		}
	}
	if st := call(t, srv, 1, true); st != http.StatusOK {
		t.Fatalf("first stream: status %d", st)
	}
	chain.SetReserve(1 << 62)
	if st := call(t, srv, 1, false); st == http.StatusOK {
		t.Fatal("a counted call answered 200 below the reserve")
	}
	if st := call(t, srv, 1, true); st == http.StatusOK {
		t.Fatal("a counted streamed call admitted below the reserve")
	}
	chain.SetReserve(0)
	recs, err := chain.Query(audit.Query{AID: ptrU(1), Type: audit.TypeInferenceCall, Limit: audit.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	if last := recs[len(recs)-1]; last.Detail["count"] != "" || last.Detail["tokens_in"] == "0" {
		t.Errorf("the refused call's row %+v: want a row of its own with its tokens", last)
	}

	_, _, srv2, chain2 := aggBroker(t, true)
	for range 5 {
		call(t, srv2, 3, false)
	}
	if c, _, _, rows := sums(t, chain2, 3); rows != 5 || c != 5 {
		t.Errorf("audit_each_use: %d rows counting %d, want 5 rows", rows, c)
	}
}

func ptrU(v uint64) *uint64 { return &v }
