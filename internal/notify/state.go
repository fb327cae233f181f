package notify

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/coconut-os/coconut/internal/atomicfile"
)

// state is what has been shown, persisted so a restart neither loses nor
// repeats a deny. Every deny with seq <= Seq was in a notification; so was
// every deny of agent A with seq <= Shown[A] (an agent with a summary
// still pending holds Seq back while other agents' notifications go on).
type state struct {
	Seq   uint64            `json:"seq"`
	Shown map[string]uint64 `json:"shown,omitempty"` // AID (decimal) -> seq
}

// StatePath is where the state lives: $XDG_STATE_HOME/coconut/notify.json,
// ~/.local/state when XDG_STATE_HOME is unset.
func StatePath() (string, error) {
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no XDG_STATE_HOME and no home directory: %w", err)
		}
		dir = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(dir, "coconut", "notify.json"), nil
}

// loadState reads the state; ok is false when there is none yet.
func loadState(path string) (st state, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return state{}, false, nil
	}
	if err != nil {
		return state{}, false, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return state{}, false, fmt.Errorf("%s: %w (remove it to start from the chain's head)", path, err)
	}
	for k := range st.Shown {
		if _, err := strconv.ParseUint(k, 10, 64); err != nil {
			return state{}, false, fmt.Errorf("%s: shown: AID %q is not a number", path, k)
		}
	}
	return st, true, nil
}

func (st state) save(path string) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	// Replace, not Write: no fsync on the way to the next notification.
	// A machine crash can only roll the file back, and a rolled-back state
	// shows a deny again; it never skips one.
	return atomicfile.Replace(path, append(b, '\n'), 0o600)
}

// shown reports whether the deny seq of aid was already in a notification.
func (st state) shown(aid, seq uint64) bool {
	return seq <= st.Seq || seq <= st.Shown[strconv.FormatUint(aid, 10)]
}

// record marks the denies of n as shown; processed is the last seq read from
// the stream and lowPending the smallest seq still waiting (0: none).
func (st *state) record(n *note, processed, lowPending uint64) {
	if st.Shown == nil {
		st.Shown = map[string]uint64{}
	}
	k := strconv.FormatUint(n.aid, 10)
	st.Shown[k] = max(st.Shown[k], n.seqs[len(n.seqs)-1])
	seq := processed
	if lowPending != 0 {
		seq = lowPending - 1
	}
	st.Seq = max(st.Seq, seq)
	for k, v := range st.Shown {
		if v <= st.Seq {
			delete(st.Shown, k)
		}
	}
}

// ErrRunning means another coconut notify of this user holds the state.
var ErrRunning = errors.New("another coconut notify is already running for this user")

// lockState takes the state's lock (notify.json.lock beside it), so that
// the XDG autostart entry and the systemd user unit, both installed, give
// one notifier and not two.
func lockState(path string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrRunning
		}
		return nil, fmt.Errorf("lock %s.lock: %w", path, err)
	}
	return func() { f.Close() }, nil
}
