package broker

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The simulated backend served over HTTP is an OpenAI-compatible upstream:
// the broker relays its stream and takes its usage.
func TestUpstreamRoundTrip(t *testing.T) {
	up := httptest.NewServer(fixedSim(t, SimConfig{}))
	defer up.Close()
	be, err := NewUpstream(up.URL+"/v1/", "sk-test", 4)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, Config{Slots: 4, Backend: be}, Hooks{})
	h.tenant(Tenant{AID: 1})
	tests := []struct {
		name, body string
		stream     bool
	}{
		{"non-stream", chatBody(5, false, ""), false},
		{"stream", chatBody(5, true, ""), true},
		{"stream usage", chatBody(5, true, `,"stream_options":{"include_usage":true}`), true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, body := h.mustPost(1, "/v1/chat/completions", tt.body)
			if st != 200 {
				t.Fatalf("%d %s", st, body)
			}
			if tt.stream {
				ev := sseEvents(t, body)
				if ev[len(ev)-1] != "[DONE]" || len(ev) < 6 {
					t.Fatalf("events %q", ev)
				}
				hasUsage := strings.Contains(strings.Join(ev, "\n"), `"usage"`)
				if hasUsage != strings.Contains(tt.body, "include_usage") {
					t.Fatalf("usage chunk present = %v for %s", hasUsage, tt.body)
				}
			}
			final, _ := h.finalRows()
			c := final[i]
			if c.Result != ResultOK || c.TokensOut != 5 || c.TokensIn != 1 {
				t.Fatalf("audit %+v", c)
			}
		})
	}
	if bad, err := NewUpstream("ftp://x", "", 1); err == nil {
		t.Fatalf("accepted %v", bad)
	}
}

// A stream cut midway: the agent sees the chunks that came and an error
// event, and the broker settles on its own count (tokens = chunks seen).
func TestUpstreamBrokenStream(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, `data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`+"\n\n")
		for range 3 {
			fmt.Fprint(w, `data: {"choices":[{"index":0,"delta":{"content":"tok "}}]}`+"\n\n")
		}
		w.(http.Flusher).Flush()
		// no usage, no [DONE]: the connection just ends
	}))
	defer up.Close()
	be, err := NewUpstream(up.URL+"/v1", "", 2)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, Config{Backend: be}, Hooks{})
	h.tenant(Tenant{AID: 1, TokenLimit: 1000})
	st, body := h.mustPost(1, "/v1/chat/completions", chatBody(50, true, ""))
	if st != 200 {
		t.Fatalf("status %d", st)
	}
	ev := sseEvents(t, body)
	if last := ev[len(ev)-1]; last == "[DONE]" || !strings.Contains(last, "backend_error") {
		t.Fatalf("broken stream ends with %q", last)
	}
	final, _ := h.finalRows()
	c := final[0]
	// No usage from the upstream: the prompt is charged at its
	// reservation (the whole body's estimate), not the content's.
	if in := needOf(t, chatBody(50, true, "")) - 50; c.Result != ResultBackendError || c.TokensOut != 3 || c.TokensIn != in {
		t.Fatalf("audit %+v, want backend_error with %d tokens in and 3 out", c, in)
	}
	stats := h.b.Stats()
	if stats.TokensOut != 3 || stats.Agents[0].Reserved != 0 {
		t.Fatalf("stats %+v", stats)
	}
}

// An upstream's own refusal (4xx) reaches the agent with its status.

// An upstream's own refusal (4xx) reaches the agent with its status.
func TestUpstreamRefusal(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer sk-right" {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"error":{"message":"bad key","type":"invalid_request_error","code":"invalid_api_key"}}`)
			return
		}
	}))
	defer up.Close()
	be, _ := NewUpstream(up.URL+"/v1", "sk-wrong", 2)
	h := newHarness(t, Config{Backend: be}, Hooks{})
	h.tenant(Tenant{AID: 1})
	st, body := h.mustPost(1, "/v1/chat/completions", chatBody(5, false, ""))
	if st != 401 || !strings.Contains(string(body), "bad key") {
		t.Fatalf("%d %s", st, body)
	}
	if c := h.auditRows()[0]; c.Result != ResultBackendError || c.TokensOut != 0 {
		t.Fatalf("audit %+v", c)
	}
}
