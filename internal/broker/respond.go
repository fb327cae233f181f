package broker

import (
	"errors"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"
)

// apiError maps an error to its HTTP status and OpenAI error type and code,
// in this one place.
func apiError(err error) (status int, typ, code string) {
	var be *BackendError
	switch {
	case errors.As(err, &be) && be.Status >= 400 && be.Status < 500:
		return be.Status, "invalid_request_error", "upstream_refused"
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest, "invalid_request_error", "invalid_request"
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden, "permission_error", "model_not_allowed"
	case errors.Is(err, ErrOverBudget):
		return http.StatusTooManyRequests, "insufficient_quota", "insufficient_quota"
	case errors.Is(err, ErrBusy):
		return http.StatusTooManyRequests, "rate_limit_error", "rate_limit_exceeded"
	case errors.Is(err, ErrBackend):
		return http.StatusBadGateway, "api_error", "backend_error"
	case errors.Is(err, ErrClosed), errors.Is(err, ErrAudit):
		return http.StatusServiceUnavailable, "api_error", "unavailable"
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized, "invalid_request_error", "invalid_api_key"
	default:
		return http.StatusInternalServerError, "api_error", "internal_error"
	}
}

// appendError appends an OpenAI error object.
func appendError(b []byte, msg, typ, code string) []byte {
	b = append(b, `{"error":{"message":`...)
	b = appendString(b, msg)
	b = append(b, `,"type":`...)
	b = appendString(b, typ)
	b = append(b, `,"code":`...)
	b = appendString(b, code)
	return append(b, "}}"...)
}

// writeError answers err as an OpenAI error; it returns the status sent.
func writeError(w http.ResponseWriter, err error) int {
	status, typ, code := apiError(err)
	var be *BackendError
	if errors.As(err, &be) && status == be.Status && len(be.Body) > 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(be.Body)
		return status
	}
	writeJSON(w, status, appendError(nil, err.Error(), typ, code))
	return status
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// appendString appends s as a JSON string (invalid UTF-8 becomes U+FFFD).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else if r == '\u2028' || r == '\u2029' {
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// resp formats the OpenAI response objects of one call.
type resp struct {
	ep      Endpoint
	id      string
	model   string
	created int64
}

func (r *resp) object(chunk bool) string {
	switch {
	case r.ep == EndpointChat && chunk:
		return "chat.completion.chunk"
	case r.ep == EndpointChat:
		return "chat.completion"
	}
	return "text_completion"
}

func (r *resp) head(b []byte, chunk bool) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, r.id)
	b = append(b, `,"object":"`...)
	b = append(b, r.object(chunk)...)
	b = append(b, `","created":`...)
	b = strconv.AppendInt(b, r.created, 10)
	b = append(b, `,"model":`...)
	return appendString(b, r.model)
}

// appendChunk appends one streamed chunk; finish == "" means null, first
// adds the assistant role to a chat delta.
func (r *resp) appendChunk(b []byte, text, finish string, first bool) []byte {
	b = r.head(b, true)
	b = append(b, `,"choices":[{"index":0,`...)
	if r.ep == EndpointChat {
		b = append(b, `"delta":{`...)
		if first {
			b = append(b, `"role":"assistant",`...)
		}
		b = append(b, `"content":`...)
		b = appendString(b, text)
		b = append(b, '}')
	} else {
		b = append(b, `"text":`...)
		b = appendString(b, text)
		b = append(b, `,"logprobs":null`...)
	}
	b = append(b, `,"finish_reason":`...)
	b = appendFinish(b, finish)
	return append(b, "}]}"...)
}

// appendUsageChunk appends the final usage-only chunk (choices empty).
func (r *resp) appendUsageChunk(b []byte, u Usage) []byte {
	b = r.head(b, true)
	b = append(b, `,"choices":[],"usage":`...)
	b = appendUsage(b, u)
	return append(b, '}')
}

// appendFull appends a complete non-streaming response.
func (r *resp) appendFull(b []byte, text, finish string, u Usage) []byte {
	b = r.head(b, false)
	b = append(b, `,"choices":[{"index":0,`...)
	if r.ep == EndpointChat {
		b = append(b, `"message":{"role":"assistant","content":`...)
		b = appendString(b, text)
		b = append(b, '}')
	} else {
		b = append(b, `"text":`...)
		b = appendString(b, text)
		b = append(b, `,"logprobs":null`...)
	}
	b = append(b, `,"finish_reason":`...)
	b = appendFinish(b, finish)
	b = append(b, `}],"usage":`...)
	b = appendUsage(b, u)
	return append(b, '}')
}

func appendEmbeddings(b []byte, model string, vecs [][]float32, u Usage) []byte {
	b = append(b, `{"object":"list","data":[`...)
	for i, v := range vecs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"object":"embedding","index":`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `,"embedding":[`...)
		for j, x := range v {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendFloat(b, float64(x), 'g', -1, 32)
		}
		b = append(b, "]}"...)
	}
	b = append(b, `],"model":`...)
	b = appendString(b, model)
	b = append(b, `,"usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, u.PromptTokens, 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, u.PromptTokens, 10)
	return append(b, "}}"...)
}

func appendFinish(b []byte, finish string) []byte {
	if finish == "" {
		return append(b, "null"...)
	}
	return appendString(b, finish)
}

func appendUsage(b []byte, u Usage) []byte {
	b = append(b, `{"prompt_tokens":`...)
	b = strconv.AppendInt(b, u.PromptTokens, 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, u.CompletionTokens, 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, u.PromptTokens+u.CompletionTokens, 10)
	return append(b, '}')
}

func appendModels(b []byte, ids []string) []byte {
	b = append(b, `{"object":"list","data":[`...)
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = appendString(b, id)
		b = append(b, `,"object":"model","created":0,"owned_by":"coconut"}`...)
	}
	return append(b, "]}"...)
}

// sse writes Server-Sent Events: headers on the first event, one flush per
// event so every token reaches the agent as it is produced.
type sse struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration // per event; 0: none
	started bool
	buf     []byte
}

func (s *sse) event(data []byte) error {
	if !s.started {
		h := s.w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		s.w.WriteHeader(http.StatusOK)
		s.started = true
	}
	s.buf = append(s.buf[:0], "data: "...)
	s.buf = append(s.buf, data...)
	s.buf = append(s.buf, "\n\n"...)
	if s.timeout > 0 {
		// A writer without deadlines (a test recorder) has nothing to
		// block on; any other failure to arm one is a failed write.
		if err := s.rc.SetWriteDeadline(time.Now().Add(s.timeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
	}
	if _, err := s.w.Write(s.buf); err != nil {
		return err
	}
	return s.rc.Flush()
}

func (s *sse) done() error { return s.event([]byte("[DONE]")) }
