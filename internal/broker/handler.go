package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Handler serves the OpenAI routes under /v1/.
func (b *Broker) Handler() http.Handler { return http.HandlerFunc(b.serveHTTP) }

func (b *Broker) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v1/models" {
		if r.Method != http.MethodGet {
			methodNotAllowed(w, http.MethodGet)
			return
		}
		b.serveModels(w, r)
		return
	}
	if ep, ok := inferenceRoute(w, r); ok {
		b.serveInference(w, r, ep)
	}
}

// inferenceRoute maps the path of an inference call to its endpoint, or
// answers 404 or 405 itself (ok false). The broker and the simulator's own
// server share it.
func inferenceRoute(w http.ResponseWriter, r *http.Request) (Endpoint, bool) {
	var ep Endpoint
	switch r.URL.Path {
	case "/v1/chat/completions":
		ep = EndpointChat
	case "/v1/completions":
		ep = EndpointCompletions
	case "/v1/embeddings":
		ep = EndpointEmbeddings
	default:
		writeJSON(w, http.StatusNotFound, appendError(nil, "no route "+r.URL.Path, "invalid_request_error", "not_found"))
		return "", false
	}
	if r.Method != http.MethodPost {
		methodNotAllowed(w, http.MethodPost)
		return "", false
	}
	return ep, true
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeJSON(w, http.StatusMethodNotAllowed, appendError(nil, "method not allowed (use "+allow+")", "invalid_request_error", "method_not_allowed"))
}

