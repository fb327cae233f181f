package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/coconut-os/coconut/api"
)

// AgentSpawn creates the agents of a signed manifest.
func (c *Client) AgentSpawn(ctx context.Context, req api.SpawnRequest) ([]api.Agent, error) {
	var out api.SpawnResponse
	err := c.do(ctx, http.MethodPost, "/agents", nil, req, &out)
	return out.Agents, err
}

// AgentAttest returns the agent's attestation envelope.
func (c *Client) AgentAttest(ctx context.Context, aid uint64) (*api.Attestation, error) {
	var out api.Attestation
	err := c.do(ctx, http.MethodGet, aidPath(aid, "/attestation"), nil, nil, &out)
	return &out, err
}

// AgentQuota reads the agent's budget and usage; with set non-nil it changes
// the budget first.
func (c *Client) AgentQuota(ctx context.Context, aid uint64, set *api.QuotaBudget) (*api.Quota, error) {
	var out api.Quota
	var err error
	if set != nil {
		err = c.do(ctx, http.MethodPut, aidPath(aid, "/quota"), nil, set, &out)
	} else {
		err = c.do(ctx, http.MethodGet, aidPath(aid, "/quota"), nil, nil, &out)
	}
	return &out, err
}

// AgentCapGrant grants capabilities, all or nothing.
func (c *Client) AgentCapGrant(ctx context.Context, aid uint64, caps []string) ([]string, error) {
	var out []string
	err := c.do(ctx, http.MethodPost, aidPath(aid, "/caps/grant"), nil, api.CapsRequest{Caps: caps}, &out)
	return out, err
}

// AgentCapRevoke revokes capabilities; effective before it returns.
func (c *Client) AgentCapRevoke(ctx context.Context, aid uint64, caps []string) ([]string, error) {
	var out []string
	err := c.do(ctx, http.MethodPost, aidPath(aid, "/caps/revoke"), nil, api.CapsRequest{Caps: caps}, &out)
	return out, err
}

// AgentCapPresent presents a capability for an operation the kernel does not
// see. A denial is an error that IsECapability recognises.
func (c *Client) AgentCapPresent(ctx context.Context, aid uint64, cap, object string) error {
	return c.do(ctx, http.MethodPost, aidPath(aid, "/caps/present"), nil, api.PresentRequest{Cap: cap, Object: object}, nil)
}

// AuditQuery filters agent_audit_query.
type AuditQuery struct {
	AID      *uint64
	Since    string // RFC 3339
	Until    string
	Type     string
	Cap      string
	Result   string
	AfterSeq uint64
	Limit    int
}

func (q AuditQuery) values() url.Values {
	v := url.Values{}
	if q.AID != nil {
		v.Set("aid", strconv.FormatUint(*q.AID, 10))
	}
	for k, s := range map[string]string{"since": q.Since, "until": q.Until, "type": q.Type, "cap": q.Cap, "result": q.Result} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.AfterSeq > 0 {
		v.Set("after", strconv.FormatUint(q.AfterSeq, 10))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// AgentAuditQuery returns one page of audit rows.
func (c *Client) AgentAuditQuery(ctx context.Context, q AuditQuery) (*api.AuditPage, error) {
	var out api.AuditPage
	err := c.do(ctx, http.MethodGet, "/audit", q.values(), nil, &out)
	return &out, err
}

// AgentMemoryTier allocates from (alloc > 0) or reads a tiered memory budget.
func (c *Client) AgentMemoryTier(ctx context.Context, aid uint64, tier string, alloc int64) (map[string]any, error) {
	var out map[string]any
	err := c.do(ctx, http.MethodPost, aidPath(aid, "/memory"), nil, api.MemoryRequest{Tier: tier, Alloc: alloc}, &out)
	return out, err
}
