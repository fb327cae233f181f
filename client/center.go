package client

import (
	"context"
	"net/http"

	"github.com/coconut-os/coconut/api"
)

// CenterLogin asks coconutd for a single-use login link to the Center for
// the calling uid (the daemon reads it from the socket, SO_PEERCRED),
// landing on next ("/review/SEQ"; "" for the agents). The link works once,
// for 60 seconds.
func (c *Client) CenterLogin(ctx context.Context, next string) (*api.CenterLogin, error) {
	var out api.CenterLogin
	if err := c.do(ctx, http.MethodPost, "/center/login", nil, api.CenterLoginRequest{Next: next}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
