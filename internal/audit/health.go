package audit

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// ErrLowSpace means the chain's filesystem has less free space than the
// reserve set with SetReserve: appends still work (the reserve is kept for
// the deny, storm and state rows), but an operation that would go on
// record only as a count in a later row must not proceed on it.
var ErrLowSpace = errors.New("audit chain's filesystem below its reserve")

// spaceEvery bounds how often Err reads the filesystem's free space: Err
// is asked once per counted use, thousands of times a second.
const spaceEvery = 100 * time.Millisecond

// health is the chain's reserve and its last free-space reading.
type health struct {
	reserve atomic.Int64
	checked atomic.Int64 // unix nanoseconds of the last reading
	low     atomic.Pointer[error]
}

// SetReserve sets the free bytes Err wants on the chain's filesystem (0:
// none).
func (c *Chain) SetReserve(bytes int64) {
	c.health.reserve.Store(bytes)
	c.health.checked.Store(0)
}

// Err says whether a row appended now can be expected to be durable: nil,
// or ErrClosed, the error that broke the chain (ErrBroken: a write or
// fsync failed; every later append fails too), or ErrLowSpace below the
// reserve (or when free space cannot be read: fail closed). It writes
// nothing; callers that count events into a later row instead of writing
// one each ask it before they let an event pass (issue 19).
func (c *Chain) Err() error {
	c.closeMu.RLock()
	closed := c.closed
	c.closeMu.RUnlock()
	if closed {
		return ErrClosed
	}
	if err := c.brokenErr(); err != nil {
		return err
	}
	return c.spaceErr(time.Now())
}

func (c *Chain) spaceErr(now time.Time) error {
	h := &c.health
	r := h.reserve.Load()
	if r <= 0 {
		return nil
	}
	if last := h.checked.Load(); last != 0 && now.UnixNano()-last < int64(spaceEvery) {
		if p := h.low.Load(); p != nil {
			return *p
		}
		return nil
	}
	var err error
	var s unix.Statfs_t
	if serr := unix.Statfs(c.dir, &s); serr != nil {
		err = fmt.Errorf("%w: free space of %s unreadable: %v", ErrLowSpace, c.dir, serr)
	} else if free := int64(s.Bfree) * s.Bsize; free < r {
		err = fmt.Errorf("%w: %d bytes free on %s, reserve %d", ErrLowSpace, free, c.dir, r)
	}
	if err != nil {
		h.low.Store(&err)
	} else {
		h.low.Store(nil)
	}
	h.checked.Store(now.UnixNano())
	return err
}
