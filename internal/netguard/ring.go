package netguard

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ring reads the events ring buffer with the read position and the
// consumer position apart: a record is read (read) long before its audit
// row is durable, and the kernel-visible consumer position moves past it
// only when it is acknowledged (ack). So a daemon killed between reading
// a deny and appending its row leaves it in the ring for the next one
// (issue 20: one such deny in a handful of kill -9 cycles had no row, and
// the counters could not tell, the next daemon's base being past it).
// cilium/ebpf's ringbuf.Reader stores the consumer position as it reads,
// hence this reader; its layout and barriers follow that one (and
// kernel/bpf/ringbuf.c).
type ring struct {
	consPage, prodPage []byte   // the mmaps: consumer page (RW); producer page and data twice (RO)
	consPos, prodPos   *uintptr // into them; atomic
	data               []byte
	mask               uintptr

	pos  uintptr // next record to read; only the reading goroutine
	epfd int
	wake int // eventfd: close, or an ack while the reader waits for one

	mu      sync.Mutex
	pending []ringSlot // read, in ring order; from head on, not yet committed
	head    int
	closed  atomic.Bool
}

type ringSlot struct {
	end  uintptr
	done bool
}

// Kernel ring buffer record header bits (struct bpf_ringbuf_hdr).
const (
	ringBusyBit    = 1 << 31
	ringDiscardBit = 1 << 30
	ringHdrSize    = 8
)

var errRingClosed = errors.New("ring closed")

func openRing(m *ebpf.Map) (*ring, error) {
	size := int(m.MaxEntries())
	if size == 0 || size&(size-1) != 0 {
		return nil, fmt.Errorf("ring size %d is not a power of two", size)
	}
	page := os.Getpagesize()
	cons, err := unix.Mmap(m.FD(), 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap consumer page: %w", err)
	}
	prod, err := unix.Mmap(m.FD(), int64(page), page+2*size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		unix.Munmap(cons)
		return nil, fmt.Errorf("mmap data pages: %w", err)
	}
	r := &ring{consPage: cons, prodPage: prod, consPos: (*uintptr)(unsafe.Pointer(&cons[0])),
		prodPos: (*uintptr)(unsafe.Pointer(&prod[0])), data: prod[page:], mask: uintptr(size - 1), epfd: -1, wake: -1}
	r.pos = atomic.LoadUintptr(r.consPos)
	if r.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err == nil {
		if r.wake, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err == nil {
			err = unix.EpollCtl(r.epfd, unix.EPOLL_CTL_ADD, m.FD(), &unix.EpollEvent{Events: unix.EPOLLIN, Fd: 0})
			if err == nil {
				err = unix.EpollCtl(r.epfd, unix.EPOLL_CTL_ADD, r.wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: 1})
			}
		}
	}
	if err != nil {
		r.release()
		return nil, fmt.Errorf("ring poller: %w", err)
	}
	return r, nil
}

// unread is the bytes written and not read yet (0 once released: the
// consumer may ask while the guard closes).
func (r *ring) unread() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.prodPage == nil {
		return 0
	}
	// Where reading is, as this lock knows it (pos is the reader's own):
	// the end of the last record read, or the consumer position when
	// every record read is acknowledged.
	read := atomic.LoadUintptr(r.consPos)
	if len(r.pending) > r.head {
		read = r.pending[len(r.pending)-1].end
	}
	return int(atomic.LoadUintptr(r.prodPos) - read)
}

