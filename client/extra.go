package client

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/coconut-os/coconut/api"
)

// AgentRun starts one agent from a command line, without a manifest file.
func (c *Client) AgentRun(ctx context.Context, req api.RunRequest) (*api.Agent, error) {
	var out api.Agent
	err := c.do(ctx, http.MethodPost, "/agents/run", nil, req, &out)
	return &out, err
}

// Agents lists agents; all includes ended ones.
func (c *Client) Agents(ctx context.Context, all bool) ([]api.Agent, error) {
	var out []api.Agent
	q := url.Values{}
	if all {
		q.Set("all", "1")
	}
	err := c.do(ctx, http.MethodGet, "/agents", q, nil, &out)
	return out, err
}

// Agent returns one agent.
func (c *Client) Agent(ctx context.Context, aid uint64) (*api.Agent, error) {
	var out api.Agent
	err := c.do(ctx, http.MethodGet, aidPath(aid, ""), nil, nil, &out)
	return &out, err
}

// Caps returns the agent's current capabilities, ~ expanded.
func (c *Client) Caps(ctx context.Context, aid uint64) ([]string, error) {
	var out []string
	err := c.do(ctx, http.MethodGet, aidPath(aid, "/caps"), nil, nil, &out)
	return out, err
}

// AgentPrune forgets the ended agents that ended before t: their records,
// attestations and logs (issue 17). The audit chain keeps every row.
func (c *Client) AgentPrune(ctx context.Context, t time.Time) (*api.PruneResult, error) {
	var out api.PruneResult
	err := c.do(ctx, http.MethodPost, "/agents/prune", nil, api.PruneRequest{EndedBefore: t}, &out)
	return &out, err
}

// Kill ends the agent (Terminated-revoked).
func (c *Client) Kill(ctx context.Context, aid uint64) (*api.Agent, error) {
	var out api.Agent
	err := c.do(ctx, http.MethodPost, aidPath(aid, "/kill"), nil, nil, &out)
	return &out, err
}

// Quarantine freezes the agent; Release thaws it.
func (c *Client) Quarantine(ctx context.Context, aid uint64) (*api.Agent, error) {
	var out api.Agent
	err := c.do(ctx, http.MethodPost, aidPath(aid, "/quarantine"), nil, nil, &out)
	return &out, err
}

// Release thaws a quarantined agent.
func (c *Client) Release(ctx context.Context, aid uint64) (*api.Agent, error) {
	var out api.Agent
	err := c.do(ctx, http.MethodPost, aidPath(aid, "/release"), nil, nil, &out)
	return &out, err
}

// Logs copies the agent's captured stdout and stderr to w.
func (c *Client) Logs(ctx context.Context, aid uint64, w io.Writer) error {
	resp, err := c.send(ctx, http.MethodGet, aidPath(aid, "/logs"), nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	return err
}

// TrustAdd asks the daemon to trust a publisher key (PEM).
func (c *Client) TrustAdd(ctx context.Context, pemKey []byte, comment string) (*api.TrustEntry, error) {
	var out api.TrustEntry
	err := c.do(ctx, http.MethodPost, "/trust", nil, api.TrustRequest{PublicKey: pemKey, Comment: comment}, &out)
	return &out, err
}

// Trust lists the trusted publisher keys.
func (c *Client) Trust(ctx context.Context) ([]api.TrustEntry, error) {
	var out []api.TrustEntry
	err := c.do(ctx, http.MethodGet, "/trust", nil, nil, &out)
	return out, err
}

// Doctor asks the daemon about itself.
func (c *Client) Doctor(ctx context.Context) (*api.Doctor, error) {
	var out api.Doctor
	err := c.do(ctx, http.MethodGet, "/doctor", nil, nil, &out)
	return &out, err
}

// Inference returns the inference broker's counters: load, and tokens and
// queues per agent the caller may see.
func (c *Client) Inference(ctx context.Context) (*api.Inference, error) {
	var out api.Inference
	err := c.do(ctx, http.MethodGet, "/inference", nil, nil, &out)
	return &out, err
}

// AuditFollow streams audit rows (existing ones after q.AfterSeq, then new
// ones) to fn until ctx ends or fn returns an error.
func (c *Client) AuditFollow(ctx context.Context, q AuditQuery, fn func(api.Record) error) error {
	v := q.values()
	v.Set("follow", "1")
	resp, err := c.send(ctx, http.MethodGet, "/audit", v, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var r api.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("decode audit row: %w", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}

// AuditProve returns an inclusion proof of audit row seq to the latest
// signed checkpoint; oldSize > 0 adds a consistency proof from the
// checkpoint of that size. Check it offline with internal/checkpoint's
// VerifyInclusion or `coconut audit verify --proof`.
func (c *Client) AuditProve(ctx context.Context, seq, oldSize uint64) (*api.AuditProof, error) {
	var out api.AuditProof
	q := url.Values{"seq": {strconv.FormatUint(seq, 10)}}
	if oldSize > 0 {
		q.Set("old", strconv.FormatUint(oldSize, 10))
	}
	err := c.do(ctx, http.MethodGet, "/audit/proof", q, nil, &out)
	return &out, err
}
