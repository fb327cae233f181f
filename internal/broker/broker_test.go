package broker

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	h := newHarness(t, Config{Backend: fixedSim(t, SimConfig{})}, Hooks{})
	h.tenant(Tenant{AID: 1})
	tests := []struct {
		name, path, body string
		stream, usage    bool
		out              int64
	}{
		{"chat", "/v1/chat/completions", chatBody(5, false, ""), false, false, 5},
		{"chat stream", "/v1/chat/completions", chatBody(7, true, ""), true, false, 7},
		{"chat stream usage", "/v1/chat/completions", chatBody(3, true, `,"stream_options":{"include_usage":true}`), true, true, 3},
		{"completions", "/v1/completions", `{"model":"m1","prompt":"abcdefgh","max_tokens":4,"min_tokens":4}`, false, false, 4},
		{"completions stream", "/v1/completions", `{"model":"m1","prompt":"abcdefgh","max_tokens":2,"min_tokens":2,"stream":true}`, true, false, 2},
		{"embeddings", "/v1/embeddings", `{"model":"m1","input":["abcd","efgh"]}`, false, false, 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, body := h.mustPost(1, tt.path, tt.body)
			if st != http.StatusOK {
				t.Fatalf("status %d: %s", st, body)
			}
			var gotOut int64
			switch {
			case tt.stream:
				ev := sseEvents(t, body)
				if ev[len(ev)-1] != "[DONE]" {
					t.Fatalf("stream does not end with [DONE]: %q", ev)
				}
				for _, e := range ev[:len(ev)-1] {
					var c struct {
						Choices []struct {
							Delta        struct{ Content string }
							Text         string
							FinishReason *string `json:"finish_reason"`
						}
						Usage *Usage
					}
					decodeJSON(t, []byte(e), &c)
					if len(c.Choices) == 1 && c.Choices[0].Delta.Content+c.Choices[0].Text != "" {
						gotOut++
					}
					if c.Usage != nil {
						if !tt.usage || c.Usage.CompletionTokens != tt.out {
							t.Fatalf("usage chunk %s (asked: %v)", e, tt.usage)
						}
					}
				}
			case tt.out == 0:
				var e struct {
					Data []struct{ Embedding []float64 }
				}
				decodeJSON(t, body, &e)
				if len(e.Data) != 2 || len(e.Data[0].Embedding) == 0 {
					t.Fatalf("embeddings %s", body)
				}
			default:
				var r struct {
					Object  string
					Choices []struct {
						Message struct{ Content string }
						Text    string
					}
					Usage Usage
				}
				decodeJSON(t, body, &r)
				gotOut = r.Usage.CompletionTokens
				if text := r.Choices[0].Message.Content + r.Choices[0].Text; EstimateTokens(len(text)) != tt.out {
					t.Fatalf("content %q is not %d tokens", text, tt.out)
				}
			}
			if gotOut != tt.out {
				t.Fatalf("output tokens = %d, want %d", gotOut, tt.out)
			}
			rows, admits := h.finalRows()
			if len(rows) != i+1 {
				t.Fatalf("%d audit rows, want %d", len(rows), i+1)
			}
			if tt.stream && (len(admits) == 0 || admits[len(admits)-1].Status != 200 || admits[len(admits)-1].Reserved == 0) {
				t.Fatalf("streamed call without its admission row: %+v", admits)
			}
			if c := rows[i]; c.Result != ResultOK || c.TokensOut != tt.out || c.AID != 1 || c.Status != 200 || c.Stream != tt.stream {
				t.Fatalf("audit row %+v", c)
			}
		})
	}
	st := h.b.Stats()
	if st.InFlight != 0 || st.Queued != 0 || st.TokensOut != 5+7+3+4+2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRefusals(t *testing.T) {
	h := newHarness(t, Config{Backend: fixedSim(t, SimConfig{})}, Hooks{})
	h.tenantRaw(Tenant{AID: 1, Models: func(m string) bool { return m == "m1" }})
	h.tenantRaw(Tenant{AID: 2, Models: nil})
	tests := []struct {
		name    string
		aid     uint64
		path    string
		body    string
		status  int
		code    string
		audited string
	}{
		{"model outside the capability", 1, "/v1/chat/completions", `{"model":"m2","messages":[{"role":"user","content":"x"}]}`, 403, "model_not_allowed", ResultDenied},
		{"no inference capability", 2, "/v1/chat/completions", chatBody(1, false, ""), 403, "model_not_allowed", ResultDenied},
		{"unknown agent", 9, "/v1/chat/completions", chatBody(1, false, ""), 403, "model_not_allowed", ""},
		{"not an agent", 0, "/v1/chat/completions", chatBody(1, false, ""), 401, "invalid_api_key", ""},
		{"malformed", 1, "/v1/chat/completions", `{"model":`, 400, "invalid_request", ""},
		{"too big for the pool", 1, "/v1/chat/completions", chatBody(65536, false, ""), 400, "invalid_request", ""},
		{"no such route", 1, "/v1/nope", `{}`, 404, "not_found", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(h.auditRows())
			req, _ := http.NewRequest(http.MethodPost, h.srv.URL+tt.path, strings.NewReader(tt.body))
			if tt.aid != 0 {
				req.Header.Set("X-AID", itoa(int64(tt.aid)))
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var e struct {
				Error struct{ Message, Type, Code string }
			}
			decodeJSON(t, body, &e)
			if resp.StatusCode != tt.status || e.Error.Code != tt.code || e.Error.Message == "" {
				t.Fatalf("got %d %s, want %d code %s", resp.StatusCode, body, tt.status, tt.code)
			}
			rows := h.auditRows()
			if tt.audited == "" {
				if len(rows) != before {
					t.Fatalf("refusal before a call was audited: %+v", rows[before:])
				}
				return
			}
			if len(rows) != before+1 || rows[before].Result != tt.audited || rows[before].Status != tt.status {
				t.Fatalf("audit rows %+v, want one %s", rows[before:], tt.audited)
			}
		})
	}
	t.Run("models lists only allowed", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/v1/models", nil)
		req.Header.Set("X-AID", "2")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var l struct{ Data []struct{ ID string } }
		b, _ := io.ReadAll(resp.Body)
		decodeJSON(t, b, &l)
		if resp.StatusCode != 200 || len(l.Data) != 0 {
			t.Fatalf("agent without capability sees models: %s", b)
		}
	})
}

