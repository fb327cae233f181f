package client

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestSSEReader(t *testing.T) {
	in := ": hello\n\nid: 7\nevent: row\ndata: {\"seq\":7}\n\n" +
		"data: a\r\ndata: b\r\n\r\n" + // CRLF, two data lines, default event
		"retry: 10\nid:8\nevent:row\ndata:{}\n\n" +
		"event: row\n" // never dispatched: no blank line
	p := newSSEReader(strings.NewReader(in))
	want := []sseEvent{{id: "7", event: "row", data: []byte(`{"seq":7}`)}, {event: "message", data: []byte("a\nb")}, {id: "8", event: "row", data: []byte("{}")}}
	for _, w := range want {
		ev, err := p.next()
		if err != nil || ev.id != w.id || ev.event != w.event || !bytes.Equal(ev.data, w.data) {
			t.Fatalf("got %+v %v, want %+v", ev, err, w)
		}
	}
	if _, err := p.next(); !errors.Is(err, io.EOF) {
		t.Fatalf("an undispatched event at EOF: %v", err)
	}
	long := "data: " + strings.Repeat("x", maxSSELine+1) + "\n\n"
	if _, err := newSSEReader(strings.NewReader(long)).next(); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("an oversize line: %v", err)
	}
}

func FuzzSSEReader(f *testing.F) {
	f.Add("id: 1\nevent: row\ndata: {\"seq\":1}\n\n: ping\n\n")
	f.Add("data\n\ndata:\ndata\n\n")
	f.Add("\r\n\r\nevent\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		p := newSSEReader(strings.NewReader(s))
		for range len(s) + 1 {
			ev, err := p.next()
			if err != nil {
				return
			}
			if ev.event == "" || len(ev.data) > maxSSELine {
				t.Fatalf("dispatched %+v", ev)
			}
		}
		t.Fatal("more events than bytes")
	})
}
