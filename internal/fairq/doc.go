// Package fairq serves work fairly per key (an agent's AID, a caller's
// uid): a Gate admits at most a fixed number of holders at once, and of
// them at most a fixed number of one key's, and, when it is full, hands
// each freed turn to the waiting keys in round robin —
// deficit round robin with unit costs — so a key that floods waits behind
// its own requests, and another key's request waits for at most one turn
// of each other waiting key, however much the flooder asks.
//
// Memory is bounded per key: a key may have a fixed number of requests
// waiting; past it Enter fails at once with ErrBusy (the caller decides
// whether that is a refusal or a retry), so a flooder cannot grow the
// queue without bound, and a key with nothing waiting or held holds no
// memory at all.
package fairq
