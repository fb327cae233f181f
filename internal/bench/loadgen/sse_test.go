package loadgen

import (
	"errors"
	"testing"
)

func TestParseSSELine(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		ok      bool
		want    Chunk
		wantErr error
	}{
		{"content chunk", `data: {"choices":[{"delta":{"content":"tok"}}]}`, true, Chunk{Content: true}, nil},
		{"role-only chunk is not output", `data: {"choices":[{"delta":{"role":"assistant"}}]}`, true, Chunk{}, nil},
		{"legacy completions text", `data: {"choices":[{"text":"a"}]}`, true, Chunk{Content: true}, nil},
		{"usage chunk", `data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}}`, true, Chunk{Usage: &Usage{3, 5}}, nil},
		{"done", "data: [DONE]\r\n", true, Chunk{Done: true}, nil},
		{"no space after colon", `data:{"choices":[]}`, true, Chunk{}, nil},
		{"error event", `data: {"error":{"message":"budget"}}`, true, Chunk{Error: "budget"}, nil},
		{"blank line", "", false, Chunk{}, nil},
		{"comment", ": keep-alive", false, Chunk{}, nil},
		{"event name", "event: message", false, Chunk{}, nil},
		{"bad json", `data: {"choices":`, false, Chunk{}, ErrBadChunk},
		{"not an object", `data: 42`, false, Chunk{}, ErrBadChunk},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := ParseSSELine([]byte(tt.line))
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if ok != tt.ok || got.Done != tt.want.Done || got.Content != tt.want.Content || got.Error != tt.want.Error {
				t.Fatalf("got %+v ok=%v, want %+v ok=%v", got, ok, tt.want, tt.ok)
			}
			if (got.Usage == nil) != (tt.want.Usage == nil) || (got.Usage != nil && *got.Usage != *tt.want.Usage) {
				t.Fatalf("usage = %+v, want %+v", got.Usage, tt.want.Usage)
			}
		})
	}
}

func FuzzParseSSELine(f *testing.F) {
	for _, s := range []string{
		`data: {"choices":[{"delta":{"content":"x"}}]}`,
		`data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}`,
		"data: [DONE]", ": ping", "", `data: {"error":{}}`, `data: {"choices":[{"delta":null}]}`,
		"data: \xff", `data: {"usage":{"prompt_tokens":-1e400}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, ok, err := ParseSSELine(b)
		if err != nil && (ok || c != (Chunk{})) {
			t.Fatalf("error %v with a chunk %+v ok=%v", err, c, ok)
		}
	})
}
