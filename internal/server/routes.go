package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/agent"
	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/audit/gate"
	"github.com/coconut-os/coconut/internal/checkpoint"
	"github.com/coconut-os/coconut/internal/events"
	"github.com/coconut-os/coconut/internal/sign"
)

// handler is a call with its caller already identified.
type handler func(w http.ResponseWriter, r *http.Request, c agent.Caller) error

func (s *Server) handle(pattern string, h handler) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		c, err := s.caller(r)
		if err == nil {
			err = s.admitted(r, c, func() error { return h(w, r, c) })
		}
		if err != nil {
			s.fail(w, r, err)
		}
	})
}

func (s *Server) routes() {
	s.handle("POST /v1/agents", s.spawn)
	s.handle("POST /v1/agents/run", s.run)
	s.handle("GET /v1/agents", s.list)
	s.handle("GET /v1/agents/{aid}", s.get)
	s.handle("GET /v1/agents/{aid}/attestation", s.attestation)
	s.handle("GET /v1/agents/{aid}/quota", s.quota)
	s.handle("PUT /v1/agents/{aid}/quota", s.setQuota)
	s.handle("GET /v1/agents/{aid}/caps", s.caps)
	s.handle("POST /v1/agents/{aid}/caps/grant", s.capsChange(s.agents.Grant))
	s.handle("POST /v1/agents/{aid}/caps/revoke", s.capsChange(s.agents.Revoke))
	s.handle("POST /v1/agents/{aid}/caps/present", s.present)
	s.handle("POST /v1/agents/{aid}/memory", s.memoryTier)
	s.handle("POST /v1/agents/{aid}/quarantine", s.quarantine)
	s.handle("POST /v1/agents/{aid}/release", s.release)
	s.handle("POST /v1/agents/{aid}/kill", s.kill)
	s.handle("GET /v1/agents/{aid}/logs", s.logs)
	s.handle("POST /v1/agents/prune", s.prune) // issue 17
	s.handle("GET /v1/audit", s.audit)
	s.handle("GET /v1/audit/proof", s.auditProof)    // issue 4: Merkle inclusion proofs
	s.handle("GET /v1/events", s.eventStream)        // issue 13: events.go
	s.handle("POST /v1/center/login", s.centerLogin) // issue 13: center.go
	s.handle("GET /v1/trust", s.trustList)
	s.handle("POST /v1/trust", s.trustAdd)
	s.handle("GET /v1/doctor", s.doctorCall)
	s.handle("GET /v1/inference", s.inference)
	s.handle("/", func(w http.ResponseWriter, r *http.Request, _ agent.Caller) error {
		return api.Errorf(api.ErrNotFound, "no such call: %s %s", r.Method, r.URL.Path)
	})
}

func aidParam(r *http.Request) (uint64, error) {
	s := r.PathValue("aid")
	aid, err := strconv.ParseUint(s, 10, 64)
	if err != nil || aid == 0 {
		return 0, api.Errorf(api.ErrInvalid, "AID %q: must be a positive 64-bit number", s)
	}
	return aid, nil
}

func (s *Server) spawn(w http.ResponseWriter, r *http.Request, c agent.Caller) error {
	var req api.SpawnRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	agents, err := s.agents.Spawn(r.Context(), c, req)
	if err != nil {
		return err
	}
	s.reply(w, api.SpawnResponse{Agents: agents})
	return nil
}

func (s *Server) run(w http.ResponseWriter, r *http.Request, c agent.Caller) error {
	var req api.RunRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	a, err := s.agents.Run(r.Context(), c, req)
	if err != nil {
		return err
	}
	s.reply(w, a)
	return nil
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, c agent.Caller) error {
	s.reply(w, s.agents.List(c, r.URL.Query().Get("all") != ""))
	return nil
}

