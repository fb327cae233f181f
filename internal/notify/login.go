package notify

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
	"os/exec"
	"strconv"
	"strings"

	"github.com/coconut-os/coconut/api"
)

// errNoCenter means this daemon serves no Center login links.
var errNoCenter = errors.New("coconutd serves no Coconut Center login links")

// reviewLink asks coconutd over its socket (as this user: SO_PEERCRED) for a
// fresh single-use Center login link that lands on the review page of row
// seq: POST /v1/center/login {"next": "/review/SEQ"} answers {"url": ...}.
func reviewLink(ctx context.Context, socket string, seq uint64) (string, error) {
	next := "/review/" + strconv.FormatUint(seq, 10)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	defer hc.CloseIdleConnections()
	body, _ := json.Marshal(map[string]string{"next": next})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://coconutd"+api.Version+"/center/login", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("coconutd at %s: %w", socket, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusNotImplemented || resp.StatusCode == http.StatusServiceUnavailable:
		return "", fmt.Errorf("%w (%s: %s)", errNoCenter, resp.Status, message(raw))
	case resp.StatusCode/100 != 2:
		return "", fmt.Errorf("center login link: %s: %s", resp.Status, message(raw))
	}
	var out struct {
		URL string `json:"url"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.URL == "" {
		return "", fmt.Errorf("center login link: answer %q has no url", clip(raw))
	}
	u, err := url.Parse(out.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("center login link: %q is not an http URL", out.URL)
	}
	return out.URL, nil
}

func message(raw []byte) string {
	var eb api.ErrorBody
	if json.Unmarshal(raw, &eb) == nil && eb.Error.Message != "" {
		return eb.Error.Message
	}
	return clip(raw)
}

func clip(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// openURL opens u in the user's browser: $BROWSER when set (a
// colon-separated list, the first entry used; "%s" in it is replaced by
// the URL, otherwise the URL is its last argument), else xdg-open. It does
// not wait for the browser.
func openURL(u string) error {
	argv := []string{"xdg-open", u}
	if b := strings.TrimSpace(os.Getenv("BROWSER")); b != "" {
		first, _, _ := strings.Cut(b, ":")
		argv = strings.Fields(first)
		if len(argv) == 0 {
			return fmt.Errorf("$BROWSER %q names no program", b)
		}
		replaced := false
		for i, a := range argv {
			if strings.Contains(a, "%s") {
				argv[i], replaced = strings.ReplaceAll(a, "%s", u), true
			}
		}
		if !replaced {
			argv = append(argv, u)
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, nil, os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("open %s: %w", argv[0], err)
	}
	go cmd.Wait()
	return nil
}