// The budget race: 64 concurrent requests of 10 tokens each against a
// budget for ten. Reservations make exactly ten succeed and never let the
// granted tokens pass the budget.
func TestBudgetRace(t *testing.T) {
	for _, policy := range []string{OverBudgetWait, OverBudgetReject} {
		t.Run(policy, func(t *testing.T) {
			var spent sync.Map
			h := newHarness(t, Config{Slots: 64, OverBudget: policy, Backend: fixedSim(t, SimConfig{Slots: 64})},
				Hooks{Spent: func(aid uint64, n int64) {
					v, _ := spent.LoadOrStore(aid, new(int64))
					*v.(*int64) += n
				}})
			// Each call settles at 1 + 9 tokens but reserves its whole
			// body's estimate: the budget is nine settled calls and one
			// reservation, so exactly ten fit.
			limit := 90 + needOf(t, chatBody(9, false, ""))
			h.tenant(Tenant{AID: 1, TokenLimit: limit})
			var wg sync.WaitGroup
			var mu sync.Mutex
			status := map[int]int{}
			for range 64 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					st, _, err := h.post(context.Background(), 1, "/v1/chat/completions", chatBody(9, false, "")) // 1 + 9 tokens
					if err != nil {
						t.Error(err)
					}
					mu.Lock()
					status[st]++
					mu.Unlock()
				}()
			}
			wg.Wait()
			var granted int64
			for _, c := range h.auditRows() {
				granted += c.TokensIn + c.TokensOut
			}
			if granted > limit {
				t.Fatalf("granted %d tokens over a budget of %d", granted, limit)
			}
			if status[200]+status[429] != 64 {
				t.Fatalf("statuses %v", status)
			}
			if policy == OverBudgetWait && status[200] != 10 {
				t.Fatalf("%d succeeded, want exactly the 10 that fit", status[200])
			}
			if policy == OverBudgetReject && (status[200] < 1 || status[200] > 10) {
				t.Fatalf("%d succeeded, want 1..10", status[200])
			}
		})
	}
}