// withAID adapts the calls that take only an AID.
func withAID[T any](fn func(agent.Caller, uint64) (T, error)) func(*Server, http.ResponseWriter, *http.Request, agent.Caller) error {
	return func(s *Server, w http.ResponseWriter, r *http.Request, c agent.Caller) error {
		aid, err := aidParam(r)
		if err != nil {
			return err
		}
		v, err := fn(c, aid)
		if err != nil {
			return err
		}
		s.reply(w, v)
		return nil
	}
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, c agent.Caller) error {
	return withAID(s.agents.Get)(s, w, r, c)
}
func (s *Server) attestation(w http.ResponseWriter, r *http.Request, c agent.Caller) error {
	return withAID(s.agents.Attestation)(s, w, r, c)
}
func (s *Server) quota(w http.ResponseWriter, r *http.Request, c agent.Caller) error {
	return withAID(s.agents.Quota)(s, w, r, c)
}
func (s *Server) caps(w http.ResponseWriter, r *http.Request, c agent.Caller) error {
	return withAID(s.agents.Caps)(s, w, r, c)
}

// capsChange adapts agent_cap_grant and agent_cap_revoke. A revoke that
// had to quarantine the agent answers 409 with the new bundle's reason.
func (s *Server) capsChange(fn func(context.Context, agent.Caller, uint64, []string) ([]string, error)) handler {
	return func(w http.ResponseWriter, r *http.Request, c agent.Caller) error {
		aid, err := aidParam(r)
		if err != nil {
			return err
		}
		var req api.CapsRequest
		if err := decode(w, r, &req); err != nil {
			return err
		}
		caps, err := fn(r.Context(), c, aid, req.Caps)
		if err != nil {
			return err
		}
		s.reply(w, caps)
		return nil
	}
}

func (s *Server) present(w http.ResponseWriter, r *http.Request, c agent.Caller) error {
	aid, err := aidParam(r)
	if err != nil {
		return err
	}
	var req api.PresentRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := s.agents.Present(r.Context(), c, aid, req.Cap, req.Object); err != nil {
		return err
	}
	s.reply(w, map[string]any{"allowed": true, "cap": req.Cap})
	return nil
}

func (s *Server) kill(w http.ResponseWriter, r *http.Request, c agent.Caller) error {
	aid, err := aidParam(r)
	if err != nil {
		return err
	}
	a, err := s.agents.Kill(r.Context(), c, aid)
	if err != nil {
		return err
	}
	s.reply(w, a)
	return nil
}

// setQuota is agent_quota's write (the owner or root; not agents).
func (s *Server) setQuota(w http.ResponseWriter, r *http.Request, c agent.Caller) error {
	aid, err := aidParam(r)
	if err != nil {
		return err
	}
	var req api.QuotaBudget
	if err := decode(w, r, &req); err != nil {
		return err
	}
	q, err := s.agents.SetQuota(r.Context(), c, aid, req)
	if err != nil {
		return err
	}
	s.reply(w, q)
	return nil
}

// memoryTier is agent_memory_tier.
func (s *Server) memoryTier(w http.ResponseWriter, r *http.Request, c agent.Caller) error {
	aid, err := aidParam(r)
	if err != nil {
		return err
	}
	var req api.MemoryRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	m, err := s.agents.MemoryTier(r.Context(), c, aid, req)
	if err != nil {
		return err
	}
	s.reply(w, m)
	return nil
}

func (s *Server) quarantine(w http.ResponseWriter, r *http.Request, c agent.Caller) error {
	aid, err := aidParam(r)
	if err != nil {
		return err
	}
	a, err := s.agents.Quarantine(r.Context(), c, aid)
	if err != nil {
		return err
	}
	s.reply(w, a)
	return nil
}

func (s *Server) release(w http.ResponseWriter, r *http.Request, c agent.Caller) error {
	aid, err := aidParam(r)
	if err != nil {
		return err
	}
	a, err := s.agents.Release(r.Context(), c, aid)
	if err != nil {
		return err
	}
	s.reply(w, a)
	return nil
}

func (s *Server) logs(w http.ResponseWriter, r *http.Request, c agent.Caller) error {
	aid, err := aidParam(r)
	if err != nil {
		return err
	}
	p, err := s.agents.LogPath(c, aid)
	if err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return api.Errorf(api.ErrNotFound, "agent %d has no log: %v", aid, err)
	}
	defer f.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err = io.Copy(w, f)
	return err
}

// prune is agent_prune (issue 17): ended agents' records, attestations
// and logs removed; never the audit chain.
func (s *Server) prune(w http.ResponseWriter, r *http.Request, c agent.Caller) error {
	var req api.PruneRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.EndedBefore.IsZero() {
		return api.Errorf(api.ErrInvalid, "ended_before: required")
	}
	res, err := s.agents.Prune(c, req.EndedBefore)
	if err != nil {
		return err
	}
	s.reply(w, res)
	return nil
}

