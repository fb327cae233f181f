// Package center is Coconut Center, the web UI coconutd serves on a
// loopback address: the agents live, one agent's manifest, bundle,
// attestation and quota, the audit feed, the review page of one row with
// its inclusion proof, and plots.
//
// Nobody reaches it without a login link: `coconut center` asks the daemon
// over the Unix socket (SO_PEERCRED says which uid) for a single-use link
// that expires in a minute; redeeming it sets an HttpOnly, SameSite=Strict
// session cookie for that uid, scoped to the session's own secret path
// /s/PATH/ under which all of that session's pages live (browsers do not
// scope cookies by port: a cookie for "/" would reach a server on any
// other loopback port). From then on the Center acts as that uid
// through the very services the Unix API calls (agent.Manager for who may
// see and do what, events.Service for the live rows, audit.Query for the
// row filter): it decides nothing of its own. Every action is a POST with
// the session's CSRF token and a same-origin Origin header, and every
// request must name the Center's own address in its Host header, so that a
// web page elsewhere cannot drive it (DNS rebinding, cross-site requests).
//
// Pages are html/template, so every string that came from the chain (an
// agent can name a file anything) is escaped; the page's own script builds
// the live parts with textContent only, and a Content-Security-Policy
// allows only the embedded script. All assets are embedded: no CDN, no
// external fonts.
package center
