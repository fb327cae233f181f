package broker

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// A stream client that stops reading is cut off at the write deadline: the
// backend request is cancelled, the slot and reservation come back, and
// the call is recorded as cancelled.
func TestStalledStreamReaderReleasesSlot(t *testing.T) {
	h := newHarness(t, Config{Slots: 1, WriteTimeout: 50 * time.Millisecond, ContextTokens: 2 << 20,
		Backend: fixedSim(t, SimConfig{Slots: 1})}, Hooks{})
	h.tenant(Tenant{AID: 1})
	// About 100 bytes per token: far more than the socket buffers hold.
	body := `{"model":"m1","messages":[{"role":"user","content":"abcd"}],"max_tokens":1000000,"min_tokens":1000000,"stream":true}`
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.(*net.TCPConn).SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: broker\r\nX-AID: 1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	// Never read. Wait for the call's final row.
	var final []Call
	for len(final) == 0 {
		runtimeGosched()
		final, _ = h.finalRows()
	}
	if c := final[0]; c.Result != ResultCancelled || c.Status != 499 || !strings.Contains(c.Reason, "stopped reading") || c.TokensOut >= 1000000 {
		t.Fatalf("stalled stream recorded as %+v, want cancelled", c)
	}
	for h.b.Stats().InFlight != 0 {
		runtimeGosched()
	}
	if st := h.b.Stats(); st.ContextUsed != 0 || st.Agents[0].Reserved != 0 {
		t.Fatalf("stalled stream still holds %+v", st)
	}
	// The slot is free again for the next caller.
	if st, b := h.mustPost(1, "/v1/chat/completions", chatBody(3, false, "")); st != 200 {
		t.Fatalf("next call: %d %s", st, b)
	}
}
