package server

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/coconut-os/coconut/api"
)

func TestDecodeBody(t *testing.T) {
	tests := []struct {
		name, body string
		want       error
		msg        string
	}{
		{"ok", `{"file":"a.yaml","manifest":"YQ==","signature":""}`, nil, ""},
		{"wrong type", `{"manifest": 42}`, api.ErrInvalid, `field "manifest"`},
		{"unknown field", `{"x": 1}`, api.ErrInvalid, "unknown field"},
		{"syntax", `{"file":`, api.ErrInvalid, "request body"},
		{"empty", ``, api.ErrInvalid, "empty"},
		{"trailing", `{} x`, api.ErrInvalid, "trailing data"},
		{"two values", `{} {}`, api.ErrInvalid, "trailing data"},
		{"bad base64", `{"manifest":"!!"}`, api.ErrInvalid, "request body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req api.SpawnRequest
			err := decodeBody(strings.NewReader(tt.body), &req)
			if tt.want == nil {
				if err != nil || string(req.Manifest) != "a" {
					t.Fatalf("got %+v, %v", req, err)
				}
				return
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err %v, want %v containing %q", err, tt.want, tt.msg)
			}
		})
	}
}

// FuzzDecodeBody: no request body crashes the decoder, and every failure
// is a client error, never an internal one.
func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{`{}`, `{"file":"x","manifest":"YQ=="}`, `{"command":["/bin/true"],"caps":["fs.read:/x"]}`, `[`, `{"env":{"A":"b"}}`, "\x00", `{"manifest":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, v := range []any{&api.SpawnRequest{}, &api.RunRequest{}, &api.TrustRequest{}} {
			err := decodeBody(bytes.NewReader(b), v)
			if err != nil && !errors.Is(err, api.ErrInvalid) && !errors.Is(err, api.ErrTooLarge) {
				t.Fatalf("decode %q: %v is not a client error", b, err)
			}
		}
	})
}
