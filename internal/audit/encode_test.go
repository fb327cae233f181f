package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// jsonBody is the reflection-based reference the hand-written encoder
// replaced: docs/audit-format.md defines the bytes as what encoding/json
// writes for these fields in this order.
type jsonBody struct {
	Seq    uint64            `json:"seq"`
	Time   string            `json:"time"`
	AID    uint64            `json:"aid"`
	Type   string            `json:"type"`
	Cap    string            `json:"cap"`
	Object string            `json:"object"`
	Result string            `json:"result"`
	Errno  int               `json:"errno"`
	PID    int               `json:"pid"`
	KSeq   uint64            `json:"kseq"`
	Detail map[string]string `json:"detail,omitempty"`
}

func referenceBytes(t testing.TB, r Record) []byte {
	t.Helper()
	b, err := json.Marshal(jsonBody{
		Seq: r.Seq, Time: r.Time.UTC().Format(timeLayout), AID: r.AID, Type: r.Type, Cap: r.Cap,
		Object: r.Object, Result: r.Result, Errno: r.Errno, PID: r.PID, KSeq: r.KSeq, Detail: r.Detail,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEncodeMatchesJSON(t *testing.T) {
	tests := []struct {
		name string
		r    Record
	}{
		{"plain", rec(1)},
		{"html and controls", Record{Type: "a<b>&c", Cap: "\"\\\b\f\n\r\t\x00\x1f\x7f", Object: "\u2028\u2029é😀", Time: t0}},
		{"negative ints", Record{Type: "x", Errno: -1, PID: -2147483648, KSeq: 1<<64 - 1, AID: 1<<64 - 1, Seq: 1<<64 - 1, Time: t0}},
		{"many detail keys", Record{Type: "x", Time: t0, Detail: map[string]string{
			"q": "1", "w": "2", "e": "3", "r": "4", "t": "5", "y": "6", "u": "7", "i": "8", "o": "9",
			"p": "10", "a": "11", "s": "12", "d": "13", "f": "14", "g": "15", "h": "16", "j": "17", "k": "<"}}},
		{"far times", Record{Type: "x", Time: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)}},
		{"year one", Record{Type: "x", Time: time.Date(1, 1, 1, 0, 0, 0, 1, time.FixedZone("x", 3600*5))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RecordBytes(tt.r)
			if tt.r.Time.UTC().Year() < 1 {
				if !errors.Is(err, ErrInvalidRecord) {
					t.Fatalf("year 0: err = %v, want ErrInvalidRecord", err)
				}
				return
			}
			want := referenceBytes(t, tt.r)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("RecordBytes = %s, %v\nwant %s", got, err, want)
			}
			back, err := DecodeRecord(got)
			if err != nil {
				t.Fatalf("DecodeRecord: %v", err)
			}
			again, _ := RecordBytes(back)
			if !bytes.Equal(again, got) {
				t.Fatalf("round trip %s != %s", again, got)
			}
		})
	}
}

// FuzzEncodeMatchesJSON: for any valid record, the hand-written encoder
// writes what encoding/json writes, and DecodeRecord reads it back.
func FuzzEncodeMatchesJSON(f *testing.F) {
	f.Add("agent.spawn", "fs.read", "/a<b>", "k", "v\n", int64(-5), uint64(7), int64(1772366400123456789))
	f.Add("\u2028", "\x00", "é", "", "", int64(0), uint64(0), int64(0))
	f.Fuzz(func(t *testing.T, typ, cp, obj, k, v string, errno int64, aid uint64, ns int64) {
		r := Record{Seq: aid ^ 0x5555, Type: typ, Cap: cp, Object: obj, Errno: int(errno), PID: int(errno >> 3),
			AID: aid, KSeq: aid >> 1, Time: time.Unix(0, ns).UTC()}
		if k != "" {
			r.Detail = map[string]string{k: v, k + "2": obj}
		}
		got, err := RecordBytes(r)
		if err != nil {
			if validate(&r) == nil {
				t.Fatalf("RecordBytes failed on a valid record: %v", err)
			}
			return
		}
		if want := referenceBytes(t, r); !bytes.Equal(got, want) {
			t.Fatalf("RecordBytes = %s\nencoding/json %s", got, want)
		}
		back, err := DecodeRecord(got)
		if err != nil {
			t.Fatalf("DecodeRecord(%s): %v", got, err)
		}
		if again, _ := RecordBytes(back); !bytes.Equal(again, got) {
			t.Fatalf("round trip %s != %s", again, got)
		}
	})
}
