package loadgen

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Usage is the OpenAI usage object.
type Usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

// Chunk is what the bench needs from one stream line.
type Chunk struct {
	Done    bool   // the "[DONE]" sentinel
	Content bool   // carries output (one token per chunk from the simulated backend)
	Usage   *Usage // present on the last chunk when include_usage is set
	Error   string // an in-stream error event
}

// ParseSSELine decodes one line of an OpenAI chat-completion stream. Lines
// that are not data (blank, comments, event:) give a zero Chunk and ok false.
func ParseSSELine(line []byte) (c Chunk, ok bool, err error) {
	line = bytes.TrimRight(line, "\r\n")
	data, found := bytes.CutPrefix(line, []byte("data:"))
	if !found {
		return Chunk{}, false, nil
	}
	data = bytes.TrimSpace(data)
	if string(data) == "[DONE]" {
		return Chunk{Done: true}, true, nil
	}
	var v struct {
		Choices []struct {
			Delta struct {
				Content *string `json:"content"`
			} `json:"delta"`
			Text *string `json:"text"`
		} `json:"choices"`
		Usage *Usage `json:"usage"`
		Error *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return Chunk{}, false, fmt.Errorf("%w: %v", ErrBadChunk, err)
	}
	for _, ch := range v.Choices {
		if (ch.Delta.Content != nil && *ch.Delta.Content != "") || (ch.Text != nil && *ch.Text != "") {
			c.Content = true
		}
	}
	c.Usage = v.Usage
	if v.Error != nil {
		c.Error = v.Error.Message
		if c.Error == "" {
			c.Error = "error event without a message"
		}
	}
	return c, true, nil
}
