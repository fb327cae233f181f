package broker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// Endpoint names one of the OpenAI routes the broker serves.
type Endpoint string

// The endpoints.
const (
	EndpointChat        Endpoint = "chat/completions"
	EndpointCompletions Endpoint = "completions"
	EndpointEmbeddings  Endpoint = "embeddings"
)

// Limits that keep decoding bounded whatever the body says.
const (
	maxModelLen  = 256
	maxMessages  = 4096
	maxInputs    = 2048
	maxMaxTokens = 1 << 20
)

// Request is one decoded inference request: the fields the broker acts on,
// and the client's own fields for an upstream to receive unchanged.
type Request struct {
	Endpoint     Endpoint
	Model        string
	Stream       bool
	IncludeUsage bool  // the client asked for the usage chunk
	PromptTokens int64 // the estimate: ceil(content bytes / 4), at least 1
	// PromptReserve is what admission reserves for the prompt: at least
	// PromptTokens and at least the estimate of the whole body, so text in
	// tools, tool_calls, names, image parts or message framing is never
	// free (fail closed: over-reserve, refund on settlement).
	PromptReserve int64
	MaxTokens     int64 // 0 for embeddings
	// MinTokens is vLLM's min_tokens; the simulated backend emits at least
	// this many tokens (capped by MaxTokens), so a benchmark can send
	// fixed-size requests.
	MinTokens int64
	Inputs    int // embeddings: number of inputs
	Fields    map[string]json.RawMessage
}

// Need is what the request reserves: prompt reservation + max_tokens.
func (r *Request) Need() int64 { return r.PromptReserve + r.MaxTokens }

// EstimateTokens is the broker's token estimate for n content bytes:
// ceil(n/4), at least 1. The simulated backend counts the same way.
func EstimateTokens(n int) int64 {
	if n <= 0 {
		return 1
	}
	return int64((n + 3) / 4)
}

// DecodeRequest parses and validates a request body for ep. defMax is used
// when the body names no max_tokens; maxTokens bounds it. Unknown fields are
// kept (clients send temperature, tools, ...), known ones are type-checked.
func DecodeRequest(ep Endpoint, body []byte, defMax, maxTokens int64) (*Request, error) {
	if maxTokens <= 0 || maxTokens > maxMaxTokens {
		maxTokens = maxMaxTokens
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&fields); err != nil {
		return nil, fmt.Errorf("%w: body is not a JSON object: %v", ErrBadRequest, err)
	}
	if fields == nil {
		return nil, fmt.Errorf("%w: body is not a JSON object", ErrBadRequest)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the JSON object", ErrBadRequest)
	}
	r := &Request{Endpoint: ep, Fields: fields}
	if err := str(fields, "model", &r.Model, true); err != nil {
		return nil, err
	}
	if r.Model == "" || len(r.Model) > maxModelLen {
		return nil, fmt.Errorf("%w: model must be 1 to %d bytes", ErrBadRequest, maxModelLen)
	}
	var n int
	var err error
	switch ep {
	case EndpointChat:
		n, err = chatBytes(fields["messages"])
	case EndpointCompletions:
		n, r.Inputs, err = textsBytes("prompt", fields["prompt"], false)
	case EndpointEmbeddings:
		n, r.Inputs, err = textsBytes("input", fields["input"], true)
	default:
		return nil, fmt.Errorf("%w: unknown endpoint %q", ErrBadRequest, ep)
	}
	if err != nil {
		return nil, err
	}
	r.PromptTokens = EstimateTokens(n)
	r.PromptReserve = max(r.PromptTokens, EstimateTokens(len(body)))
	if ep == EndpointEmbeddings {
		if _, ok := fields["stream"]; ok {
			return nil, fmt.Errorf("%w: embeddings do not stream", ErrBadRequest)
		}
		return r, nil
	}
	if err := boolean(fields, "stream", &r.Stream); err != nil {
		return nil, err
	}
	if raw, ok := fields["stream_options"]; ok && !isNull(raw) {
		var so struct {
			IncludeUsage *bool `json:"include_usage"`
		}
		if err := json.Unmarshal(raw, &so); err != nil {
			return nil, fmt.Errorf("%w: stream_options must be an object with a boolean include_usage", ErrBadRequest)
		}
		if !r.Stream {
			return nil, fmt.Errorf("%w: stream_options needs stream: true", ErrBadRequest)
		}
		r.IncludeUsage = so.IncludeUsage != nil && *so.IncludeUsage
	}
	// max_completion_tokens is the newer name; both may not disagree.
	var mt, mct int64
	if err := integer(fields, "max_tokens", &mt, 1, maxTokens); err != nil {
		return nil, err
	}
	if err := integer(fields, "max_completion_tokens", &mct, 1, maxTokens); err != nil {
		return nil, err
	}
	switch {
	case mt != 0 && mct != 0 && mt != mct:
		return nil, fmt.Errorf("%w: max_tokens and max_completion_tokens differ", ErrBadRequest)
	case mct != 0:
		r.MaxTokens = mct
	case mt != 0:
		r.MaxTokens = mt
	default:
		r.MaxTokens = min(defMax, maxTokens)
	}
	if err := integer(fields, "min_tokens", &r.MinTokens, 0, r.MaxTokens); err != nil {
		return nil, err
	}
	if err := singleSequence(fields); err != nil {
		return nil, err
	}
	return r, nil
}

