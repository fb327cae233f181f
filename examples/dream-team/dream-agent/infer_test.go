package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const goodReply = `{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"}}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}`

func TestDecodeCompletion(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    usage
		wantErr string
	}{
		{name: "good", in: goodReply, want: usage{12, 5, 17}},
		{name: "total missing", in: `{"choices":[{}],"usage":{"prompt_tokens":2,"completion_tokens":3}}`, want: usage{2, 3, 5}},
		{name: "not json", in: `<html>`, wantErr: "invalid character"},
		{name: "empty", in: ``, wantErr: "unexpected end"},
		{name: "no choices", in: `{"choices":[],"usage":{"total_tokens":1}}`, wantErr: "no choices"},
		{name: "no usage", in: `{"choices":[{}]}`, wantErr: "no usage"},
		{name: "null usage", in: `{"choices":[{}],"usage":null}`, wantErr: "no usage"},
		{name: "negative", in: `{"choices":[{}],"usage":{"prompt_tokens":-1}}`, wantErr: "negative"},
		{name: "string count", in: `{"choices":[{}],"usage":{"total_tokens":"9"}}`, wantErr: "cannot unmarshal"},
		{name: "overflow", in: `{"choices":[{}],"usage":{"prompt_tokens":9223372036854775807,"completion_tokens":1}}`, wantErr: "overflows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeCompletion([]byte(tt.in))
			if tt.wantErr != "" {
				if !errors.Is(err, errBadResponse) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want errBadResponse with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("decodeCompletion = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func FuzzDecodeCompletion(f *testing.F) {
	f.Add([]byte(goodReply))
	f.Add([]byte(`{"choices":[{}],"usage":{"prompt_tokens":-1}}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[1,2]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := decodeCompletion(b)
		if err == nil && (u.Prompt < 0 || u.Completion < 0 || u.Total < 0) {
			t.Fatalf("accepted negative usage %+v", u)
		}
		if err != nil && !errors.Is(err, errBadResponse) {
			t.Fatalf("err %v is not errBadResponse", err)
		}
	})
}

// fakeBackend answers chat completions and records what it was sent.
type fakeBackend struct {
	mu     sync.Mutex // the handler runs on the server's goroutine
	status int
	path   string
	auth   string
	model  string
}

func (f *fakeBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.path, f.auth = r.URL.Path, r.Header.Get("Authorization")
	var req chatRequest
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &req); err == nil {
		f.model = req.Model
	}
	if f.status != 0 {
		http.Error(w, "budget exhausted", f.status)
		return
	}
	io.WriteString(w, goodReply)
}

func TestInferOverHTTP(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		key     string
		wantLog string
		auth    string
	}{
		{name: "tokens logged", key: "k1", wantLog: "inference: 17 tokens used (prompt 12, completion 5)", auth: "Bearer k1"},
		{name: "no key no header", wantLog: "inference: 17 tokens used", auth: ""},
		{name: "refused", status: http.StatusTooManyRequests, wantLog: `inference: status 429: "budget exhausted\n" (no errno)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fb := &fakeBackend{status: tt.status}
			srv := httptest.NewServer(fb)
			defer srv.Close()
			in, err := newInferer(config{BaseURL: srv.URL + "/v1", APIKey: tt.key, Model: "sim"})
			if err != nil || in == nil {
				t.Fatalf("newInferer = %v, %v", in, err)
			}
			var logs syncBuffer
			infer(context.Background(), in, roleCoder, log.New(&logs, "", 0))
			if !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("log = %q, want %q", logs.String(), tt.wantLog)
			}
			fb.mu.Lock()
			defer fb.mu.Unlock()
			if fb.path != "/v1/chat/completions" || fb.model != "sim" {
				t.Errorf("backend saw path %q model %q", fb.path, fb.model)
			}
			if tt.status == 0 && fb.auth != tt.auth {
				t.Errorf("Authorization = %q, want %q", fb.auth, tt.auth)
			}
		})
	}
}

func TestInferOverBrokerSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "broker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	fb := &fakeBackend{}
	srv := httptest.NewUnstartedServer(fb)
	srv.Listener = ln
	srv.Start()
	defer srv.Close()

	// The socket wins over OPENAI_BASE_URL, which here points nowhere.
	in, err := newInferer(config{BrokerSocket: sock, BaseURL: "http://127.0.0.1:1", APIKey: "k", Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	u, err := in.complete(context.Background(), "hi")
	if err != nil || u.Total != 17 {
		t.Fatalf("complete = %+v, %v", u, err)
	}
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if fb.path != "/v1/chat/completions" || fb.model != "m" || fb.auth != "Bearer k" {
		t.Errorf("broker saw path %q model %q auth %q", fb.path, fb.model, fb.auth)
	}
}

func TestInferErrnoLogged(t *testing.T) {
	// Nothing listens on a socket path that does not exist: ENOENT (2).
	in, err := newInferer(config{BrokerSocket: filepath.Join(t.TempDir(), "none.sock"), Model: "sim"})
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	infer(context.Background(), in, rolePlanner, log.New(&logs, "", 0))
	if !strings.Contains(logs.String(), "(errno 2)") {
		t.Errorf("log = %q, want the errno number", logs.String())
	}
}

func TestNewInferer(t *testing.T) {
	tests := []struct {
		name    string
		cfg     config
		wantNil bool
		wantErr string
	}{
		{name: "nothing set", cfg: config{}, wantNil: true},
		{name: "bad scheme", cfg: config{BaseURL: "ftp://x"}, wantErr: "want http(s)"},
		{name: "no host", cfg: config{BaseURL: "http://"}, wantErr: "want http(s)"},
		{name: "unparsable", cfg: config{BaseURL: "http://[::1"}, wantErr: "OPENAI_BASE_URL"},
		{name: "https ok", cfg: config{BaseURL: "https://api.example/v1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := newInferer(tt.cfg)
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case (in == nil) != tt.wantNil:
				t.Fatalf("inferer = %v, want nil: %v", in, tt.wantNil)
			}
		})
	}
}
