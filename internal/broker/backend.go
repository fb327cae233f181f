package broker

import "context"

// Backend serves admitted requests: the simulated backend in-process (Sim)
// or an OpenAI-compatible server over HTTP (Upstream). The broker calls it
// only within its slot and context limits, so a Backend needs no queue.
type Backend interface {
	// Generate runs one request. For completions it calls emit once per
	// output chunk, in order, as the chunk is produced (the broker charges
	// the tenant and forwards it); an emit error (the client went away)
	// stops generation. The Result carries the backend's own usage when it
	// reported one. A stream broken midway returns the chunks emitted so far
	// and an error wrapping ErrBackend.
	Generate(ctx context.Context, r *Request, emit func(Chunk) error) (Result, error)
	// Models lists the model ids the backend serves.
	Models(ctx context.Context) ([]string, error)
	Close() error
}

// Chunk is one piece of streamed output.
type Chunk struct {
	// Text is the content delta.
	Text string
	// Raw, when set, is the upstream's own chunk JSON, forwarded to a
	// streaming client unchanged.
	Raw []byte
}

// Usage is the token count of one call as OpenAI reports it.
type Usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

// Result is what Generate returns besides the streamed chunks.
type Result struct {
	Usage     Usage
	HaveUsage bool   // the backend reported Usage; otherwise the broker counts
	Finish    string // finish_reason: "stop" or "length"
	// Body, when set, is the upstream's complete non-streaming response,
	// forwarded unchanged.
	Body []byte
	// Embeddings are the simulated backend's vectors.
	Embeddings [][]float32
}
