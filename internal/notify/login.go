package notify

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/client"
)

// errNoCenter means this daemon serves no Center login links.
var errNoCenter = errors.New("coconutd serves no Coconut Center login links")

// reviewLink asks coconutd over its socket (as this user: SO_PEERCRED) for a
// fresh single-use Center login link that lands on the review page of row
// seq, through libcoconut's CenterLogin (POST /v1/center/login).
func reviewLink(ctx context.Context, socket string, seq uint64) (string, error) {
	next := "/review/" + strconv.FormatUint(seq, 10)
	l, err := client.New(socket).CenterLogin(ctx, next)
	switch {
	case errors.Is(err, api.ErrUnavailable) || errors.Is(err, api.ErrNotFound):
		return "", fmt.Errorf("%w: %v", errNoCenter, err)
	case err != nil:
		return "", fmt.Errorf("center login link: %w", err)
	}
	u, perr := url.Parse(l.URL)
	if perr != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("center login link: %q is not an http URL", l.URL)
	}
	return l.URL, nil
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
