package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"syscall"

	"github.com/coconut-os/coconut/api"
)

// DefaultSocket is where coconutd listens unless told otherwise.
const DefaultSocket = "/run/coconut/coconut.sock"

// ECAPABILITY is the errno of a capability denial (see api.ECapability for
// why 134).
const ECAPABILITY = api.ECapability

// IsECapability reports whether err is a capability denial: the errno from a
// system call, or the daemon's answer to a call.
func IsECapability(err error) bool {
	var errno syscall.Errno
	if errors.As(err, &errno) && errno == ECAPABILITY {
		return true
	}
	return errors.Is(err, api.ErrECapability)
}

// Client talks to coconutd over its Unix socket.
type Client struct {
	// Socket is the daemon's socket path; empty means $COCONUT_SOCKET, then
	// DefaultSocket.
	Socket string

	once bool
	http *http.Client
}

// New returns a client for the socket at path ("" for the default).
func New(socket string) *Client { return &Client{Socket: socket} }

func (c *Client) socket() string {
	if c.Socket != "" {
		return c.Socket
	}
	if s := os.Getenv("COCONUT_SOCKET"); s != "" {
		return s
	}
	return DefaultSocket
}

func (c *Client) client() *http.Client {
	if !c.once {
		sock := c.socket()
		c.http = &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
		}}
		c.once = true
	}
	return c.http
}

// do sends a request and decodes a JSON answer into out (when non-nil).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	resp, err := c.send(ctx, method, path, query, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s %s answer: %w", method, path, err)
	}
	return nil
}

// send performs the request and turns a non-2xx answer into *api.RemoteError.
// The caller closes the body of a successful answer.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	u := "http://coconutd" + api.Version + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("coconutd at %s: %w", c.socket(), err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	var eb api.ErrorBody
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(raw, &eb) != nil || eb.Error.Message == "" {
		eb.Error.Code = api.CodeInternal
		eb.Error.Message = fmt.Sprintf("coconutd answered %s: %s", resp.Status, bytes.TrimSpace(raw))
	}
	return nil, &api.RemoteError{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message}
}

func aidPath(aid uint64, rest string) string {
	return "/agents/" + strconv.FormatUint(aid, 10) + rest
}