func (s *Server) trustList(w http.ResponseWriter, r *http.Request, c agent.Caller) error {
	out := []api.TrustEntry{}
	for _, e := range s.trust.List() {
		out = append(out, api.TrustEntry{KeyID: e.KeyID, AddedBy: e.AddedBy, AddedAt: e.AddedAt, Comment: e.Comment})
	}
	s.reply(w, out)
	return nil
}

// trustAdd adds a publisher key. Root's keys are trusted for everyone; a
// user's key only for that user's own spawns (sign.Trust.TrustedFor).
func (s *Server) trustAdd(w http.ResponseWriter, r *http.Request, c agent.Caller) error {
	if c.AID != 0 {
		return api.Errorf(api.ErrDenied, "agent %d may not change the trust store", c.AID)
	}
	var req api.TrustRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	pub, err := sign.ParsePublicKey(req.PublicKey)
	if err != nil {
		return api.Errorf(api.ErrInvalid, "public_key: %v", err)
	}
	if len(req.Comment) > 256 {
		return api.Errorf(api.ErrInvalid, "comment: over 256 bytes")
	}
	keyID := sign.KeyID(pub)
	if err := s.auditRow(r, audit.TrustAdd(keyID, c.UID)); err != nil {
		return err
	}
	if _, err := s.trust.Add(pub, c.UID, req.Comment); err != nil {
		return api.Errorf(api.ErrConflict, "%v", err)
	}
	e, _ := s.trust.Lookup(keyID)
	s.reply(w, api.TrustEntry{KeyID: e.KeyID, AddedBy: e.AddedBy, AddedAt: e.AddedAt, Comment: e.Comment})
	return nil
}

func (s *Server) auditRow(r *http.Request, rec audit.Record) error {
	return gate.Append(r.Context(), s.chain, rec)
}

func (s *Server) doctorCall(w http.ResponseWriter, r *http.Request, c agent.Caller) error {
	s.reply(w, s.doctor())
	return nil
}

// inference answers the broker's counters, keeping only the agents the
// caller may see (a user the agents they authorized, root all, an agent
// only itself).
func (s *Server) inference(w http.ResponseWriter, r *http.Request, c agent.Caller) error {
	if s.infer == nil {
		return api.Errorf(api.ErrUnavailable, "this daemon runs no inference broker")
	}
	st := s.infer()
	seen := map[uint64]bool{}
	for _, a := range s.agents.List(c, true) {
		seen[a.AID] = true
	}
	st.Agents = slices.DeleteFunc(st.Agents, func(a api.InferenceAgent) bool { return !seen[a.AID] })
	st.Blocked = slices.DeleteFunc(st.Blocked, func(aid uint64) bool { return !seen[aid] })
	s.reply(w, st)
	return nil
}

// auditQuery parses agent_audit_query's filters.
func auditQuery(r *http.Request) (audit.Query, error) {
	v := r.URL.Query()
	q := audit.Query{Type: v.Get("type"), Cap: v.Get("cap"), Result: v.Get("result")}
	if s := v.Get("aid"); s != "" {
		aid, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return q, api.Errorf(api.ErrInvalid, "aid %q: not a number", s)
		}
		q.AID = &aid
	}
	for name, dst := range map[string]*time.Time{"since": &q.Since, "until": &q.Until} {
		if s := v.Get(name); s != "" {
			t, err := parseTime(s)
			if err != nil {
				return q, api.Errorf(api.ErrInvalid, "%s %q: %v", name, s, err)
			}
			*dst = t
		}
	}
	if s := v.Get("after"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return q, api.Errorf(api.ErrInvalid, "after %q: not a number", s)
		}
		q.AfterSeq = n
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > audit.MaxLimit {
			return q, api.Errorf(api.ErrInvalid, "limit %q: must be 1..%d", s, audit.MaxLimit)
		}
		q.Limit = n
	}
	if q.Result != "" && q.Result != audit.ResultAllow && q.Result != audit.ResultDeny {
		return q, api.Errorf(api.ErrInvalid, "result %q: must be allow or deny", q.Result)
	}
	return q, nil
}

