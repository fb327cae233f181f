package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// fakeServer streams max_tokens chunks per request, like the simulated
// backend with no service time, and remembers which tenants called.
func fakeServer(t *testing.T) (*httptest.Server, *sync.Map) {
	seen := &sync.Map{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			MaxTokens int  `json:"max_tokens"`
			Stream    bool `json:"stream"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		id := r.Header.Get("X-Tenant")
		seen.Store(id, true)
		if id == "9" {
			http.Error(w, `{"error":{"message":"over budget"}}`, http.StatusTooManyRequests)
			return
		}
		if !req.Stream {
			fmt.Fprintf(w, `{"usage":{"prompt_tokens":2,"completion_tokens":%d}}`, req.MaxTokens)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < req.MaxTokens; i++ {
			fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"t\"}}]}\n\n")
		}
		fmt.Fprintf(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":%d}}\n\ndata: [DONE]\n\n", req.MaxTokens)
	}))
	t.Cleanup(srv.Close)
	return srv, seen
}

func TestRunClosedAndOpenLoops(t *testing.T) {
	srv, seen := fakeServer(t)
	run := Run{
		Target: Target{BaseURL: srv.URL + "/v1", Model: "m", TenantHeader: "X-Tenant", Client: NewClient(16)},
		Tenants: []Tenant{
			{Name: "flood", ID: 1, Outstanding: 4, PromptBytes: 8, MaxTokens: Lengths{Min: 1, Max: 20, Alpha: 1.2}, Stream: true},
			{Name: "light", ID: 2, Rate: 200, PromptBytes: 8, MaxTokens: Lengths{Fixed: 3}, Stream: true},
			{Name: "plain", ID: 3, Outstanding: 1, PromptBytes: 8, MaxTokens: Lengths{Fixed: 5}},
			{Name: "refused", ID: 9, Rate: 100, PromptBytes: 8, MaxTokens: Lengths{Fixed: 1}},
		},
		Duration: time.Second, Grace: 5 * time.Second, Seed: 1,
	}
	res, err := run.Do(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int{1, 2, 3, 9} {
		if _, ok := seen.Load(strconv.Itoa(id)); !ok {
			t.Fatalf("tenant %d never called", id)
		}
	}
	s := Summarize(res)
	light := s.Tenants[1]
	if light.Requests == 0 || light.Failed != 0 {
		t.Fatalf("light = %+v", light)
	}
	for _, r := range res.Records[1] {
		if !r.OK() || r.TokensOut != 3 || len(r.TokenTimes) != 3 || r.FirstToken < r.Start || r.End < r.FirstToken {
			t.Fatalf("light record %+v", r)
		}
	}
	if s.Tenants[2].Requests == 0 || s.Tenants[2].Tokens%5 != 0 {
		t.Fatalf("non-stream tenant = %+v", s.Tenants[2])
	}
	if s.Tenants[3].Requests != 0 || s.Tenants[3].Failed == 0 {
		t.Fatalf("refused tenant = %+v", s.Tenants[3])
	}
	for _, r := range res.Records[3] {
		if r.Status != http.StatusTooManyRequests || r.OK() {
			t.Fatalf("refused record %+v", r)
		}
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	ok := Tenant{Name: "a", Rate: 1, PromptBytes: 1, MaxTokens: Lengths{Fixed: 1}}
	for name, r := range map[string]Run{
		"no tenants":         {Duration: time.Second},
		"warmup >= duration": {Tenants: []Tenant{ok}, Duration: time.Second, Warmup: time.Second},
		"no load":            {Tenants: []Tenant{{Name: "x", PromptBytes: 1, MaxTokens: Lengths{Fixed: 1}}}, Duration: time.Second},
		"empty prompt":       {Tenants: []Tenant{{Name: "x", Rate: 1, MaxTokens: Lengths{Fixed: 1}}}, Duration: time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := r.Do(context.Background()); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
