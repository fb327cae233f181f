package inferkey

import (
	"sync"
	"time"
)

// SaveEvery bounds how often token usage alone rewrites an agent's
// record. An unsaved count is written by a timer within this time, or
// earlier by any other save (a transition, the agent's end, a flush at
// shutdown), so a daemon crash loses at most this much of the count; the
// audit chain still holds every call.
const SaveEvery = time.Second

// Keys indexes the running agents' broker keys by hash, and paces the
// saves of their token counts. The zero value is ready to use.
type Keys struct {
	mu    sync.Mutex
	keys  map[string]uint64 // key hash → AID, running agents only
	saved map[uint64]time.Time
	dirty map[uint64]bool
	onEnd func(aid uint64)
}

// Index makes the key with this hash valid for agent aid (at spawn, and
// for adopted agents, whose environment still holds the key they were
// given). An empty hash (no broker) does nothing.
func (k *Keys) Index(hash string, aid uint64) {
	if hash == "" {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys == nil {
		k.keys = map[string]uint64{}
	}
	k.keys[hash] = aid
}

// Ended forgets an ended agent: its key stops working, its pending save
// is dropped (the end wrote the record), and the function set by OnEnd is
// told.
func (k *Keys) Ended(hash string, aid uint64) {
	k.mu.Lock()
	if hash != "" {
		delete(k.keys, hash)
	}
	delete(k.saved, aid)
	delete(k.dirty, aid)
	f := k.onEnd
	k.mu.Unlock()
	if f != nil {
		f(aid)
	}
}

// OnEnd sets what runs when an agent ends (the broker forgets it).
func (k *Keys) OnEnd(f func(aid uint64)) {
	k.mu.Lock()
	k.onEnd = f
	k.mu.Unlock()
}

// AID returns the running agent whose key hashes to hash.
func (k *Keys) AID(hash string) (uint64, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	aid, ok := k.keys[hash]
	return aid, ok
}

// Spent is called after agent aid's count grew. It reports whether the
// count is due to be saved now; if not, the count is marked unsaved and,
// unless a save is already scheduled, flush(aid) runs within SaveEvery,
// so an agent's last call is saved without any other save or a shutdown.
func (k *Keys) Spent(aid uint64, now time.Time, flush func(aid uint64)) (due bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.saved == nil {
		k.saved, k.dirty = map[uint64]time.Time{}, map[uint64]bool{}
	}
	if now.Sub(k.saved[aid]) >= SaveEvery {
		k.saved[aid] = now
		delete(k.dirty, aid)
		return true
	}
	if !k.dirty[aid] {
		k.dirty[aid] = true
		time.AfterFunc(SaveEvery, func() { flush(aid) })
	}
	return false
}

// TakeDirty reports whether agent aid's count is still unsaved, and if so
// counts it as saved now: the caller writes it.
func (k *Keys) TakeDirty(aid uint64) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.dirty[aid] {
		return false
	}
	delete(k.dirty, aid)
	k.saved[aid] = time.Now()
	return true
}

// TakeAllDirty returns every agent whose count is unsaved and clears the
// marks: the caller writes them (at shutdown).
func (k *Keys) TakeAllDirty() []uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	aids := make([]uint64, 0, len(k.dirty))
	for aid := range k.dirty {
		aids = append(aids, aid)
	}
	clear(k.dirty)
	return aids
}
