package center

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestLoginLinks(t *testing.T) {
	a := newAuth()
	now := time.Unix(1_000_000, 0)
	a.now = func() time.Time { return now }

	tok, err := a.issue(1000, "/review/7")
	if err != nil {
		t.Fatal(err)
	}
	cookie, path, next, err := a.redeem(tok)
	if err != nil || next != "/review/7" || !strings.HasPrefix(cookie, "1000.") || !validSecret(path) || strings.Contains(cookie, path) {
		t.Fatalf("redeem: %q %q %q %v", cookie, path, next, err)
	}
	if _, _, _, err := a.redeem(tok); !errors.Is(err, ErrLinkUsed) {
		t.Errorf("reused link: %v", err)
	}
	if _, _, _, err := a.redeem(secret()); !errors.Is(err, ErrLinkUnknown) {
		t.Errorf("forged link: %v", err)
	}
	for _, bad := range []string{"", "x", strings.Repeat("A", 44), tok + "A", "../../etc/passwd"} {
		if _, _, _, err := a.redeem(bad); !errors.Is(err, ErrLinkMalformed) {
			t.Errorf("malformed %q: %v", bad, err)
		}
	}
	old, _ := a.issue(1000, "/")
	now = now.Add(LinkTTL + time.Second)
	for range 2 { // the refusal is the same when tried again
		if _, _, _, err := a.redeem(old); !errors.Is(err, ErrLinkExpired) {
			t.Errorf("expired link: %v", err)
		}
	}

	s, err := a.lookup(cookie, path)
	if err != nil || s.uid != 1000 || !s.csrfOK(s.csrf) || s.csrfOK("") || s.csrfOK(s.csrf+"x") {
		t.Fatalf("session: %+v %v", s, err)
	}
	// The same secret claiming another uid is refused, as are shapes
	// that are not cookies.
	_, sid, _ := strings.Cut(cookie, ".")
	for _, bad := range []string{"0." + sid, "1001." + sid, "01000." + sid, sid, "1000.", "1000." + secret(), ""} {
		if _, err := a.lookup(bad, path); !errors.Is(err, ErrBadSession) {
			t.Errorf("cookie %q: %v", bad, err)
		}
	}
	// The cookie is worth nothing without its session's path: not at
	// another session's, a forged one, or none.
	tok2, _ := a.issue(1000, "/")
	_, path2, _, _ := a.redeem(tok2)
	for _, bad := range []string{path2, secret(), "", "x", path + "x"} {
		if _, err := a.lookup(cookie, bad); !errors.Is(err, ErrBadSession) {
			t.Errorf("cookie at path %q: %v", bad, err)
		}
	}
	now = now.Add(SessionIdle + time.Second)
	if _, err := a.lookup(cookie, path); !errors.Is(err, ErrBadSession) {
		t.Errorf("idle session: %v", err)
	}
}

func TestLoginBounds(t *testing.T) {
	a := newAuth()
	for i := range maxLinks {
		if _, err := a.issue(5, "/"); err != nil {
			t.Fatalf("link %d: %v", i, err)
		}
	}
	if _, err := a.issue(5, "/"); !errors.Is(err, ErrTooManyLinks) {
		t.Fatalf("link past the bound: %v", err)
	}
	if _, err := a.issue(6, "/"); err != nil {
		t.Fatalf("another uid is not bounded by the first: %v", err)
	}
	b := newAuth()
	var first, firstPath string
	for i := range maxSessions + 3 {
		tok, _ := b.issue(7, "/")
		c, p, _, err := b.redeem(tok)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first, firstPath = c, p
		}
	}
	n := 0
	for _, s := range b.sessions {
		if s.uid == 7 {
			n++
		}
	}
	if n != maxSessions {
		t.Errorf("%d sessions kept, want %d", n, maxSessions)
	}
	if _, err := b.lookup(first, firstPath); err == nil {
		t.Error("the oldest session outlived the bound")
	}
}
