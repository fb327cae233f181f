package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

const (
	// maxReply caps what is read of an inference reply.
	maxReply = 64 << 10
	// inferTimeout bounds one call, so a stuck backend cannot stall the
	// agent's work loop for long.
	inferTimeout = 30 * time.Second
)

// inferer sends tiny chat completions to an OpenAI-compatible endpoint.
type inferer struct {
	client *http.Client
	url    string // full chat/completions URL
	key    string
	model  string
	via    string // for the log
}

// newInferer returns nil, nil when no endpoint is configured. The broker
// socket wins over OPENAI_BASE_URL because it is the way Coconut meters and
// schedules an agent's tokens.
func newInferer(c config) (*inferer, error) {
	in := &inferer{key: c.APIKey, model: c.Model}
	switch {
	case c.BrokerSocket != "":
		sock := c.BrokerSocket
		var d net.Dialer
		in.client = &http.Client{
			Timeout: inferTimeout,
			Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					return d.DialContext(ctx, "unix", sock)
				},
				MaxIdleConns: 1,
			},
		}
		// The host name is ignored by the dialer; the path is the API's.
		in.url = "http://coconut-broker/v1/chat/completions"
		in.via = "broker socket " + sock
	case c.BaseURL != "":
		u, err := url.Parse(c.BaseURL)
		if err != nil {
			return nil, fmt.Errorf("OPENAI_BASE_URL: %w", err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("OPENAI_BASE_URL %q: want http(s)://host[/path]", c.BaseURL)
		}
		in.client = &http.Client{Timeout: inferTimeout, Transport: &http.Transport{MaxIdleConns: 1}}
		in.url = c.BaseURL + "/chat/completions"
		in.via = c.BaseURL
	default:
		return nil, nil
	}
	return in, nil
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatRequest struct {
	Model     string        `json:"model"`
	Messages  []chatMessage `json:"messages"`
	MaxTokens int           `json:"max_tokens"`
}

// usage is the token count of one completion.
type usage struct {
	Prompt     int `json:"prompt_tokens"`
	Completion int `json:"completion_tokens"`
	Total      int `json:"total_tokens"`
}

// complete asks for a short completion and returns its token usage.
func (in *inferer) complete(ctx context.Context, prompt string) (usage, error) {
	body, err := json.Marshal(chatRequest{
		Model:     in.model,
		Messages:  []chatMessage{{Role: "user", Content: prompt}},
		MaxTokens: 32,
	})
	if err != nil {
		return usage{}, fmt.Errorf("encode request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.url, bytes.NewReader(body))
	if err != nil {
		return usage{}, fmt.Errorf("new request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if in.key != "" {
		req.Header.Set("Authorization", "Bearer "+in.key)
	}
	resp, err := in.client.Do(req)
	if err != nil {
		return usage{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return usage{}, fmt.Errorf("read reply: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return usage{}, fmt.Errorf("status %d: %s", resp.StatusCode, snippet(data))
	}
	return decodeCompletion(data)
}

// decodeCompletion extracts the usage of an OpenAI chat completion. A reply
// without choices or usage, or with negative counts, is refused: the agent
// logs what it was really charged, never a guess.
func decodeCompletion(data []byte) (usage, error) {
	var r struct {
		Choices []json.RawMessage `json:"choices"`
		Usage   *usage            `json:"usage"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return usage{}, fmt.Errorf("%w: %v", errBadResponse, err)
	}
	if len(r.Choices) == 0 {
		return usage{}, fmt.Errorf("%w: no choices", errBadResponse)
	}
	if r.Usage == nil {
		return usage{}, fmt.Errorf("%w: no usage", errBadResponse)
	}
	u := *r.Usage
	if u.Prompt < 0 || u.Completion < 0 || u.Total < 0 {
		return usage{}, fmt.Errorf("%w: negative token count", errBadResponse)
	}
	if u.Total == 0 {
		u.Total = u.Prompt + u.Completion
		if u.Total < 0 {
			return usage{}, fmt.Errorf("%w: token count overflows", errBadResponse)
		}
	}
	return u, nil
}

// snippet quotes the start of an error body for a one-line log entry.
func snippet(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return strconv.Quote(string(b))
}
