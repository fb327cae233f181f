package audit

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRecordBytesCanonical(t *testing.T) {
	r := Record{
		Seq: 7, Time: time.Date(2026, 1, 2, 3, 4, 5, 600, time.FixedZone("x", 3600)),
		AID: 42, Type: "agent.spawn", Cap: "fs.read:/a", Object: "/a<b>", Result: "allow",
		Errno: -1, PID: 9, KSeq: 3, Detail: map[string]string{"z": "1", "a": "2"}, Hash: "ignored",
	}
	got, err := RecordBytes(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"seq":7,"time":"2026-01-02T02:04:05.000000600Z","aid":42,"type":"agent.spawn",` +
		`"cap":"fs.read:/a","object":"/a\u003cb\u003e","result":"allow","errno":-1,"pid":9,"kseq":3,` +
		`"detail":{"a":"2","z":"1"}}`
	if string(got) != want {
		t.Fatalf("RecordBytes:\n got %s\nwant %s", got, want)
	}
	back, err := DecodeRecord(got)
	if err != nil {
		t.Fatalf("DecodeRecord: %v", err)
	}
	if !back.Time.Equal(r.Time) || back.Seq != 7 || back.Detail["a"] != "2" || back.Hash != "" {
		t.Fatalf("round trip: %+v", back)
	}
}

func TestDecodeRecordRejects(t *testing.T) {
	good := `{"seq":1,"time":"2026-01-02T03:04:05.000000000Z","aid":1,"type":"t","cap":"","object":"","result":"","errno":0,"pid":0,"kseq":0}`
	if _, err := DecodeRecord([]byte(good)); err != nil {
		t.Fatalf("good record: %v", err)
	}
	tests := []struct {
		name, payload string
	}{
		{"space", strings.Replace(good, `"aid":1`, `"aid": 1`, 1)},
		{"short time", strings.Replace(good, ".000000000Z", "Z", 1)},
		{"offset time", strings.Replace(good, ".000000000Z", ".000000000+00:00", 1)},
		{"unknown field", strings.Replace(good, `}`, `,"x":1}`, 1)},
		{"hash field", strings.Replace(good, `}`, `,"hash":"ab"}`, 1)},
		{"duplicate field", strings.Replace(good, `"aid":1`, `"aid":1,"aid":1`, 1)},
		{"field order", strings.Replace(good, `"cap":"","object":""`, `"object":"","cap":""`, 1)},
		{"empty detail", strings.Replace(good, `}`, `,"detail":{}}`, 1)},
		{"bad result", strings.Replace(good, `"result":""`, `"result":"maybe"`, 1)},
		{"empty type", strings.Replace(good, `"type":"t"`, `"type":""`, 1)},
		{"invalid utf8", strings.Replace(good, `"cap":""`, "\"cap\":\"\xff\"", 1)},
		{"upper case key", strings.Replace(good, `"aid"`, `"AID"`, 1)},
		{"trailing", good + " "},
		{"not json", "{"},
		{"empty", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeRecord([]byte(tt.payload)); !errors.Is(err, ErrNonCanonical) {
				t.Fatalf("DecodeRecord(%s) = %v, want ErrNonCanonical", tt.payload, err)
			}
		})
	}
}

func TestRecordJSON(t *testing.T) {
	r := rec(1)
	r.Seq, r.Hash = 5, strings.Repeat("ab", 32)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"time":"2026-03-01T12:00:01.000000000Z"`) || !strings.HasSuffix(string(b), `"hash":"`+r.Hash+`"}`) {
		t.Fatalf("audit row: %s", b)
	}
	var back Record
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Hash != r.Hash || back.Seq != 5 || !back.Time.Equal(r.Time) || back.Type != r.Type {
		t.Fatalf("round trip: %+v", back)
	}
}

func TestPeekSeq(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want uint64
		ok   bool
	}{
		{"ok", `{"seq":123,"time":""}`, 123, true},
		{"max", `{"seq":18446744073709551615,`, 1<<64 - 1, true},
		{"overflow", `{"seq":18446744073709551616,`, 0, false},
		{"no comma", `{"seq":1`, 0, false},
		{"empty", `{"seq":,`, 0, false},
		{"other", `{"aid":1,`, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := peekSeq([]byte(tt.in))
			if got != tt.want || ok != tt.ok {
				t.Fatalf("peekSeq(%s) = %d, %v", tt.in, got, ok)
			}
		})
	}
}

func FuzzDecodeRecord(f *testing.F) {
	b, _ := RecordBytes(rec(3))
	f.Add(b)
	f.Add([]byte(`{"seq":1}`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, payload []byte) {
		r, err := DecodeRecord(payload)
		if err != nil {
			return
		}
		again, err := RecordBytes(r)
		if err != nil || string(again) != string(payload) {
			t.Fatalf("accepted non-canonical %q (re-encoded %q, %v)", payload, again, err)
		}
	})
}

// TestUnmarshalAnyRFC3339: an audit row reads back with every field, its
// time in any RFC 3339 spelling (here with an offset and few digits), as
// UTC.
func TestUnmarshalAnyRFC3339(t *testing.T) {
	in := `{"seq":3,"time":"2026-03-01T13:00:00.5+01:00","aid":4,"type":"agent.state","cap":"c","object":"Active",` +
		`"result":"allow","errno":5,"pid":6,"kseq":7,"detail":{"from":"Attested"},"hash":"ab"}`
	var r Record
	if err := json.Unmarshal([]byte(in), &r); err != nil {
		t.Fatal(err)
	}
	want := Record{Seq: 3, Time: time.Date(2026, 3, 1, 12, 0, 0, 5e8, time.UTC), AID: 4, Type: "agent.state", Cap: "c",
		Object: "Active", Result: ResultAllow, Errno: 5, PID: 6, KSeq: 7, Detail: map[string]string{"from": "Attested"}, Hash: "ab"}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("got %+v\nwant %+v", r, want)
	}
	if err := json.Unmarshal([]byte(`{"seq":1,"time":"yesterday"}`), &r); err == nil {
		t.Error("a time that is not RFC 3339 was accepted")
	}
}
