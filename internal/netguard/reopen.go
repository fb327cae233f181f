package netguard

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// adoptState reads what a previous guard left in the pinned maps: every
// binding (so Unbind and rebinding work) and every policy's trie keys (so
// they can be deleted once unused). Bindings of cgroups that no longer
// exist below root are dropped now: a later cgroup reusing the inode
// number must not inherit them.
func (g *Guard) adoptState(root string) error {
	live, err := cgroupIDs(root)
	if err != nil {
		return err
	}
	var cg uint64
	var pol uint32
	it := g.objs.Agents.Iterate()
	for it.Next(&cg, &pol) {
		g.bound[cg] = pol
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("%w: read pinned bindings: %w", ErrPin, err)
	}
	var key netguardLpmKey
	var val netguardPortRanges
	rit := g.objs.Rules.Iterate()
	for rit.Next(&key, &val) {
		g.stale[key.Policy] = append(g.stale[key.Policy], key)
	}
	if err := rit.Err(); err != nil {
		return fmt.Errorf("%w: read pinned rules: %w", ErrPin, err)
	}
	var ukey netguardUnixKey
	var one uint8
	uit := g.objs.UnixRules.Iterate()
	for uit.Next(&ukey, &one) {
		g.staleUnix[ukey.Policy] = append(g.staleUnix[ukey.Policy], ukey)
		if _, ok := g.stale[ukey.Policy]; !ok {
			g.stale[ukey.Policy] = nil // a policy with Unix sockets only
		}
	}
	if err := uit.Err(); err != nil {
		return fmt.Errorf("%w: read pinned unix rules: %w", ErrPin, err)
	}
	var flags uint32
	fit := g.objs.PolicyFlags.Iterate()
	for fit.Next(&pol, &flags) {
		if _, ok := g.stale[pol]; !ok {
			g.stale[pol] = nil // a policy with flags and no rules
		}
	}
	if err := fit.Err(); err != nil {
		return fmt.Errorf("%w: read pinned policy flags: %w", ErrPin, err)
	}
	for _, pol := range g.bound {
		if _, ok := g.stale[pol]; !ok {
			g.stale[pol] = nil // a policy that allows nothing
		}
	}
	for cg := range g.bound {
		if live[cg] {
			continue
		}
		if err := g.objs.Agents.Delete(&cg); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("%w: drop binding of removed cgroup %d: %w", ErrMapUpdate, cg, err)
		}
		delete(g.bound, cg)
	}
	for id := range g.stale {
		if err := g.dropStale(id); err != nil {
			return err
		}
	}
	return nil
}

// cgroupIDs lists the ids of the cgroups below root (root included).
func cgroupIDs(root string) (map[uint64]bool, error) {
	out := map[uint64]bool{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return err
			}
			return nil // a cgroup removed while walking
		}
		if !d.IsDir() {
			return nil
		}
		var st unix.Stat_t
		if unix.Stat(p, &st) == nil {
			out[st.Ino] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: list cgroups below %s: %w", ErrPin, root, err)
	}
	return out, nil
}

// dropStale deletes a previous daemon's policy once no cgroup is bound to
// it. The caller holds g.mu (or is loading).
func (g *Guard) dropStale(id uint32) error {
	keys, ok := g.stale[id]
	if !ok {
		return nil
	}
	for _, p := range g.bound {
		if p == id {
			return nil
		}
	}
	for i := range keys {
		if err := g.objs.Rules.Delete(&keys[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("policy %d: %w: delete previous daemon's rule: %w", id, ErrMapUpdate, err)
		}
	}
	ukeys := g.staleUnix[id]
	for i := range ukeys {
		if err := g.objs.UnixRules.Delete(&ukeys[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("policy %d: %w: delete previous daemon's unix rule: %w", id, ErrMapUpdate, err)
		}
	}
	delete(g.staleUnix, id)
	if err := g.objs.PolicyFlags.Delete(&id); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("policy %d: %w: delete previous daemon's flags: %w", id, ErrMapUpdate, err)
	}
	delete(g.stale, id)
	return nil
}

// MaxPolicyID returns the highest policy id a previous daemon left in
// force (0 after a fresh load). New policies must use higher ids: their
// entries would otherwise mix with the old ones.
func (g *Guard) MaxPolicyID() uint32 {
	g.mu.Lock()
	defer g.mu.Unlock()
	var m uint32
	for id := range g.stale {
		m = max(m, id)
	}
	for _, id := range g.bound {
		m = max(m, id)
	}
	return m
}

// Pinned reports whether the guard's programs stay attached when this
// process ends.
func (g *Guard) Pinned() bool { return g.pinned }

// findBase sets the counters' base after a reopen: the denies the previous
// daemon already read from the ring are its own, so the base is the
// sequence number before the first deny still pending (or the deny count
// when none is). Allowed-use records of audited policies (numbered by
// use_seq, a sequence of their own) can come before that deny, so it
// reads, without waiting, up to the first deny and keeps every record read
// in g.pending, which the reader delivers first, in order.
func (g *Guard) findBase() {
	var d0, f0 uint64
	g.objs.DenySeq.Get(&d0)
	g.objs.RingbufFull.Get(&f0)
	g.baseSeq, g.baseFull = d0, f0
	// A deny written after d0 was read is numbered above d0 and changes
	// nothing, so reading can stop once the bytes pending now are read:
	// an agent that keeps connecting cannot keep the reopen reading.
	avail := g.rd.unread()
	g.replayEnd = g.rd.pos + uintptr(avail)
	for done := 0; done < avail; {
		sample, end, err := g.rd.next(true)
		if err != nil || sample == nil {
			return // nothing pending or unreadable: the reader reports it
		}
		done += ringRecordBytes(len(sample))
		ev, err := decodeEvent(sample)
		if err != nil {
			g.malformed.Add(1)
			g.rd.ack(end)
			continue
		}
		ev.end, ev.Replayed = end, true
		g.pending = append(g.pending, ev)
		if !ev.Allowed {
			g.baseSeq = min(d0, ev.Seq-1)
			return
		}
	}
}

// ringRecordBytes is the room a sample of n bytes takes in the ring: the
// kernel's 8-byte record header and the sample rounded up to 8 bytes.
func ringRecordBytes(n int) int { return 8 + (n+7)&^7 }
