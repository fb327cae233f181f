package measure

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

var (
	// ErrNotRegular means the path is not a regular file.
	ErrNotRegular = errors.New("not a regular file")
	// ErrNotExecutable means no execute bit is set.
	ErrNotExecutable = errors.New("not executable")
	// ErrTooLarge means the file is over MaxSize.
	ErrTooLarge = errors.New("file too large to measure")
)

// MaxSize bounds what is copied into memory: agent binaries are programs,
// not data sets.
const MaxSize = 1 << 30

// Measured is a sealed in-memory copy of a file and its SHA-256.
type Measured struct {
	Path   string // what was asked for
	SHA256 string // hex
	Size   int64
	Script bool // starts with "#!": the kernel must find it by fd path
	file   *os.File
	refs   int
}

// File returns the sealed memfd. Valid until the Measured is released.
func (m *Measured) File() *os.File { return m.file }

// Cache shares sealed copies by digest.
type Cache struct {
	mu   sync.Mutex
	byID map[string]*Measured
}

// NewCache returns an empty cache.
func NewCache() *Cache { return &Cache{byID: map[string]*Measured{}} }

// Measure hashes the file at path (following symlinks, as exec would) and
// returns a sealed copy of exactly those bytes. wantExec requires an
// execute bit, as execve would. Release the result when the agent has
// exec'd.
func (c *Cache) Measure(path string, wantExec bool) (*Measured, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w", path, ErrNotRegular)
	}
	if wantExec && st.Mode().Perm()&0o111 == 0 {
		return nil, fmt.Errorf("%s: %w", path, ErrNotExecutable)
	}
	if st.Size() > MaxSize {
		return nil, fmt.Errorf("%s: %w (%d bytes)", path, ErrTooLarge, st.Size())
	}
	mfd, err := newMemfd(path)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(h, mfd), io.LimitReader(f, MaxSize+1))
	if err == nil && n > MaxSize {
		err = fmt.Errorf("%s: %w", path, ErrTooLarge)
	}
	if err != nil {
		mfd.Close()
		return nil, fmt.Errorf("measure %s: %w", path, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))

	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.byID[sum]; ok {
		// Same bytes already sealed: the new copy is redundant.
		mfd.Close()
		m.refs++
		return &Measured{Path: path, SHA256: sum, Size: n, Script: m.Script, file: m.file, refs: -1}, nil
	}
	if err := seal(mfd); err != nil {
		mfd.Close()
		return nil, err
	}
	head := make([]byte, 2)
	_, _ = mfd.ReadAt(head, 0)
	m := &Measured{Path: path, SHA256: sum, Size: n, Script: string(head) == "#!", file: mfd, refs: 1}
	c.byID[sum] = m
	return &Measured{Path: path, SHA256: sum, Size: n, Script: m.Script, file: mfd, refs: -1}, nil
}

// Retain takes one more use of a sealed copy (nil stays nil): each agent
// started from it releases its own.
func (c *Cache) Retain(m *Measured) *Measured {
	if m == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if shared, ok := c.byID[m.SHA256]; ok {
		shared.refs++
	}
	cp := *m
	return &cp
}

// Release drops one use of a sealed copy; the last use closes it.
func (c *Cache) Release(m *Measured) {
	if m == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	shared, ok := c.byID[m.SHA256]
	if !ok {
		return
	}
	shared.refs--
	if shared.refs <= 0 {
		shared.file.Close()
		delete(c.byID, m.SHA256)
	}
}

// Len is the number of distinct sealed copies held.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byID)
}

func newMemfd(name string) (*os.File, error) {
	flags := unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING
	// MFD_EXEC (Linux 6.3) asks for an executable memfd explicitly; older
	// kernels reject the flag and make memfds executable anyway.
	fd, err := unix.MemfdCreate("coconut-measured", flags|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) {
		fd, err = unix.MemfdCreate("coconut-measured", flags)
	}
	if err != nil {
		return nil, fmt.Errorf("memfd for %s: %w", name, err)
	}
	// Executable by the agent's user after the daemon drops privileges.
	if err := unix.Fchmod(fd, 0o555); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("memfd for %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), "memfd:"+name), nil
}

// seal forbids every further change to the memfd's content and size.
func seal(f *os.File) error {
	const seals = unix.F_SEAL_WRITE | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		return fmt.Errorf("seal memfd: %w", err)
	}
	return nil
}
