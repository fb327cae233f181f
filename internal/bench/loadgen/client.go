package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Target is an OpenAI-compatible server the tenants call.
type Target struct {
	BaseURL string // as in OPENAI_BASE_URL, e.g. http://127.0.0.1:8000/v1; /chat/completions is appended
	Key     string // sent as Authorization: Bearer (empty: none)
	Model   string
	// TenantHeader names the header that carries Tenant.ID (empty: not
	// sent). The bench's own Identify hook reads it; nothing else trusts it.
	TenantHeader string
	Client       *http.Client
}

// NewClient is an HTTP client that keeps enough idle connections for every
// outstanding request, so that the bench measures requests, not handshakes.
func NewClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		DisableCompression:  true,
		IdleConnTimeout:     time.Minute,
	}}
}

// Record is one request as its client saw it; times are offsets from the
// start of the run.
type Record struct {
	Start, FirstToken, End time.Duration
	TokensIn, TokensOut    int64
	Status                 int
	Err                    string // empty when the request completed
	// TokenTimes is when each output chunk arrived (streams only).
	TokenTimes []time.Duration
}

// OK reports whether the request completed with a 200 and no error.
func (r Record) OK() bool { return r.Err == "" && r.Status == http.StatusOK }

func body(model string, prompt string, maxTokens int, stream bool) []byte {
	type msg struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	}
	type opts struct {
		IncludeUsage bool `json:"include_usage"`
	}
	v := struct {
		Model         string `json:"model"`
		Messages      []msg  `json:"messages"`
		MaxTokens     int    `json:"max_tokens"`
		Stream        bool   `json:"stream,omitempty"`
		StreamOptions *opts  `json:"stream_options,omitempty"`
	}{Model: model, Messages: []msg{{"user", prompt}}, MaxTokens: maxTokens, Stream: stream}
	if stream {
		v.StreamOptions = &opts{IncludeUsage: true}
	}
	b, _ := json.Marshal(v) // cannot fail: strings and numbers only
	return b
}

// Do sends one chat completion for tenant id and records it against the
// run clock t0.
func (t Target) Do(ctx context.Context, t0 time.Time, id int, prompt string, maxTokens int, stream bool) Record {
	rec := Record{Start: time.Since(t0)}
	finish := func(err error) Record {
		rec.End = time.Since(t0)
		if err != nil {
			rec.Err = err.Error()
			if ctx.Err() != nil {
				rec.Err = "cancelled"
			}
		}
		return rec
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(t.BaseURL, "/")+"/chat/completions", bytes.NewReader(body(t.Model, prompt, maxTokens, stream)))
	if err != nil {
		return finish(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if t.Key != "" {
		req.Header.Set("Authorization", "Bearer "+t.Key)
	}
	if t.TenantHeader != "" {
		req.Header.Set(t.TenantHeader, strconv.Itoa(id))
	}
	resp, err := t.Client.Do(req)
	if err != nil {
		return finish(err)
	}
	defer resp.Body.Close()
	rec.Status = resp.StatusCode
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return finish(fmt.Errorf("%w %d: %s", ErrStatus, resp.StatusCode, strings.TrimSpace(string(msg))))
	}
	if !stream {
		var v struct {
			Usage *Usage `json:"usage"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			return finish(fmt.Errorf("decode response: %w", err))
		}
		if v.Usage == nil {
			return finish(errors.New("response without usage"))
		}
		rec.TokensIn, rec.TokensOut = v.Usage.PromptTokens, v.Usage.CompletionTokens
		rec.End = time.Since(t0)
		rec.FirstToken = rec.End
		return rec
	}
	return finish(readStream(resp.Body, t0, &rec))
}

func readStream(r io.Reader, t0 time.Time, rec *Record) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var usage *Usage
	done := false
	for !done && sc.Scan() {
		c, ok, err := ParseSSELine(sc.Bytes())
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if c.Error != "" {
			return fmt.Errorf("stream error: %s", c.Error)
		}
		if c.Done {
			done = true
			continue
		}
		if c.Content {
			at := time.Since(t0)
			if rec.FirstToken == 0 {
				rec.FirstToken = at
			}
			rec.TokenTimes = append(rec.TokenTimes, at)
		}
		if c.Usage != nil {
			usage = c.Usage
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read stream: %w", err)
	}
	if !done {
		return errors.New("stream ended without [DONE]")
	}
	rec.TokensOut = int64(len(rec.TokenTimes))
	if usage != nil {
		rec.TokensIn, rec.TokensOut = usage.PromptTokens, usage.CompletionTokens
	}
	if rec.FirstToken == 0 {
		// No output at all: the first token is the end.
		rec.FirstToken = time.Since(t0)
	}
	return nil
}
