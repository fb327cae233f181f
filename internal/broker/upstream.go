package broker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Upstream is an OpenAI-compatible server (vLLM, llama.cpp, Ollama, a
// hosted API) reached over HTTP. The broker already caps concurrency at its
// slots, so the keep-alive pool is sized to them: no connection is opened
// per request in steady state.
type Upstream struct {
	base   string // ends with the version prefix, e.g. http://127.0.0.1:8000/v1
	key    string
	client *http.Client

	mu       sync.Mutex
	models   []string
	modelsAt time.Time
}

// Bounds on what an upstream may send back.
const (
	maxUpstreamBody = 32 << 20
	maxSSELine      = 4 << 20
	modelsTTL       = 30 * time.Second
)

// NewUpstream returns the backend for baseURL (as in OPENAI_BASE_URL:
// scheme, host and version prefix, e.g. http://127.0.0.1:8000/v1) with an
// optional API key, pooling up to slots keep-alive connections.
func NewUpstream(baseURL, key string, slots int) (*Upstream, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: upstream url %q must be http(s)://host[:port]/prefix", ErrBadRequest, baseURL)
	}
	if slots <= 0 {
		slots = 8
	}
	tr := &http.Transport{
		Proxy:               nil, // the backend is named explicitly; never route it through an environment proxy
		MaxIdleConns:        slots,
		MaxIdleConnsPerHost: slots,
		IdleConnTimeout:     90 * time.Second,
	}
	return &Upstream{base: strings.TrimRight(baseURL, "/"), key: key, client: &http.Client{Transport: tr}}, nil
}

// body is the request sent upstream: the client's fields, with max_tokens
// pinned to what the broker reserved (so the upstream cannot overshoot the
// reservation) and, when streaming, usage forced on.
func (u *Upstream) body(r *Request) ([]byte, error) {
	f := make(map[string]json.RawMessage, len(r.Fields)+2)
	for k, v := range r.Fields {
		f[k] = v
	}
	if r.Endpoint != EndpointEmbeddings {
		mt := json.RawMessage(itoa(r.MaxTokens))
		if _, ok := f["max_completion_tokens"]; ok {
			f["max_completion_tokens"] = mt
		} else {
			f["max_tokens"] = mt
		}
		if r.Stream {
			f["stream"] = json.RawMessage("true")
			f["stream_options"] = json.RawMessage(`{"include_usage":true}`)
		}
	}
	return json.Marshal(f)
}

func (u *Upstream) do(ctx context.Context, method, path string, body []byte, stream bool) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.base+"/"+path, rd)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBackend, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if stream {
		req.Header.Set("Accept", "text/event-stream")
	}
	if u.key != "" {
		req.Header.Set("Authorization", "Bearer "+u.key)
	}
	resp, err := u.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBackend, err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		return nil, &BackendError{Status: resp.StatusCode, Body: b}
	}
	return resp, nil
}

// upChunk is what the broker reads of an upstream chunk or response.
type upChunk struct {
	Choices []struct {
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
		Text         string  `json:"text"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *Usage `json:"usage"`
}

// Generate implements Backend.
func (u *Upstream) Generate(ctx context.Context, r *Request, emit func(Chunk) error) (Result, error) {
	body, err := u.body(r)
	if err != nil {
		return Result{}, fmt.Errorf("%w: encode request: %w", ErrBackend, err)
	}
	resp, err := u.do(ctx, http.MethodPost, string(r.Endpoint), body, r.Stream)
	if err != nil {
		return Result{}, err
	}
	defer resp.Body.Close()
	if !r.Stream {
		return u.whole(resp.Body)
	}
	return u.stream(resp.Body, emit)
}

// whole reads a non-streaming response, forwarded to the client unchanged.
func (u *Upstream) whole(rd io.Reader) (Result, error) {
	b, err := io.ReadAll(io.LimitReader(rd, maxUpstreamBody+1))
	if err != nil || len(b) > maxUpstreamBody {
		return Result{}, fmt.Errorf("%w: read upstream response: %v", ErrBackend, err)
	}
	var c upChunk
	if err := json.Unmarshal(b, &c); err != nil {
		return Result{}, fmt.Errorf("%w: upstream response is not JSON: %v", ErrBackend, err)
	}
	res := Result{Body: b}
	if c.Usage != nil {
		res.Usage, res.HaveUsage = *c.Usage, true
		return res, nil
	}
	n := 0 // no usage: the broker's own count of the text it saw
	for _, ch := range c.Choices {
		n += len(ch.Message.Content) + len(ch.Text)
	}
	if n > 0 {
		res.Usage.CompletionTokens = EstimateTokens(n)
	}
	return res, nil
}

// stream relays an SSE stream chunk by chunk. The upstream's usage-only
// chunk is kept back: the broker sends its own after the audit row.
func (u *Upstream) stream(rd io.Reader, emit func(Chunk) error) (Result, error) {
	var res Result
	br := bufio.NewReaderSize(rd, 16<<10)
	for {
		line, err := readLine(br)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return res, fmt.Errorf("%w: upstream stream broke before [DONE]: %v", ErrBackend, err)
		}
		data, ok := bytes.CutPrefix(line, []byte("data:"))
		if !ok {
			continue // comments, event names, blank separators
		}
		data = bytes.TrimSpace(data)
		if string(data) == "[DONE]" {
			return res, nil
		}
		var c upChunk
		if err := json.Unmarshal(data, &c); err != nil {
			return res, fmt.Errorf("%w: upstream chunk is not JSON: %v", ErrBackend, err)
		}
		if c.Usage != nil {
			res.Usage, res.HaveUsage = *c.Usage, true
		}
		if len(c.Choices) == 0 {
			continue
		}
		ch := c.Choices[0]
		if ch.FinishReason != nil {
			res.Finish = *ch.FinishReason
		}
		if err := emit(Chunk{Text: ch.Delta.Content + ch.Text, Raw: bytes.Clone(data)}); err != nil {
			return res, err
		}
	}
}

// readLine reads one line, bounded by maxSSELine.
func readLine(br *bufio.Reader) ([]byte, error) {
	var long []byte
	for {
		frag, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			long = append(long, frag...)
			if len(long) > maxSSELine {
				return nil, fmt.Errorf("sse line over %d bytes", maxSSELine)
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		if long != nil {
			return append(long, frag...), nil
		}
		return frag, nil
	}
}

// Models implements Backend (cached for modelsTTL).
func (u *Upstream) Models(ctx context.Context) ([]string, error) {
	u.mu.Lock()
	if u.models != nil && time.Since(u.modelsAt) < modelsTTL {
		m := u.models
		u.mu.Unlock()
		return m, nil
	}
	u.mu.Unlock()
	resp, err := u.do(ctx, http.MethodGet, "models", nil, false)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxUpstreamBody)).Decode(&list); err != nil {
		return nil, fmt.Errorf("%w: upstream models: %v", ErrBackend, err)
	}
	ids := make([]string, 0, len(list.Data))
	for _, d := range list.Data {
		ids = append(ids, d.ID)
	}
	u.mu.Lock()
	u.models, u.modelsAt = ids, time.Now()
	u.mu.Unlock()
	return ids, nil
}

// Close implements Backend.
func (u *Upstream) Close() error {
	u.client.CloseIdleConnections()
	return nil
}
