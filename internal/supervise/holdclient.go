package supervise

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrHolder matches errors talking to the listener holder.
var ErrHolder = errors.New("listener holder")

// Holder is the daemon's side of the holder process (see Hold): listeners
// are handed to it as agents start and taken back after a restart.
type Holder struct {
	path, self string

	mu   sync.Mutex
	c    int
	mine map[uint64][]*os.File // duplicates of what was put, replayed to a new holder
}

// OpenHolder connects to the holder listening at path, starting one (the
// binary self run as HolderArg0) when none answers.
func OpenHolder(path, self string) (*Holder, error) {
	h := &Holder{path: path, self: self, c: -1, mine: map[uint64][]*os.File{}}
	if err := h.connect(); err != nil {
		return nil, err
	}
	return h, nil
}

// connect dials the holder, starting one if needed. The caller holds mu
// (or is OpenHolder).
func (h *Holder) connect() error {
	if h.c >= 0 {
		unix.Close(h.c)
		h.c = -1
	}
	c, err := dialHolder(h.path)
	if err != nil {
		if err := startHolder(h.path, h.self); err != nil {
			return err
		}
		if c, err = dialHolder(h.path); err != nil {
			return fmt.Errorf("%w: dial new holder: %w", ErrHolder, err)
		}
	}
	h.c = c
	// A new holder knows nothing: give it everything this daemon holds.
	for aid, files := range h.mine {
		if err := h.putLocked(aid, files); err != nil {
			return err
		}
	}
	return nil
}

func dialHolder(path string) (int, error) {
	c, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Connect(c, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(c)
		return -1, err
	}
	return c, nil
}

// startHolder binds the socket itself and passes it to the new holder, so
// the holder is reachable the moment this returns.
func startHolder(path, self string) error {
	l, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%w: socket: %w", ErrHolder, err)
	}
	lf := os.NewFile(uintptr(l), "holder-listen")
	defer lf.Close()
	os.Remove(path) // nobody answered on it: a stale socket
	if err := unix.Bind(l, &unix.SockaddrUnix{Name: path}); err != nil {
		return fmt.Errorf("%w: bind %s: %w", ErrHolder, path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("%w: %w", ErrHolder, err)
	}
	if err := unix.Listen(l, 8); err != nil {
		return fmt.Errorf("%w: listen: %w", ErrHolder, err)
	}
	cmd := &exec.Cmd{
		Path: self, Args: []string{HolderArg0}, Env: []string{}, Dir: "/",
		ExtraFiles:  []*os.File{lf},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true}, // outlives the daemon and its process group
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%w: start %s: %w", ErrHolder, self, err)
	}
	go cmd.Wait() // reaped if it ends while this daemon runs
	return nil
}

// roundTrip sends a request and reads "ok"; extra messages before it are
// passed to each. The caller holds mu.
func (h *Holder) roundTrip(req string, fds []int, each func(msg string, fds []int) error) error {
	if err := sendMsg(h.c, req, fds); err != nil {
		return fmt.Errorf("%w: send: %w", ErrHolder, err)
	}
	unix.SetsockoptTimeval(h.c, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5})
	for {
		msg, got, err := recvMsg(h.c)
		if err != nil {
			closeAll(got)
			return fmt.Errorf("%w: receive: %w", ErrHolder, err)
		}
		switch {
		case msg == "ok":
			closeAll(got)
			return nil
		case strings.HasPrefix(msg, "err: "):
			closeAll(got)
			return fmt.Errorf("%w: %s", ErrHolder, strings.TrimPrefix(msg, "err: "))
		case each != nil:
			if err := each(msg, got); err != nil {
				return err
			}
		default:
			closeAll(got)
			return fmt.Errorf("%w: unexpected answer %q", ErrHolder, msg)
		}
	}
}

func (h *Holder) putLocked(aid uint64, files []*os.File) error {
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	return h.roundTrip("put "+strconv.FormatUint(aid, 10), fds, nil)
}

// Put hands the holder agent aid's listener (first) and measured files.
// The holder keeps its own copies; so does h, to give them to a new holder
// if this one dies.
func (h *Holder) Put(aid uint64, files ...*os.File) error {
	if len(files) == 0 || len(files) > maxHeldFDs {
		return fmt.Errorf("%w: put %d descriptors", ErrHolder, len(files))
	}
	dups := make([]*os.File, 0, len(files))
	for _, f := range files {
		fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			closeFiles(dups)
			return fmt.Errorf("%w: dup: %w", ErrHolder, err)
		}
		dups = append(dups, os.NewFile(uintptr(fd), f.Name()))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	err := h.putLocked(aid, dups)
	if err != nil && !errors.Is(err, unix.EPIPE) && !errors.Is(err, unix.ECONNRESET) && !errors.Is(err, unix.EAGAIN) {
		closeFiles(dups)
		return err
	}
	closeFiles(h.mine[aid])
	h.mine[aid] = dups
	if err != nil {
		// The holder went away: start a new one, which gets everything.
		if err := h.connect(); err != nil {
			delete(h.mine, aid)
			closeFiles(dups)
			return err
		}
	}
	return nil
}

// Drop tells the holder agent aid has ended.
func (h *Holder) Drop(aid uint64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	closeFiles(h.mine[aid])
	delete(h.mine, aid)
	return h.roundTrip("drop "+strconv.FormatUint(aid, 10), nil, nil)
}

// Take returns what the holder keeps, by AID: the listener first, then the
// measured files. The holder keeps its copies.
func (h *Holder) Take() (map[uint64][]*os.File, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[uint64][]*os.File{}
	err := h.roundTrip("list", nil, func(msg string, fds []int) error {
		aid, err := strconv.ParseUint(strings.TrimPrefix(msg, "held "), 10, 64)
		if !strings.HasPrefix(msg, "held ") || err != nil || len(fds) == 0 || !isListener(fds[0]) {
			closeAll(fds)
			return fmt.Errorf("%w: bad entry %q", ErrHolder, msg)
		}
		var files, dups []*os.File
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "held"))
			if d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0); err == nil {
				dups = append(dups, os.NewFile(uintptr(d), "held"))
			}
		}
		closeFiles(out[aid])
		out[aid] = files
		closeFiles(h.mine[aid])
		h.mine[aid] = dups
		return nil
	})
	if err != nil {
		for _, fs := range out {
			closeFiles(fs)
		}
		return nil, err
	}
	return out, nil
}

// Close disconnects; the holder keeps what it holds for the next daemon.
func (h *Holder) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for aid, fs := range h.mine {
		closeFiles(fs)
		delete(h.mine, aid)
	}
	if h.c >= 0 {
		err := unix.Close(h.c)
		h.c = -1
		return err
	}
	return nil
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}