// parseTime takes RFC 3339, or a duration meaning "that long ago" (15m).
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("want RFC 3339 or a duration like 15m")
}

// audit is agent_audit_query. Root sees every row; anyone else the rows of
// agents they may see.
func (s *Server) audit(w http.ResponseWriter, r *http.Request, c agent.Caller) error {
	q, err := auditQuery(r)
	if err != nil {
		return err
	}
	if q.AID != nil && *q.AID != 0 && !s.agents.SeesRow(c, *q.AID) {
		return api.Errorf(api.ErrNotFound, "no agent %d", *q.AID)
	}
	allowed := func(rec audit.Record) bool { return s.agents.SeesRow(c, rec.AID) }
	if r.URL.Query().Get("follow") != "" {
		return s.follow(w, r, q, allowed)
	}
	recs, err := s.chain.Query(q)
	if err != nil {
		return api.Errorf(api.ErrInvalid, "%v", err)
	}
	page := api.AuditPage{Records: []api.Record{}}
	limit := q.Limit
	if limit == 0 {
		limit = audit.DefaultLimit
	}
	for _, rec := range recs {
		if allowed(rec) {
			page.Records = append(page.Records, events.Row(rec))
		}
	}
	if len(recs) == limit {
		page.Next = recs[len(recs)-1].Seq
	}
	s.reply(w, page)
	return nil
}

// follow streams rows as JSON lines until the client goes away.
func (s *Server) follow(w http.ResponseWriter, r *http.Request, q audit.Query, allowed func(audit.Record) bool) error {
	ch, err := s.chain.Follow(r.Context(), q)
	if err != nil {
		return api.Errorf(api.ErrInvalid, "%v", err)
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for rec := range ch {
		if !allowed(rec) {
			continue
		}
		if err := enc.Encode(events.Row(rec)); err != nil {
			return nil
		}
		if len(ch) == 0 {
			bw.Flush()
			if flusher != nil {
				flusher.Flush()
			}
		}
	}
	bw.Flush()
	return nil
}

// --- issue 4: audit proofs (begin) ---

// auditProof proves one row to the latest signed checkpoint. The chain
// carries its prover (the checkpoint log) as its audit.Observer.
func (s *Server) auditProof(w http.ResponseWriter, r *http.Request, c agent.Caller) error {
	v := r.URL.Query()
	seq, err := strconv.ParseUint(v.Get("seq"), 10, 64)
	if err != nil || seq == 0 {
		return api.Errorf(api.ErrInvalid, "seq %q: must be a positive number", v.Get("seq"))
	}
	var old uint64
	if o := v.Get("old"); o != "" {
		if old, err = strconv.ParseUint(o, 10, 64); err != nil || old == 0 {
			return api.Errorf(api.ErrInvalid, "old %q: must be a positive checkpoint size", o)
		}
	}
	prover, ok := s.chain.Observer().(*checkpoint.Log)
	if !ok {
		return api.Errorf(api.ErrUnavailable, "this daemon keeps no Merkle checkpoints")
	}
	if !(c.UID == 0 && c.AID == 0) {
		recs, err := s.chain.Query(audit.Query{AfterSeq: seq - 1, Limit: 1})
		if err != nil || len(recs) == 0 || recs[0].Seq != seq || !s.agents.SeesRow(c, recs[0].AID) {
			return api.Errorf(api.ErrNotFound, "no audit row %d you may see", seq)
		}
	}
	p, err := prover.Prove(seq, old)
	switch {
	case errors.Is(err, checkpoint.ErrNotFound):
		return api.Errorf(api.ErrNotFound, "%v", err)
	case err != nil:
		return api.Errorf(api.ErrUnavailable, "prove row %d: %v", seq, err)
	}
	out := api.AuditProof{Seq: p.Seq, Record: p.Record, LeafIndex: p.LeafIndex, TreeSize: p.TreeSize, Hashes: p.Hashes, Checkpoint: p.Checkpoint}
	if p.Consistency != nil {
		out.Consistency = &api.AuditConsistency{OldCheckpoint: p.Consistency.Old, Hashes: p.Consistency.Hashes}
	}
	s.reply(w, out)
	return nil
}

// --- issue 4: audit proofs (end) ---
