package broker

import (
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

var simIDs atomic.Uint64

// ServeHTTP serves the simulated backend as an OpenAI-compatible server
// with no identity, scheduling or budgets: the benchmark's direct baseline,
// and an "upstream" for tests. It honours stream_options.include_usage as
// OpenAI does (a final chunk with empty choices and the usage).
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v1/models" {
		writeJSON(w, http.StatusOK, appendModels(nil, s.c.Models))
		return
	}
	ep, ok := inferenceRoute(w, r)
	if !ok {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<20))
	if err != nil {
		writeError(w, ErrBadRequest)
		return
	}
	req, err := DecodeRequest(ep, body, 256, maxMaxTokens)
	if err != nil {
		writeError(w, err)
		return
	}
	rs := resp{ep: ep, model: req.Model, created: time.Now().Unix(),
		id: idPrefix(ep) + "sim-" + strconv.FormatUint(simIDs.Add(1), 36)}
	st := &sse{w: w, rc: http.NewResponseController(w)}
	var text, cb []byte
	n := 0
	res, err := s.Generate(r.Context(), req, func(c Chunk) error {
		n++
		if !req.Stream {
			text = append(text, c.Text...)
			return nil
		}
		cb = rs.appendChunk(cb[:0], c.Text, "", n == 1)
		return st.event(cb)
	})
	if err != nil {
		if st.started {
			return
		}
		writeError(w, err)
		return
	}
	switch {
	case req.Endpoint == EndpointEmbeddings:
		writeJSON(w, http.StatusOK, appendEmbeddings(nil, req.Model, res.Embeddings, res.Usage))
	case req.Stream:
		st.event(rs.appendChunk(cb[:0], "", res.Finish, n == 0))
		if req.IncludeUsage {
			st.event(rs.appendUsageChunk(cb[:0], res.Usage))
		}
		st.done()
	default:
		writeJSON(w, http.StatusOK, rs.appendFull(cb[:0], string(text), res.Finish, res.Usage))
	}
}