// The KV budget bounds an agent's in-flight context; a request that alone
// exceeds it is refused at once.
func TestKVBound(t *testing.T) {
	g := newGate(1)
	h := newHarness(t, Config{Slots: 8, KVBytesPerToken: 1000, Backend: g}, Hooks{})
	need := needOf(t, chatBody(9, false, ""))
	h.tenant(Tenant{AID: 1, KVBytes: 2 * need * 1000}) // two requests in flight
	st, body := h.mustPost(1, "/v1/chat/completions", chatBody(int(2*need), false, ""))
	if st != 429 || !strings.Contains(string(body), "KV budget") {
		t.Fatalf("oversized request: %d %s", st, body)
	}
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if st, body, _ := h.post(context.Background(), 1, "/v1/chat/completions", chatBody(9, false, "")); st != 200 {
				t.Errorf("status %d %s", st, body)
			}
		}()
	}
	<-g.started
	<-g.started
	if ev := <-h.events; ev != "1:blocked" {
		t.Fatalf("event %q, want 1:blocked", ev)
	}
	close(g.release)
	wg.Wait()
	if p := g.peak.Load(); p != 2 {
		t.Fatalf("peak in-flight %d, want the KV bound's 2", p)
	}
	if ev := <-h.events; ev != "1:unblocked" {
		t.Fatalf("event %q, want 1:unblocked", ev)
	}
}

// Over budget: "wait" holds the request (the agent is Inference-blocked)
// until in-flight refunds make room; "reject" answers 429 at once.
func TestOverBudgetPolicy(t *testing.T) {
	tests := []struct {
		policy     string
		wantStatus int
		wantEvents []string
	}{
		{OverBudgetWait, 200, []string{"1:blocked", "1:unblocked"}},
		{OverBudgetReject, 429, nil},
	}
	for _, tt := range tests {
		t.Run(tt.policy, func(t *testing.T) {
			g := newGate(1)
			h := newHarness(t, Config{OverBudget: tt.policy, Backend: g}, Hooks{})
			// Room for two reservations in flight, not three; each
			// settles at 1 + 1 tokens.
			need := needOf(t, chatBody(9, false, ""))
			h.tenant(Tenant{AID: 1, TokenLimit: 2*need + need/2})
			// Never fits, whatever is refunded.
			if st, body := h.mustPost(1, "/v1/chat/completions", chatBody(int(3*need), false, "")); st != 429 || !strings.Contains(string(body), "token budget") {
				t.Fatalf("never-fitting request: %d %s", st, body)
			}
			results := make(chan int, 3)
			post := func() {
				st, _, _ := h.post(context.Background(), 1, "/v1/chat/completions", chatBody(9, false, ""))
				results <- st
			}
			go post()
			go post()
			<-g.started
			<-g.started // two reservations in flight
			go post()
			if tt.policy == OverBudgetReject {
				if st := <-results; st != 429 {
					t.Fatalf("third request: %d, want 429 at once", st)
				}
			} else if ev := <-h.events; ev != tt.wantEvents[0] {
				t.Fatalf("event %q, want %q", ev, tt.wantEvents[0])
			}
			close(g.release) // each settles at 1 + 1 tokens: 4 used, one more fits
			got := map[int]int{}
			for range 2 + map[bool]int{true: 1}[tt.policy == OverBudgetWait] {
				got[<-results]++
			}
			if got[200] != 2+map[bool]int{true: 1}[tt.policy == OverBudgetWait] {
				t.Fatalf("statuses %v", got)
			}
			if tt.policy == OverBudgetWait {
				if ev := <-h.events; ev != tt.wantEvents[1] {
					t.Fatalf("event %q, want %q", ev, tt.wantEvents[1])
				}
			}
			select {
			case ev := <-h.events:
				t.Fatalf("unexpected event %q", ev)
			default:
			}
		})
	}
}

func TestCancelWhileQueued(t *testing.T) {
	g := newGate(1)
	h := newHarness(t, Config{Slots: 1, Backend: g}, Hooks{})
	h.tenant(Tenant{AID: 1, TokenLimit: 1000})
	h.tenant(Tenant{AID: 2, TokenLimit: 1000})
	first := make(chan int, 1)
	go func() {
		st, _, _ := h.post(context.Background(), 1, "/v1/chat/completions", chatBody(9, false, ""))
		first <- st
	}()
	<-g.started
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := h.post(ctx, 2, "/v1/chat/completions", chatBody(9, false, ""))
		done <- err
	}()
	for h.b.Stats().Queued != 1 {
		runtimeGosched()
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("client err %v", err)
	}
	for h.b.Stats().Queued != 0 { // the server notices the closed connection
		runtimeGosched()
	}
	close(g.release)
	if st := <-first; st != 200 {
		t.Fatalf("first request %d", st)
	}
	st := h.b.Stats()
	for _, a := range st.Agents {
		if a.Reserved != 0 || a.InFlight != 0 || a.Queued != 0 {
			t.Fatalf("agent %d still holds %+v", a.AID, a)
		}
	}
	if st.InFlight != 0 || st.ContextUsed != 0 {
		t.Fatalf("stats %+v", st)
	}
	var cancelled bool
	for _, c := range h.auditRows() {
		cancelled = cancelled || (c.AID == 2 && c.Result == ResultCancelled)
	}
	if !cancelled {
		t.Fatalf("no cancelled row: %+v", h.auditRows())
	}
}

