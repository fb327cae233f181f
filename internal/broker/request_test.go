package broker

import (
	"errors"
	"strings"
	"testing"
)

func TestDecodeRequest(t *testing.T) {
	tests := []struct {
		name    string
		ep      Endpoint
		body    string
		wantErr bool
		prompt  int64
		max     int64
		stream  bool
		usage   bool
	}{
		{"chat minimal", EndpointChat, `{"model":"m","messages":[{"role":"user","content":"12345678"}]}`, false, 2, 256, false, false},
		{"chat parts", EndpointChat, `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"123456789"}]}]}`, false, 3, 256, false, false},
		{"chat stream usage", EndpointChat, `{"model":"m","stream":true,"stream_options":{"include_usage":true},"max_tokens":7,"messages":[{"role":"user","content":"a"}]}`, false, 1, 7, true, true},
		{"max_completion_tokens", EndpointChat, `{"model":"m","max_completion_tokens":9,"messages":[{"role":"user","content":"a"}]}`, false, 1, 9, false, false},
		{"unknown fields kept", EndpointChat, `{"model":"m","temperature":0.2,"tools":[],"messages":[{"role":"user","content":"a"}]}`, false, 1, 256, false, false},
		{"empty content", EndpointChat, `{"model":"m","messages":[{"role":"assistant","content":null}]}`, false, 1, 256, false, false},
		{"completions string", EndpointCompletions, `{"model":"m","prompt":"abcdefgh"}`, false, 2, 256, false, false},
		{"completions array", EndpointCompletions, `{"model":"m","prompt":["abcd","efgh"]}`, false, 2, 256, false, false},
		{"embeddings", EndpointEmbeddings, `{"model":"m","input":["abcd","efgh","ij"]}`, false, 3, 0, false, false},
		{"embeddings token ids", EndpointEmbeddings, `{"model":"m","input":[1,2,3]}`, false, 3, 0, false, false},
		{"no model", EndpointChat, `{"messages":[{"role":"user","content":"a"}]}`, true, 0, 0, false, false},
		{"model not string", EndpointChat, `{"model":5,"messages":[{"role":"user","content":"a"}]}`, true, 0, 0, false, false},
		{"no messages", EndpointChat, `{"model":"m"}`, true, 0, 0, false, false},
		{"empty messages", EndpointChat, `{"model":"m","messages":[]}`, true, 0, 0, false, false},
		{"no role", EndpointChat, `{"model":"m","messages":[{"content":"a"}]}`, true, 0, 0, false, false},
		{"max_tokens zero", EndpointChat, `{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"a"}]}`, true, 0, 0, false, false},
		{"max_tokens too big", EndpointChat, `{"model":"m","max_tokens":70000,"messages":[{"role":"user","content":"a"}]}`, true, 0, 0, false, false},
		{"max_tokens float", EndpointChat, `{"model":"m","max_tokens":1.5,"messages":[{"role":"user","content":"a"}]}`, true, 0, 0, false, false},
		{"max fields disagree", EndpointChat, `{"model":"m","max_tokens":3,"max_completion_tokens":4,"messages":[{"role":"user","content":"a"}]}`, true, 0, 0, false, false},
		{"n two", EndpointChat, `{"model":"m","n":2,"messages":[{"role":"user","content":"a"}]}`, true, 0, 0, false, false},
		{"n one", EndpointChat, `{"model":"m","n":1,"best_of":1,"use_beam_search":false,"messages":[{"role":"user","content":"a"}]}`, false, 1, 256, false, false},
		{"min above max", EndpointChat, `{"model":"m","max_tokens":3,"min_tokens":4,"messages":[{"role":"user","content":"a"}]}`, true, 0, 0, false, false},
		{"stream_options without stream", EndpointChat, `{"model":"m","stream_options":{"include_usage":true},"messages":[{"role":"user","content":"a"}]}`, true, 0, 0, false, false},
		{"stream not bool", EndpointChat, `{"model":"m","stream":"yes","messages":[{"role":"user","content":"a"}]}`, true, 0, 0, false, false},
		{"trailing data", EndpointChat, `{"model":"m","messages":[{"role":"user","content":"a"}]} {}`, true, 0, 0, false, false},
		{"array body", EndpointChat, `[]`, true, 0, 0, false, false},
		{"null body", EndpointChat, `null`, true, 0, 0, false, false},
		{"embeddings stream", EndpointEmbeddings, `{"model":"m","input":"a","stream":true}`, true, 0, 0, false, false},
		{"prompt number", EndpointCompletions, `{"model":"m","prompt":5}`, true, 0, 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := DecodeRequest(tt.ep, []byte(tt.body), 256, 65536)
			if tt.wantErr {
				if !errors.Is(err, ErrBadRequest) {
					t.Fatalf("err = %v, want ErrBadRequest", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.PromptTokens != tt.prompt || r.MaxTokens != tt.max || r.Stream != tt.stream || r.IncludeUsage != tt.usage {
				t.Fatalf("got prompt %d max %d stream %v usage %v", r.PromptTokens, r.MaxTokens, r.Stream, r.IncludeUsage)
			}
		})
	}
}

func TestEstimateTokens(t *testing.T) {
	for _, tt := range []struct{ n, want int }{{0, 1}, {1, 1}, {4, 1}, {5, 2}, {8, 2}, {9, 3}} {
		if got := EstimateTokens(tt.n); got != int64(tt.want) {
			t.Errorf("EstimateTokens(%d) = %d, want %d", tt.n, got, tt.want)
		}
	}
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add(0, []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":5}`))
	f.Add(1, []byte(`{"model":"m","prompt":["a","b"],"stream":true,"stream_options":{"include_usage":true}}`))
	f.Add(2, []byte(`{"model":"m","input":[[1,2],[3]]}`))
	f.Add(0, []byte(`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]}`))
	f.Add(0, []byte(`{"model":"`))
	f.Fuzz(func(t *testing.T, which int, body []byte) {
		ep := []Endpoint{EndpointChat, EndpointCompletions, EndpointEmbeddings}[uint(which)%3]
		r, err := DecodeRequest(ep, body, 256, 4096)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error not ErrBadRequest: %v", err)
			}
			return
		}
		if r.PromptReserve < max(r.PromptTokens, EstimateTokens(len(body))) {
			t.Fatalf("reservation %d below the body's estimate (%d bytes, content ~%d)", r.PromptReserve, len(body), r.PromptTokens)
		}
		if r.Model == "" || r.PromptTokens < 1 || r.MaxTokens < 0 || r.MaxTokens > 4096 || r.MinTokens > max(r.MaxTokens, 0) {
			t.Fatalf("accepted an out-of-range request: %+v", r)
		}
	})
}

// Text anywhere in the body is reserved for, not only message content: a
// large body cannot reserve a few tokens and run a long prompt.
func TestPromptReserveCoversBody(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	tests := []struct {
		name string
		body string
	}{
		{"tools", `{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","description":"` + big + `"}}]}`},
		{"tool_calls arguments", `{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"` + big + `"}}]}]}`},
		{"image part beside text", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,` + big + `"}}]}]}`},
		{"name", `{"model":"m","messages":[{"role":"user","name":"` + big + `","content":"hi"}]}`},
		{"empty messages", `{"model":"m","messages":[` + strings.Repeat(`{"role":"user","content":""},`, maxMessages-1) + `{"role":"user","content":""}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := DecodeRequest(EndpointChat, []byte(tt.body), 256, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if want := EstimateTokens(len(tt.body)); r.PromptReserve < want || r.Need() != r.PromptReserve+r.MaxTokens {
				t.Fatalf("reserves %d prompt tokens (need %d) for a %d-byte body, want at least %d", r.PromptReserve, r.Need(), len(tt.body), want)
			}
		})
	}
}

// Fields that make an upstream generate several sequences are refused by
// name: the reservation covers one.
func TestDecodeRequestRefusesMultipliers(t *testing.T) {
	tests := []struct{ name, extra, field string }{
		{"n", `"n":2`, "n"},
		{"best_of", `"best_of":50`, "best_of"},
		{"best_of not integer", `"best_of":"2"`, "best_of"},
		{"num_beams", `"num_beams":4`, "num_beams"},
		{"beam_width", `"beam_width":4`, "beam_width"},
		{"use_beam_search", `"use_beam_search":true`, "use_beam_search"},
		{"use_beam_search not bool", `"use_beam_search":1`, "use_beam_search"},
	}
	for _, ep := range []Endpoint{EndpointChat, EndpointCompletions} {
		for _, tt := range tests {
			t.Run(string(ep)+"/"+tt.name, func(t *testing.T) {
				body := `{"model":"m","prompt":"a","messages":[{"role":"user","content":"a"}],` + tt.extra + `}`
				_, err := DecodeRequest(ep, []byte(body), 256, 4096)
				if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tt.field) {
					t.Fatalf("err = %v, want ErrBadRequest naming %s", err, tt.field)
				}
			})
		}
	}
}
