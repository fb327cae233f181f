package supervise

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// HolderArg0 marks a holder invocation of the trampoline binary (see Hold).
const HolderArg0 = "coconut-holder"

// maxHeldFDs bounds the descriptors of one held agent: its listener and the
// measured program and script.
const maxHeldFDs = 4

// holdIdle is how long a holder with nothing to hold waits for a daemon
// before it exits.
const holdIdle = 10 * time.Second

// heldSet is what a holder keeps for one agent: its listener first.
type heldSet []int

// holder is the state of a holder process.
type holder struct {
	mu      sync.Mutex
	held    map[uint64]heldSet
	clients int
	idle    time.Time // since when nothing is held and no daemon is connected
}

// Hold runs a holder on the listening socket at fd lfd and never returns.
// A holder keeps a duplicate of every agent's seccomp listener (and its
// measured files) outside the daemon, so a restarted daemon takes them
// back and serves them again: while a holder has them, a trapped call of an
// agent whose daemon died waits rather than failing with ENOSYS. It exits
// once it holds nothing and no daemon is connected.
func Hold(lfd int) {
	h := &holder{held: map[uint64]heldSet{}, idle: time.Now()}
	go h.prune()
	for {
		c, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
		if err != nil {
			if err == unix.EINTR || err == unix.ECONNABORTED {
				continue
			}
			os.Exit(1)
		}
		// Only root may hand over or take listeners: a listener answers
		// an agent's system calls.
		cred, err := unix.GetsockoptUcred(c, unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil || cred.Uid != 0 {
			unix.Close(c)
			continue
		}
		h.mu.Lock()
		h.clients++
		h.mu.Unlock()
		go h.serve(c)
	}
}

// prune closes listeners whose agents are gone (POLLHUP: no task uses the
// filter) and ends the holder when it is idle.
func (h *holder) prune() {
	for {
		time.Sleep(500 * time.Millisecond)
		h.mu.Lock()
		var fds []unix.PollFd
		var aids []uint64
		for aid, s := range h.held {
			fds = append(fds, unix.PollFd{Fd: int32(s[0])})
			aids = append(aids, aid)
		}
		if len(fds) > 0 {
			if _, err := unix.Poll(fds, 0); err == nil {
				for i, f := range fds {
					if f.Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 {
						closeAll(h.held[aids[i]])
						delete(h.held, aids[i])
					}
				}
			}
		}
		if len(h.held) > 0 || h.clients > 0 {
			h.idle = time.Now()
		} else if time.Since(h.idle) > holdIdle {
			os.Exit(0)
		}
		h.mu.Unlock()
	}
}

func (h *holder) serve(c int) {
	defer func() {
		unix.Close(c)
		h.mu.Lock()
		h.clients--
		h.idle = time.Now()
		h.mu.Unlock()
	}()
	for {
		cmd, fds, err := recvMsg(c)
		if err != nil {
			closeAll(fds)
			return
		}
		reply := h.do(c, cmd, fds)
		if err := sendMsg(c, reply, nil); err != nil {
			return
		}
	}
}

// do runs one request; its answer is "ok" or "err: why".
func (h *holder) do(c int, cmd string, fds []int) string {
	verb, arg, _ := strings.Cut(cmd, " ")
	switch verb {
	case "put":
		aid, err := strconv.ParseUint(arg, 10, 64)
		if err != nil || aid == 0 || len(fds) == 0 || !isListener(fds[0]) {
			closeAll(fds)
			return "err: put wants an AID and a seccomp listener"
		}
		h.mu.Lock()
		closeAll(h.held[aid])
		h.held[aid] = fds
		h.mu.Unlock()
		return "ok"
	case "drop":
		closeAll(fds)
		aid, err := strconv.ParseUint(arg, 10, 64)
		if err != nil {
			return "err: drop wants an AID"
		}
		h.mu.Lock()
		closeAll(h.held[aid])
		delete(h.held, aid)
		h.mu.Unlock()
		return "ok"
	case "list":
		closeAll(fds)
		h.mu.Lock()
		defer h.mu.Unlock()
		for aid, s := range h.held {
			if err := sendMsg(c, "held "+strconv.FormatUint(aid, 10), s); err != nil {
				return "err: " + err.Error()
			}
		}
		return "ok"
	}
	closeAll(fds)
	return fmt.Sprintf("err: unknown request %q", verb)
}

// sendMsg sends one request or answer, with descriptors.
func sendMsg(c int, msg string, fds []int) error {
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	return unix.Sendmsg(c, []byte(msg), oob, nil, 0)
}

// recvMsg receives one message; a truncated one is an error (never
// half-understood).
func recvMsg(c int) (string, []int, error) {
	buf := make([]byte, 128)
	oob := make([]byte, unix.CmsgSpace(4*maxHeldFDs))
	n, oobn, flags, _, err := unix.Recvmsg(c, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return "", nil, err
	}
	if n == 0 && oobn == 0 {
		return "", nil, fmt.Errorf("%w: holder connection closed", ErrHandoff)
	}
	fds, perr := parseRights(oob[:oobn])
	if perr != nil || flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		return "", fds, fmt.Errorf("%w: bad holder message (%v)", ErrHandoff, perr)
	}
	return string(buf[:n]), fds, nil
}