// An audit failure means the agent gets an error, not the answer.
func TestAuditFailureWithholdsAnswer(t *testing.T) {
	h := newHarness(t, Config{Backend: fixedSim(t, SimConfig{})}, Hooks{
		Audit: func(context.Context, Call) error { return errors.New("chain full") },
	})
	h.tenant(Tenant{AID: 1})
	st, body := h.mustPost(1, "/v1/chat/completions", chatBody(3, false, ""))
	if st != 500 || strings.Contains(string(body), "choices") {
		t.Fatalf("got %d %s", st, body)
	}
	// A stream is refused before its first token: no admission row, no
	// content, nothing generated, and the reservation is back.
	spent := h.b.Stats().TokensOut
	st, body = h.mustPost(1, "/v1/chat/completions", chatBody(3, true, ""))
	if st != 503 || strings.Contains(string(body), "choices") || !strings.Contains(string(body), "chain full") {
		t.Fatalf("stream without its admission row: %d %s", st, body)
	}
	if s := h.b.Stats(); s.InFlight != 0 || s.ContextUsed != 0 || s.TokensOut != spent {
		t.Fatalf("refused stream still holds or spent: %+v", s)
	}
}

// When the admission row is written but the final row is not, the stream
// ends with an error event instead of [DONE].
func TestAuditFailureEndsStream(t *testing.T) {
	h := newHarness(t, Config{Backend: fixedSim(t, SimConfig{})}, Hooks{
		Audit: func(_ context.Context, c Call) error {
			if c.Result == ResultAdmitted {
				return nil
			}
			return errors.New("chain full")
		},
	})
	h.tenant(Tenant{AID: 1})
	_, body := h.mustPost(1, "/v1/chat/completions", chatBody(3, true, ""))
	if ev := sseEvents(t, body); ev[len(ev)-1] == "[DONE]" || !strings.Contains(ev[len(ev)-1], "chain full") {
		t.Fatalf("stream completed without its audit row: %q", ev)
	}
}

func TestMetrics(t *testing.T) {
	h := newHarness(t, Config{Backend: fixedSim(t, SimConfig{})}, Hooks{})
	h.tenant(Tenant{AID: 42})
	h.mustPost(42, "/v1/chat/completions", chatBody(6, false, ""))
	rec := newRecorder()
	h.b.Metrics().ServeHTTP(rec, httpGet("/metrics"))
	out := rec.Body.String()
	for _, want := range []string{
		`coconut_broker_agent_tokens_total{aid="42",dir="out"} 6`,
		`coconut_broker_tokens_total{dir="in"} 1`,
		`coconut_broker_queue_length 0`,
		`coconut_broker_blocked_agents 0`,
		`coconut_broker_request_duration_seconds_count{endpoint="chat/completions"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	h.b.Forget(42)
	if st := h.b.Stats(); len(st.Agents) != 0 {
		t.Fatalf("forgotten agent still in stats: %+v", st.Agents)
	}
	js, _ := json.Marshal(h.b.Stats())
	if !strings.Contains(string(js), `"tokens_out":0`) {
		t.Fatalf("stats json %s", js)
	}
}

// TestMetricsGrace: an ended agent's series stay for the grace period (so
// the last scrape sees its final tokens), then go; the totals stay.
func TestMetricsGrace(t *testing.T) {
	h := newHarness(t, Config{Backend: fixedSim(t, SimConfig{}), MetricsGrace: 300 * time.Millisecond}, Hooks{})
	h.tenant(Tenant{AID: 7})
	h.mustPost(7, "/v1/chat/completions", chatBody(6, false, ""))
	scrape := func() string {
		rec := newRecorder()
		h.b.Metrics().ServeHTTP(rec, httpGet("/metrics"))
		return rec.Body.String()
	}
	series := `coconut_broker_agent_tokens_total{aid="7",dir="out"} 6`
	h.b.Forget(7)
	if out := scrape(); !strings.Contains(out, series) {
		t.Fatalf("series gone before the grace period:\n%s", out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for strings.Contains(scrape(), `aid="7"`) {
		if time.Now().After(deadline) {
			t.Fatal("series still there 5 s after a 300 ms grace period")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out := scrape(); !strings.Contains(out, `coconut_broker_tokens_total{dir="out"} 6`) {
		t.Fatalf("totals lost with the agent's series:\n%s", out)
	}
}