// next returns the next record's sample and its end position, waiting
// for one unless nowait (then it returns nil, 0, nil when none is
// there). The sample is a copy. Every record returned must be acked.
func (r *ring) next(nowait bool) ([]byte, uintptr, error) {
	for {
		if r.closed.Load() {
			return nil, 0, errRingClosed
		}
		prod := atomic.LoadUintptr(r.prodPos)
		if prod == r.pos {
			if nowait {
				return nil, 0, nil
			}
			if err := r.wait(); err != nil {
				return nil, 0, err
			}
			continue
		}
		hdr := atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.data[r.pos&r.mask])))
		if hdr&ringBusyBit != 0 {
			// Reserved, not yet submitted: the program is running on
			// another CPU and submits within microseconds.
			if nowait {
				return nil, 0, nil
			}
			time.Sleep(10 * time.Microsecond)
			continue
		}
		n := uintptr(hdr &^ (ringBusyBit | ringDiscardBit))
		start := (r.pos + ringHdrSize) & r.mask
		end := r.pos + ringHdrSize + (n+7)&^7
		if end-r.pos > prod-r.pos {
			return nil, 0, fmt.Errorf("ring record of %d bytes past the producer", n)
		}
		r.push(end)
		r.pos = end
		if hdr&ringDiscardBit != 0 {
			r.ack(end)
			continue
		}
		// The data pages are mapped twice in a row: a record that wraps
		// is contiguous.
		return append([]byte(nil), r.data[start:start+n]...), end, nil
	}
}

// wait blocks until the kernel writes or, while records read are not yet
// committed, for an ack: the poller reports readable as long as the
// consumer position is behind the producer, and the kernel wakes the
// reader only when it has caught up, so waiting on it then would spin.
func (r *ring) wait() error {
	timeout := -1
	if r.unacked() > 0 {
		timeout = 5 // ms: a write meanwhile is seen at the next look
	}
	var evs [2]unix.EpollEvent
	if timeout > 0 {
		var fds = []unix.PollFd{{Fd: int32(r.wake), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, timeout); err != nil && err != unix.EINTR {
			return err
		}
		r.drainWake()
		return nil
	}
	n, err := unix.EpollWait(r.epfd, evs[:], -1)
	if err != nil && err != unix.EINTR {
		return err
	}
	for _, ev := range evs[:max(n, 0)] {
		if ev.Fd == 1 {
			r.drainWake()
		}
	}
	return nil
}

func (r *ring) drainWake() {
	var b [8]byte
	unix.Read(r.wake, b[:])
}

// unacked is how many records were read and not acknowledged.
func (r *ring) unacked() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending) - r.head
}

func (r *ring) push(end uintptr) {
	r.mu.Lock()
	r.pending = append(r.pending, ringSlot{end: end})
	r.mu.Unlock()
}

// ack marks the record ending at end as done and moves the consumer
// position past every done record at the front: the kernel may then
// reuse their room, and a later reader never sees them. Acks come nearly
// in ring order, so the record is looked for from the front, and the
// front is dropped by moving an index (a burst keeps thousands pending).
func (r *ring) ack(end uintptr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := r.head; i < len(r.pending); i++ {
		if r.pending[i].end == end {
			r.pending[i].done = true
			break
		}
	}
	k := r.head
	for k < len(r.pending) && r.pending[k].done {
		k++
	}
	if k == r.head || r.closed.Load() {
		return
	}
	atomic.StoreUintptr(r.consPos, r.pending[k-1].end)
	r.head = k
	if r.head == len(r.pending) {
		r.pending, r.head = r.pending[:0], 0
		unix.Write(r.wake, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	} else if r.head > len(r.pending)/2 {
		r.pending, r.head = append(r.pending[:0], r.pending[r.head:]...), 0
	}
}

// close stops next; records not acked stay in the ring for the next
// reader (a pinned ring outlives this process).
func (r *ring) close() {
	if r.closed.Swap(true) {
		return
	}
	unix.Write(r.wake, []byte{1, 0, 0, 0, 0, 0, 0, 0})
}

// release frees the mappings and descriptors once no goroutine reads.
func (r *ring) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed.Store(true)
	if r.epfd >= 0 {
		unix.Close(r.epfd)
		r.epfd = -1
	}
	if r.wake >= 0 {
		unix.Close(r.wake)
		r.wake = -1
	}
	if r.consPage != nil {
		unix.Munmap(r.consPage)
		unix.Munmap(r.prodPage)
		r.consPage, r.prodPage = nil, nil
	}
}
