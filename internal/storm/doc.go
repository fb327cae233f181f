// Package storm is the deny storm policy of an agent (issue 19): what
// coconutd does when an agent's denies come faster than a rate —
// throttle it (freeze it for a while, again as long as the storm lasts),
// quarantine it (freeze it until a person releases it), kill it, or
// nothing — and the detector that tells when that rate is passed. It has
// no I/O: internal/agent acts on what the detector says.
package storm