func (b *Broker) identify(r *http.Request) (Tenant, error) {
	if b.hooks.Identify == nil {
		return Tenant{}, fmt.Errorf("%w: no identity source", ErrUnauthorized)
	}
	t, err := b.hooks.Identify(r)
	if err != nil && !errors.Is(err, ErrForbidden) && !errors.Is(err, ErrUnauthorized) {
		err = fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	return t, err
}

func (b *Broker) serveModels(w http.ResponseWriter, r *http.Request) {
	ten, err := b.identify(r)
	if err != nil {
		b.refuse(w, "unauthorized", err)
		return
	}
	ids, err := b.be.Models(r.Context())
	if err != nil {
		writeError(w, fmt.Errorf("%w: list models: %w", ErrBackend, err))
		return
	}
	allowed := make([]string, 0, len(ids))
	for _, id := range ids {
		if ten.Models != nil && ten.Models(id) {
			allowed = append(allowed, id)
		}
	}
	writeJSON(w, http.StatusOK, appendModels(nil, allowed))
}

// refuse answers a request refused before it became a call (no audit row:
// no agent or no decodable request).
func (b *Broker) refuse(w http.ResponseWriter, reason string, err error) {
	b.m.rejected.WithLabelValues(reason).Inc()
	writeError(w, err)
}

// readBody reads at most limit bytes into a pooled buffer.
func (b *Broker) readBody(r *http.Request) (*[]byte, error) {
	limit := b.cfg.MaxBodyBytes
	if r.ContentLength > limit {
		return nil, fmt.Errorf("%w: body of %d bytes exceeds %d", ErrBadRequest, r.ContentLength, limit)
	}
	p := b.bufs.Get().(*[]byte)
	buf := (*p)[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Body.Read(buf[len(buf):min(cap(buf), int(limit)+1)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			*p = buf
			b.bufs.Put(p)
			return nil, fmt.Errorf("%w: body exceeds %d bytes", ErrBadRequest, limit)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			*p = buf
			b.bufs.Put(p)
			return nil, fmt.Errorf("%w: read body: %v", ErrBadRequest, err)
		}
	}
	*p = buf
	return p, nil
}

func (b *Broker) serveInference(w http.ResponseWriter, r *http.Request, ep Endpoint) {
	b.calls.Add(1) // Close waits for it: its audit row and usage are delivered
	defer b.calls.Add(-1)
	start := time.Now()
	ten, err := b.identify(r)
	if err != nil {
		b.refuse(w, "unauthorized", err)
		return
	}
	p, err := b.readBody(r)
	if err != nil {
		b.refuse(w, "bad_request", err)
		return
	}
	req, err := DecodeRequest(ep, *p, b.cfg.DefaultMaxTokens, b.cfg.ContextTokens)
	b.bufs.Put(p) // DecodeRequest copies what it keeps
	if err != nil {
		b.refuse(w, "bad_request", err)
		return
	}
	call := Call{AID: ten.AID, Model: req.Model, Endpoint: string(ep), Stream: req.Stream}
	if ten.Models == nil || !ten.Models(req.Model) {
		err := fmt.Errorf("%w: agent %d holds no inference capability for model %q", ErrForbidden, ten.AID, req.Model)
		b.m.rejected.WithLabelValues("denied").Inc()
		b.finishRefused(w, r, &call, ResultDenied, err, start)
		return
	}
	wt, err := b.s.enqueue(ten, req.PromptReserve, req.MaxTokens)
	if err == nil {
		err = b.s.wait(r.Context(), wt)
	}
	if err != nil {
		switch {
		case errors.Is(err, ErrBadRequest):
			b.refuse(w, "bad_request", err)
		case errors.Is(err, ErrOverBudget):
			b.m.rejected.WithLabelValues("budget").Inc()
			b.finishRefused(w, r, &call, ResultBudget, err, start)
		case errors.Is(err, ErrBusy) || errors.Is(err, ErrClosed):
			b.m.rejected.WithLabelValues("busy").Inc()
			b.finishRefused(w, r, &call, ResultBusy, err, start)
		default: // the client left while queued
			call.QueueWait = time.Since(start)
			b.finishRefused(w, r, &call, ResultCancelled, err, start)
		}
		return
	}
	call.QueueWait = wt.admitted.Sub(wt.enq)
	// The agent may have been revoked or quarantined while it waited: no
	// call starts after the revoke returned.
	if err := b.recheck(r, ten.AID, req.Model); err != nil {
		b.s.release(wt, 0, 0)
		b.m.rejected.WithLabelValues("denied").Inc()
		b.finishRefused(w, r, &call, ResultDenied, err, start)
		return
	}
	call.Reserved = wt.need
	if req.Stream {
		// Tokens leave as they are generated, before the final row can be
		// written: record the call first, or do not make it.
		adm := call
		adm.Result, adm.Status = ResultAdmitted, http.StatusOK
		if err := b.audit(r, &adm); err != nil {
			b.s.release(wt, 0, 0)
			b.m.rejected.WithLabelValues("audit").Inc()
			b.m.requests.WithLabelValues(ResultBusy).Inc()
			writeError(w, fmt.Errorf("%w: %w", ErrAudit, err))
			return
		}
	}
	b.run(w, r, req, wt, &call, start)
}

// recheck asks again, after the queue, whether the agent may still call
// the model: Hooks.Recheck, or else Identify once more.
func (b *Broker) recheck(r *http.Request, aid uint64, model string) error {
	if b.hooks.Recheck != nil {
		if err := b.hooks.Recheck(aid, model); err != nil {
			if !errors.Is(err, ErrForbidden) {
				err = fmt.Errorf("%w: %w", ErrForbidden, err)
			}
			return err
		}
		return nil
	}
	ten, err := b.identify(r)
	switch {
	case err != nil:
		return fmt.Errorf("%w: agent %d no longer identified: %w", ErrForbidden, aid, err)
	case ten.AID != aid:
		return fmt.Errorf("%w: the caller changed from agent %d to %d while queued", ErrForbidden, aid, ten.AID)
	case ten.Models == nil || !ten.Models(model):
		return fmt.Errorf("%w: agent %d no longer holds an inference capability for model %q", ErrForbidden, aid, model)
	}
	return nil
}

// finishRefused audits a refused call and answers the error (unless the
// client is gone).
func (b *Broker) finishRefused(w http.ResponseWriter, r *http.Request, c *Call, result string, err error, start time.Time) {
	c.Result, c.Reason = result, err.Error()
	c.Status, _, _ = apiError(err)
	if result == ResultCancelled {
		c.Status = 499 // client closed request
	}
	c.Duration = time.Since(start)
	b.m.requests.WithLabelValues(result).Inc()
	if aerr := b.audit(r, c); aerr != nil {
		err = aerr
	}
	if result != ResultCancelled {
		writeError(w, err)
	}
}

func (b *Broker) audit(r *http.Request, c *Call) error {
	if b.hooks.Audit == nil {
		return nil
	}
	if err := b.hooks.Audit(context.WithoutCancel(r.Context()), *c); err != nil {
		return fmt.Errorf("audit inference call: %w", err)
	}
	return nil
}

// run sends an admitted request to the backend, relays its output, settles
// the reservation and writes the audit row before the final bytes.
func (b *Broker) run(w http.ResponseWriter, r *http.Request, req *Request, wt *waiter, call *Call, start time.Time) {
	rs := resp{ep: req.Endpoint, model: req.Model, created: start.Unix()}
	id := b.ids.Add(1)
	rs.id = idPrefix(req.Endpoint) + b.idBase + strconv.FormatUint(id, 36)
	// A stream write that fails (the client stopped reading past the write
	// deadline, or left) cancels the backend request: the slot is not held
	// for a reader that is not there.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	st := &sse{w: w, rc: http.NewResponseController(w), timeout: b.cfg.WriteTimeout}
	var text, cb []byte
	var chunks, sent int64
	raw := false
	var werr error
	event := func(data []byte) error {
		if err := st.event(data); err != nil {
			werr = err
			cancel()
			return err
		}
		return nil
	}
	emit := func(c Chunk) error {
		// A chunk with content is one token for the broker's own count
		// (role-only and finish chunks of an upstream carry none).
		if c.Text != "" {
			chunks++
			b.s.charge(wt, 1)
		}
		sent++
		if !req.Stream {
			text = append(text, c.Text...)
			return nil
		}
		if c.Raw != nil {
			raw = true
			return event(c.Raw)
		}
		cb = rs.appendChunk(cb[:0], c.Text, "", sent == 1)
		return event(cb)
	}
	res, gerr := b.be.Generate(ctx, req, emit)

	// Reconcile: the backend's usage when it reported one, else our count
	// with the prompt's reservation (fail closed: the content estimate
	// misses what the body carries besides content).
	u := Usage{PromptTokens: req.PromptReserve, CompletionTokens: max(chunks, res.Usage.CompletionTokens)}
	if res.HaveUsage {
		u = res.Usage
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	b.s.release(wt, u.PromptTokens, u.CompletionTokens)
	call.TokensIn, call.TokensOut = u.PromptTokens, u.CompletionTokens

	switch {
	case gerr == nil && werr == nil:
		call.Result, call.Status = ResultOK, http.StatusOK
	case werr != nil:
		call.Result, call.Status, call.Reason = ResultCancelled, 499, "client stopped reading: "+werr.Error()
	case r.Context().Err() != nil:
		call.Result, call.Status, call.Reason = ResultCancelled, 499, "client closed the request"
	default:
		if !errors.Is(gerr, ErrBackend) {
			gerr = fmt.Errorf("%w: %w", ErrBackend, gerr)
		}
		call.Result, call.Reason = ResultBackendError, gerr.Error()
		call.Status, _, _ = apiError(gerr)
	}
	if over := u.TotalTokens - wt.need; over > 0 && call.Result != ResultCancelled {
		// The estimate is conservative, not exact: record what got past it.
		call.Reason = fmt.Sprintf("usage of %d tokens exceeded the %d reserved by %d", u.TotalTokens, wt.need, over)
	}
	if req.Stream && call.Result == ResultOK && !raw {
		cb = rs.appendChunk(cb[:0], "", res.Finish, sent == 0)
		if err := event(cb); err != nil {
			call.Result, call.Status, call.Reason = ResultCancelled, 499, "client stopped reading: "+err.Error()
		}
	}
	b.m.requests.WithLabelValues(call.Result).Inc()
	call.Duration = time.Since(start)
	aerr := b.audit(r, call)
	b.latency[req.Endpoint].Observe(call.Duration.Seconds())
	if call.Result == ResultCancelled {
		return
	}
	if aerr != nil {
		gerr = aerr
	}
	if gerr != nil {
		if st.started {
			_, typ, code := apiError(gerr)
			st.event(appendError(nil, gerr.Error(), typ, code))
			return
		}
		writeError(w, gerr)
		return
	}
	switch {
	case req.Stream:
		if req.IncludeUsage {
			st.event(rs.appendUsageChunk(cb[:0], u))
		}
		st.done()
	case res.Body != nil:
		writeJSON(w, http.StatusOK, res.Body)
	case req.Endpoint == EndpointEmbeddings:
		writeJSON(w, http.StatusOK, appendEmbeddings(nil, req.Model, res.Embeddings, u))
	default:
		writeJSON(w, http.StatusOK, rs.appendFull(cb[:0], string(text), res.Finish, u))
	}
}

func idPrefix(ep Endpoint) string {
	switch ep {
	case EndpointChat:
		return "chatcmpl-"
	case EndpointCompletions:
		return "cmpl-"
	}
	return "emb-"
}
