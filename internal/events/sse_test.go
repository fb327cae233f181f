package events

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/audit"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, query, lastID string
		since               uint64
		f                   Filter
		bad                 string // a word the error must contain
	}{
		{name: "empty", query: ""},
		{name: "all", query: "since=7&aid=31&type=cap.*&result=deny", since: 7, f: Filter{AID: ptr(uint64(31)), Type: "cap.*", Result: "deny"}},
		{name: "last event id wins", query: "since=7", lastID: "42", since: 42},
		{name: "aid zero", query: "aid=0", f: Filter{AID: ptr(uint64(0))}},
		{name: "since not a number", query: "since=-1", bad: "since"},
		{name: "since too big", query: "since=18446744073709551616", bad: "since"},
		{name: "last event id junk", lastID: "x1", bad: "Last-Event-ID"},
		{name: "aid junk", query: "aid=nosy", bad: "aid"},
		{name: "result", query: "result=maybe", bad: "result"},
		{name: "star", query: "type=*x", bad: "type"},
		{name: "unknown", query: "follow=1", bad: "follow"},
		{name: "twice", query: "since=1&since=2", bad: "since"},
		{name: "long type", query: "type=" + strings.Repeat("a", 300), bad: "type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			since, f, err := parse(v, tt.lastID)
			if tt.bad != "" {
				if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), tt.bad) {
					t.Fatalf("err = %v, want invalid naming %q", err, tt.bad)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if since != tt.since || f.Type != tt.f.Type || f.Result != tt.f.Result || (f.AID == nil) != (tt.f.AID == nil) || (f.AID != nil && *f.AID != *tt.f.AID) {
				t.Fatalf("got %d %+v, want %d %+v", since, f, tt.since, tt.f)
			}
			// Values writes back what parse reads.
			since2, f2, err := parse(Values(since, f), "")
			if err != nil || since2 != since || f2.Type != f.Type || f2.Result != f.Result {
				t.Fatalf("round trip: %d %+v %v", since2, f2, err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "since=1&aid=2&type=cap.*&result=deny", "since=%zz", "type=a*b", "x=1"} {
		f.Add(s, "")
	}
	f.Add("since=3", "4")
	f.Fuzz(func(t *testing.T, q, lastID string) {
		v, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		since, flt, err := parse(v, lastID)
		if err != nil {
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("error not invalid: %v", err)
			}
			return
		}
		if flt.Check() != nil {
			t.Fatalf("parse accepted a filter Check refuses: %+v", flt)
		}
		if _, _, err := parse(Values(since, flt), ""); err != nil {
			t.Fatalf("Values(%d, %+v) does not parse: %v", since, flt, err)
		}
	})
}

// The SSE framing: id, event and one data line per row, the data being the
// audit query's row object; a ping comment when idle.
func TestServeFrames(t *testing.T) {
	c := openChain(t)
	s := New(c, table)
	appendRows(t, c, 0, 3)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		since, f, err := ParseRequest(r)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		st, err := s.Subscribe(r.Context(), root, since, f)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		Serve(w, r, st, 50*time.Millisecond)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"?since=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	br := bufio.NewReader(resp.Body)
	line := func() string {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSuffix(l, "\n")
	}
	rows, _ := c.Query(audit.Query{AfterSeq: 1})
	for _, want := range rows {
		if l := line(); l != "id: "+itoa(want.Seq) {
			t.Fatalf("got %q, want id %d", l, want.Seq)
		}
		if l := line(); l != "event: row" {
			t.Fatalf("got %q", l)
		}
		l := line()
		data, ok := strings.CutPrefix(l, "data: ")
		wantJSON, _ := json.Marshal(Row(want))
		if !ok || data != string(wantJSON) {
			t.Fatalf("data %q, want %s", l, wantJSON)
		}
		if l := line(); l != "" {
			t.Fatalf("got %q, want the blank line", l)
		}
	}
	if l := line(); l != ": ping" {
		t.Fatalf("got %q, want a heartbeat", l)
	}
}

func itoa(n uint64) string { b, _ := json.Marshal(n); return string(b) }
