// Package server is the transport of coconutd's local API: HTTP/1.1 + JSON
// over a Unix socket, under /v1/. It identifies every caller with
// SO_PEERCRED (uid, pid; a pid inside an agent cgroup is that agent) before
// any handler runs, refuses requests a web browser could have sent, bounds
// and strictly decodes bodies, and maps errors to HTTP statuses in one place
// (api.Status). The calls themselves live in the services it wraps.
package server
