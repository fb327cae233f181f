package center

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Lifetimes and bounds of links and sessions.
const (
	LinkTTL        = 60 * time.Second
	SessionIdle    = 12 * time.Hour // a session unused this long ends
	maxLinks       = 64             // outstanding links per uid
	maxSessions    = 32             // live sessions per uid: the oldest goes first
	cookieName     = "coconut_center"
	secretBytes    = 32
	usedRemembered = 2 * LinkTTL // how long a redeemed link is told apart from a forged one
)

// Why a link or a cookie is refused. Each is a 401 with its own message.
var (
	ErrLinkUnknown   = errors.New("this login link is not one this Center issued")
	ErrLinkExpired   = errors.New("this login link has expired (links last 60 seconds): run `coconut center` again")
	ErrLinkUsed      = errors.New("this login link was already used: each link logs in once; run `coconut center` again")
	ErrNoSession     = errors.New("not logged in: run `coconut center` for a login link")
	ErrNoSessionPath = errors.New("not logged in here: the Center's pages live under the path a login link sends you to; run `coconut center` for a login link")
	ErrBadSession    = errors.New("this session cookie is not valid here (logged out, expired, or another uid's)")
	ErrTooManyLinks  = errors.New("too many login links outstanding for this uid: use one or wait a minute")
	ErrLinkMalformed = errors.New("login link: token is malformed")
)

// link is an issued, not yet redeemed login link.
type link struct {
	uid     uint32
	next    string
	expires time.Time
}

// session is one logged-in browser.
type session struct {
	uid  uint32
	csrf string
	// path is the session's own URL prefix, /s/PATH/: its cookie is
	// scoped to it, and every page and call of the session lives under
	// it. Browsers send a cookie to every port of a host, so a server on
	// another loopback port would receive a cookie scoped to "/"; it never
	// learns this path (pages send no Referer), so the cookie it could be
	// handed is never sent to it, and the cookie alone, replayed from
	// outside a browser, opens nothing.
	path     string
	created  time.Time
	lastSeen time.Time
}

// auth holds the links and sessions, keyed by the SHA-256 of their
// secrets so that neither a map lookup nor a heap dump gives one away.
type auth struct {
	mu       sync.Mutex
	now      func() time.Time
	links    map[[32]byte]link
	used     map[[32]byte]time.Time // redeemed links, until usedRemembered
	sessions map[[32]byte]*session
}

func newAuth() *auth {
	return &auth{now: time.Now, links: map[[32]byte]link{}, used: map[[32]byte]time.Time{}, sessions: map[[32]byte]*session{}}
}

func secret() string {
	b := make([]byte, secretBytes)
	rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

func key(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// validSecret is the shape secret() makes; anything else is refused
// before it is looked up.
func validSecret(s string) bool {
	if len(s) != base64.RawURLEncoding.EncodedLen(secretBytes) {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil
}

// gc drops what has expired. The caller holds a.mu.
func (a *auth) gc(now time.Time) {
	for k, l := range a.links {
		if now.After(l.expires.Add(usedRemembered)) {
			delete(a.links, k)
		}
	}
	for k, t := range a.used {
		if now.After(t.Add(usedRemembered)) {
			delete(a.used, k)
		}
	}
	for k, s := range a.sessions {
		if now.Sub(s.lastSeen) > SessionIdle {
			delete(a.sessions, k)
		}
	}
}

// issue makes a login link token for uid, landing on next (already
// checked by cleanNext).
func (a *auth) issue(uid uint32, next string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	a.gc(now)
	n := 0
	for _, l := range a.links {
		if l.uid == uid && now.Before(l.expires) {
			n++
		}
	}
	if n >= maxLinks {
		return "", ErrTooManyLinks
	}
	tok := secret()
	a.links[key(tok)] = link{uid: uid, next: next, expires: now.Add(LinkTTL)}
	return tok, nil
}

// redeem spends a link token once and opens a session for its uid. It
// returns the session cookie value, the session's path secret and where
// to go.
func (a *auth) redeem(tok string) (cookie, path, next string, err error) {
	if !validSecret(tok) {
		return "", "", "", ErrLinkMalformed
	}
	k := key(tok)
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	l, ok := a.links[k]
	switch {
	case !ok && !a.used[k].IsZero():
		return "", "", "", ErrLinkUsed
	case !ok:
		return "", "", "", ErrLinkUnknown
	}
	if now.After(l.expires) {
		return "", "", "", ErrLinkExpired // kept until gc, so a retry says the same
	}
	delete(a.links, k)
	a.used[k] = now
	a.gc(now)
	a.trim(l.uid)
	sid, path := secret(), secret()
	a.sessions[key(sid)] = &session{uid: l.uid, csrf: secret(), path: path, created: now, lastSeen: now}
	return strconv.FormatUint(uint64(l.uid), 10) + "." + sid, path, l.next, nil
}

// trim keeps uid under maxSessions by ending its oldest. The caller
// holds a.mu.
func (a *auth) trim(uid uint32) {
	for {
		var oldest [32]byte
		var t time.Time
		n := 0
		for k, s := range a.sessions {
			if s.uid != uid {
				continue
			}
			n++
			if t.IsZero() || s.created.Before(t) {
				oldest, t = k, s.created
			}
		}
		if n < maxSessions {
			return
		}
		delete(a.sessions, oldest)
	}
}

// parseCookie splits "UID.SECRET".
func parseCookie(v string) (uint32, string, bool) {
	u, sid, ok := strings.Cut(v, ".")
	if !ok || !validSecret(sid) || u == "" || len(u) > 10 || (len(u) > 1 && u[0] == '0') {
		return 0, "", false
	}
	uid, err := strconv.ParseUint(u, 10, 32)
	if err != nil {
		return 0, "", false
	}
	return uint32(uid), sid, true
}

// lookup returns the session of a cookie value presented under the path
// prefix /s/path/. The uid written in the cookie must be the session's
// (a cookie edited to claim another uid, or one from another Center, is
// refused), and so must the path: a cookie without its session's path
// is worth nothing.
func (a *auth) lookup(v, path string) (session, error) {
	uid, sid, ok := parseCookie(v)
	if !ok || !validSecret(path) {
		return session{}, ErrBadSession
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s, found := a.sessions[key(sid)]
	now := a.now()
	if !found || s.uid != uid || now.Sub(s.lastSeen) > SessionIdle ||
		subtle.ConstantTimeCompare([]byte(path), []byte(s.path)) != 1 {
		return session{}, ErrBadSession
	}
	s.lastSeen = now
	return *s, nil
}

// logout ends the session of a cookie value.
func (a *auth) logout(v string) {
	if _, sid, ok := parseCookie(v); ok {
		a.mu.Lock()
		delete(a.sessions, key(sid))
		a.mu.Unlock()
	}
}

// csrfOK compares a presented CSRF token with the session's in constant time.
func (s session) csrfOK(tok string) bool {
	return tok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.csrf)) == 1
}
