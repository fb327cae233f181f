package supervise

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"
)

// pathMax is PATH_MAX: the kernel refuses longer paths with ENAMETOOLONG.
const pathMax = 4096

const pageSize = 4096

// memCache keeps /proc/TID/mem open per thread. A mem file is tied to the
// address space it was opened on: after the agent execs (or the tid is
// reused) reads fail, and the file is reopened once.
type memCache struct {
	fds map[int]int
	buf []byte // one page, reused: a server reads one path at a time
}

const maxMemFDs = 64

func (m *memCache) open(tid int) (int, error) {
	if fd, ok := m.fds[tid]; ok {
		return fd, nil
	}
	if m.fds == nil || len(m.fds) >= maxMemFDs {
		m.closeAll()
		m.fds = map[int]int{}
	}
	fd, err := unix.Open("/proc/"+strconv.Itoa(tid)+"/mem", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	m.fds[tid] = fd
	return fd, nil
}

func (m *memCache) drop(tid int) {
	if fd, ok := m.fds[tid]; ok {
		unix.Close(fd)
		delete(m.fds, tid)
	}
}

func (m *memCache) closeAll() {
	for tid := range m.fds {
		m.drop(tid)
	}
}

// read fills p from the agent's address at addr, reopening the mem file once
// if the cached one belongs to an old address space.
func (m *memCache) read(tid int, p []byte, addr uint64) (int, error) {
	for try := 0; ; try++ {
		fd, err := m.open(tid)
		if err != nil {
			return 0, err
		}
		n, err := unix.Pread(fd, p, int64(addr))
		if n > 0 || try == 1 {
			return n, err
		}
		m.drop(tid)
	}
}

// readString reads a NUL-terminated path from the agent. Errors are the
// errno the kernel itself would give: EFAULT for an unreadable address,
// ENAMETOOLONG past PATH_MAX.
func (m *memCache) readString(tid int, addr uint64) (string, unix.Errno) {
	if addr == 0 {
		return "", unix.EFAULT
	}
	var out []byte
	if m.buf == nil {
		m.buf = make([]byte, pageSize)
	}
	buf := m.buf
	for len(out) < pathMax {
		// Never read across a page boundary in one call: the next page may
		// be unmapped while the string ends on this one.
		chunk := pageSize - int(addr%pageSize)
		n, err := m.read(tid, buf[:chunk], addr)
		if n <= 0 || err != nil {
			return "", unix.EFAULT
		}
		if s, ok := cString(buf[:n]); ok {
			if out == nil {
				return string(s), 0 // the usual case: one read, one copy
			}
			out = append(out, s...)
			if len(out) >= pathMax {
				break
			}
			return string(out), 0
		}
		out = append(out, buf[:n]...)
		addr += uint64(n)
	}
	return "", unix.ENAMETOOLONG
}

// cString returns the bytes before the first NUL, and whether there was one.
func cString(b []byte) ([]byte, bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return b, false
	}
	return b[:i], true
}

// openHow is struct open_how (the first, 24-byte version).
type openHow struct {
	Flags, Mode, Resolve uint64
}

const openHowSize = 24

// Resolve flags of openat2 (linux/openat2.h) this package knows.
const knownResolve = unix.RESOLVE_NO_XDEV | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_SYMLINKS |
	unix.RESOLVE_BENEATH | unix.RESOLVE_IN_ROOT | resolveCached

// resolveCached is RESOLVE_CACHED, missing from x/sys.
const resolveCached = 0x20

// decodeOpenHow parses the open_how an openat2 caller passed, given its
// declared size. Unknown resolve flags are refused: a flag this package
// does not understand could make the kernel resolve differently.
func decodeOpenHow(b []byte, size uint64) (openHow, error) {
	if size < openHowSize || len(b) < openHowSize {
		return openHow{}, fmt.Errorf("open_how of %d bytes", size)
	}
	h := openHow{
		Flags:   binary.LittleEndian.Uint64(b[0:]),
		Mode:    binary.LittleEndian.Uint64(b[8:]),
		Resolve: binary.LittleEndian.Uint64(b[16:]),
	}
	if h.Resolve&^knownResolve != 0 {
		return openHow{}, fmt.Errorf("unknown resolve flags %#x", h.Resolve&^knownResolve)
	}
	if h.Flags>>32 != 0 {
		return openHow{}, fmt.Errorf("open flags %#x out of range", h.Flags)
	}
	return h, nil
}