// singleSequence refuses the fields with which an upstream generates more
// than one sequence per request (n, best_of, beam search): the broker
// reserves max_tokens for one, so any of them would let the backend spend
// a multiple of the reservation.
func singleSequence(fields map[string]json.RawMessage) error {
	for _, key := range []string{"n", "best_of", "num_beams", "beam_width"} {
		var v int64
		if err := integer(fields, key, &v, 1, 1); err != nil {
			return fmt.Errorf("%w (the broker serves one sequence per request)", err)
		}
	}
	var beam bool
	if err := boolean(fields, "use_beam_search", &beam); err != nil {
		return err
	}
	if beam {
		return fmt.Errorf("%w: use_beam_search must be false (the broker serves one sequence per request)", ErrBadRequest)
	}
	return nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func str(f map[string]json.RawMessage, key string, dst *string, required bool) error {
	raw, ok := f[key]
	if !ok || isNull(raw) {
		if required {
			return fmt.Errorf("%w: %s is required", ErrBadRequest, key)
		}
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("%w: %s must be a string", ErrBadRequest, key)
	}
	return nil
}

func boolean(f map[string]json.RawMessage, key string, dst *bool) error {
	raw, ok := f[key]
	if !ok || isNull(raw) {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("%w: %s must be a boolean", ErrBadRequest, key)
	}
	return nil
}

// integer reads an optional integer in [lo, hi]; absent or null leaves dst.
func integer(f map[string]json.RawMessage, key string, dst *int64, lo, hi int64) error {
	raw, ok := f[key]
	if !ok || isNull(raw) {
		return nil
	}
	v, err := strconv.ParseInt(string(bytes.TrimSpace(raw)), 10, 64)
	if err != nil || v < lo || v > hi {
		return fmt.Errorf("%w: %s must be an integer from %d to %d", ErrBadRequest, key, lo, hi)
	}
	*dst = v
	return nil
}

// chatBytes validates messages and returns the bytes of their contents.
func chatBytes(raw json.RawMessage) (int, error) {
	if raw == nil || isNull(raw) {
		return 0, fmt.Errorf("%w: messages is required", ErrBadRequest)
	}
	var msgs []struct {
		Role    *string         `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(raw, &msgs); err != nil {
		return 0, fmt.Errorf("%w: messages must be an array of objects", ErrBadRequest)
	}
	if len(msgs) == 0 || len(msgs) > maxMessages {
		return 0, fmt.Errorf("%w: messages must hold 1 to %d entries", ErrBadRequest, maxMessages)
	}
	n := 0
	for i, m := range msgs {
		if m.Role == nil || *m.Role == "" {
			return 0, fmt.Errorf("%w: messages[%d].role is required", ErrBadRequest, i)
		}
		c, err := contentBytes(m.Content)
		if err != nil {
			return 0, fmt.Errorf("%w: messages[%d].content: %v", ErrBadRequest, i, err)
		}
		n += c
	}
	return n, nil
}

// contentBytes accepts a string, null (assistant tool calls) or an array of
// parts; text parts count, others (images) count their JSON size so they
// are not free.
func contentBytes(raw json.RawMessage) (int, error) {
	if raw == nil || isNull(raw) {
		return 0, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return len(s), nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return 0, fmt.Errorf("must be a string or an array of parts")
	}
	n := 0
	for _, p := range parts {
		if p.Type == "text" {
			n += len(p.Text)
		} else if p.Type == "" {
			return 0, fmt.Errorf("a part has no type")
		}
	}
	if n == 0 && len(parts) > 0 {
		n = len(raw)
	}
	return n, nil
}

// textsBytes validates a prompt or input: a string, an array of strings, or
// (tokens=true) an array of token ids or of token-id arrays.
func textsBytes(key string, raw json.RawMessage, tokens bool) (bytesN, inputs int, err error) {
	if raw == nil || isNull(raw) {
		return 0, 0, fmt.Errorf("%w: %s is required", ErrBadRequest, key)
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return len(s), 1, nil
	}
	var ss []string
	if json.Unmarshal(raw, &ss) == nil {
		if len(ss) == 0 || len(ss) > maxInputs {
			return 0, 0, fmt.Errorf("%w: %s must hold 1 to %d entries", ErrBadRequest, key, maxInputs)
		}
		for _, x := range ss {
			bytesN += len(x)
		}
		return bytesN, len(ss), nil
	}
	if tokens {
		var ids []int64
		if json.Unmarshal(raw, &ids) == nil && len(ids) > 0 {
			return 4 * len(ids), 1, nil // one token each, in the estimate's unit
		}
		var idss [][]int64
		if json.Unmarshal(raw, &idss) == nil && len(idss) > 0 && len(idss) <= maxInputs {
			for _, x := range idss {
				bytesN += 4 * len(x)
			}
			return bytesN, len(idss), nil
		}
	}
	return 0, 0, fmt.Errorf("%w: %s must be a string or an array of strings", ErrBadRequest, key)
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
