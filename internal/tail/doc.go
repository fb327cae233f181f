// Package tail is `coconut audit tail` and the coconut-tail binary: the
// latest audit rows, then (with -f) every row as the daemon's event stream
// delivers it, in coconut-tail's view (a header, each agent's birth rows,
// denies in red) or as JSON lines. It also holds the row printer and the
// filters `audit query` shares. It depends on the client only, so that
// coconut-tail links neither the rest of the command line nor the daemon.
package tail
