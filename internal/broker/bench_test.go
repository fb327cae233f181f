package broker

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Overhead: the same request to the zero-service-time simulated backend,
// straight to its HTTP handler ("direct") and through the broker. The
// difference per op is the broker's added latency; with -cpu and
// RunParallel the broker figure is its requests/s.
func BenchmarkBrokerOverhead(b *testing.B) {
	body := `{"model":"m1","messages":[{"role":"user","content":"hello there"}],"max_tokens":16,"min_tokens":16}`
	sim, _ := NewSim(SimConfig{Slots: 64, Output: "fixed", OutputMean: 16})
	br, err := New(Config{Slots: 64, Backend: sim}, Hooks{Identify: func(*http.Request) (Tenant, error) {
		return Tenant{AID: 1, Models: allowAll}, nil
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{{"direct", sim}, {"broker", br.Handler()}} {
		srv := httptest.NewServer(tc.h)
		tr := &http.Transport{MaxIdleConnsPerHost: 64}
		client := &http.Client{Transport: tr}
		for _, stream := range []bool{false, true} {
			bd := body
			if stream {
				bd = strings.Replace(body, `"max_tokens"`, `"stream":true,"max_tokens"`, 1)
			}
			name := tc.name
			if stream {
				name += "/stream"
			}
			b.Run(name, func(b *testing.B) {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						resp, err := client.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(bd))
						if err != nil {
							b.Error(err)
							return
						}
						buf := make([]byte, 4096)
						for {
							if _, err := resp.Body.Read(buf); err != nil {
								break
							}
						}
						resp.Body.Close()
						if resp.StatusCode != 200 {
							b.Errorf("status %d", resp.StatusCode)
							return
						}
					}
				})
			})
		}
		tr.CloseIdleConnections()
		srv.Close()
	}
}
