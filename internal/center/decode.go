package center

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/coconut-os/coconut/api"
)

// Bounds on what a request may carry.
const (
	maxQueryBytes  = 4096     // a URL's query string
	maxBodyBytes   = 64 << 10 // an action's JSON body
	maxActionCaps  = 64
	maxCapLen      = 4096
	defaultPage    = 100
	maxPage        = 500
	maxHeaderBytes = 32 << 10 // net/http answers 431 past this
)

// httpError is a refusal with its status; the message is shown to the
// user and never contains data they may not see.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) error {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

// statusOf is the HTTP status of err: its own for an httpError, the Unix
// API's (api.Status) for the services' errors.
func statusOf(err error) int {
	var he *httpError
	if errors.As(err, &he) {
		return he.status
	}
	st, _ := api.Status(err)
	return st
}

// parseNum parses a positive decimal number: what AIDs and SEQs are.
func parseNum(what, s string) (uint64, error) {
	if s == "" || len(s) > 20 || (len(s) > 1 && s[0] == '0') {
		return 0, errorf(http.StatusBadRequest, "%s %q: must be a positive number", what, clip(s))
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, errorf(http.StatusBadRequest, "%s %q: must be a positive number", what, clip(s))
	}
	return n, nil
}

// clip shortens what is echoed back in an error.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// nextPath matches the pages a login link may land on.
var nextPath = regexp.MustCompile(`^/(|agents/[1-9][0-9]{0,19}|audit|plots|review/[1-9][0-9]{0,19})$`)

// cleanNext checks where a login link may send the browser: one of the
// Center's own pages, never another site ("//evil", "/\\evil", a scheme).
func cleanNext(next string) (string, error) {
	if next == "" {
		return "/", nil
	}
	if !nextPath.MatchString(next) {
		return "", errorf(http.StatusBadRequest, "next %q: must be one of the Center's pages (/, /agents/AID, /audit, /plots, /review/SEQ)", clip(next))
	}
	return next, nil
}

// typePattern is what a row type filter may look like.
var typePattern = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,63}\*?$`)

// feedQuery is the audit feed's (and the live stream's) filter and page.
type feedQuery struct {
	AID    *uint64
	Type   string
	Result string
	Before uint64 // a page of rows older than this seq (0: the newest)
	Since  uint64 // the stream: rows after this seq
	Limit  int
}

// parseFeed reads the feed's query string. Unknown parameters are errors,
// so a typo does not silently show everything.
func parseFeed(raw string) (feedQuery, error) {
	var q feedQuery
	if len(raw) > maxQueryBytes {
		return q, errorf(http.StatusRequestURITooLong, "query string is %d bytes; at most %d", len(raw), maxQueryBytes)
	}
	v, err := url.ParseQuery(raw)
	if err != nil {
		return q, errorf(http.StatusBadRequest, "query string: %v", err)
	}
	for k, vs := range v {
		if len(vs) != 1 {
			return q, errorf(http.StatusBadRequest, "parameter %q given %d times", clip(k), len(vs))
		}
		val := vs[0]
		switch k {
		case "aid":
			if val == "" {
				continue
			}
			if val == "0" {
				zero := uint64(0)
				q.AID = &zero
				continue
			}
			n, err := parseNum("aid", val)
			if err != nil {
				return q, err
			}
			q.AID = &n
		case "type":
			if val != "" && !typePattern.MatchString(val) {
				return q, errorf(http.StatusBadRequest, "type %q: a row type like cap.deny, or a prefix like agent.*", clip(val))
			}
			q.Type = val
		case "result":
			if val != "" && val != "allow" && val != "deny" {
				return q, errorf(http.StatusBadRequest, "result %q: must be allow or deny", clip(val))
			}
			q.Result = val
		case "before", "since":
			if val == "" {
				continue
			}
			n, err := parseNum(k, val)
			if err != nil {
				return q, err
			}
			if k == "before" {
				q.Before = n
			} else {
				q.Since = n
			}
		case "limit":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > maxPage {
				return q, errorf(http.StatusBadRequest, "limit %q: must be 1..%d", clip(val), maxPage)
			}
			q.Limit = n
		default:
			return q, errorf(http.StatusBadRequest, "unknown parameter %q", clip(k))
		}
	}
	if q.Limit == 0 {
		q.Limit = defaultPage
	}
	return q, nil
}

// Actions the Center's POSTs name.
var actions = map[string]bool{"quarantine": true, "release": true, "kill": true, "grant": true, "revoke": true}

// actionBody is grant's and revoke's JSON body.
type actionBody struct {
	Caps []string `json:"caps"`
}

// parseAction checks an action's name and decodes its body strictly:
// grant and revoke take {"caps": [...]}, the others an empty body or {}.
func parseAction(name string, body io.Reader) ([]string, error) {
	if !actions[name] {
		return nil, errorf(http.StatusNotFound, "no action %q (quarantine, release, kill, grant, revoke)", clip(name))
	}
	b, err := io.ReadAll(io.LimitReader(body, maxBodyBytes+1))
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "request body: %v", err)
	}
	if len(b) > maxBodyBytes {
		return nil, errorf(http.StatusRequestEntityTooLarge, "request body is over %d bytes", maxBodyBytes)
	}
	b = bytes.TrimSpace(b)
	var req actionBody
	if len(b) > 0 {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return nil, errorf(http.StatusBadRequest, "request body: %v", err)
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return nil, errorf(http.StatusBadRequest, "request body: trailing data after the JSON value")
		}
	}
	needCaps := name == "grant" || name == "revoke"
	switch {
	case needCaps && len(req.Caps) == 0:
		return nil, errorf(http.StatusBadRequest, "%s: name at least one capability", name)
	case !needCaps && len(req.Caps) > 0:
		return nil, errorf(http.StatusBadRequest, "%s takes no capabilities", name)
	case len(req.Caps) > maxActionCaps:
		return nil, errorf(http.StatusBadRequest, "%s: at most %d capabilities at once", name, maxActionCaps)
	}
	for _, c := range req.Caps {
		if c == "" || len(c) > maxCapLen || strings.ContainsAny(c, "\x00\n") {
			return nil, errorf(http.StatusBadRequest, "%s: capability %q is malformed", name, clip(c))
		}
	}
	return req.Caps, nil
}
