package agent

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/coconut-os/coconut/internal/quota"
)

// DefaultLogMax is each agent's log cap (agent_log_max) when the config
// names none. At the dream team's rate (about 46 KB an agent in ten
// minutes) that is more than a day of one agent's output.
const DefaultLogMax = 8 << 20

// minLogMax keeps a cap from dropping everything at every tick.
const minLogMax = 64 << 10

// logTick is how often logs are checked against the cap: an agent can
// write past the cap by what it writes in one tick.
const logTick = 5 * time.Second

// ParseLogMax reads agent_log_max: a size such as 8M, at least 64K.
func ParseLogMax(s string) (int64, error) {
	n, err := quota.ParseSize(s)
	if err != nil || n < minLogMax {
		return 0, fmt.Errorf("agent_log_max %q: want a size of at least 64K, such as 8M", s)
	}
	return n, nil
}

// capLogs keeps every agent's log (STATE/agents/AID.log, the agent's own
// stdout and stderr, written by the agent through an O_APPEND descriptor)
// of the agents aids lists under the cap limit (agent_log_max; 0:
// DefaultLogMax) until stop: once a log passes it, its oldest part is
// dropped so that about half the cap remains (trimLog).
func capLogs(stop <-chan struct{}, limit int64, st store, aids func() []uint64, log *slog.Logger) {
	if limit <= 0 {
		limit = DefaultLogMax
	}
	t := time.NewTicker(logTick)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		for _, aid := range aids() {
			dropped, err := trimLog(st.logPath(aid), limit)
			if err != nil {
				log.Warn("agent log over its cap and not trimmed", "aid", aid, "err", err)
			} else if dropped > 0 {
				log.Info("agent log trimmed to its cap", "aid", aid, "dropped_bytes", dropped, "agent_log_max", limit)
			}
		}
	}
}

// trimLog drops the head of the log at path if it is over limit, keeping
// about limit/2 bytes. It collapses the head of the file in place
// (fallocate FALLOC_FL_COLLAPSE_RANGE, whole filesystem blocks): the
// agent's O_APPEND writes go on at the new end, none lost, the file never
// replaced. Where the filesystem cannot (tmpfs, btrfs), it keeps the tail,
// truncates and appends the tail back: output the agent writes during
// that copy may be lost or land before the kept tail. It returns the
// bytes dropped.
func trimLog(path string, limit int64) (int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := st.Size()
	if size <= limit || !st.Mode().IsRegular() {
		return 0, nil
	}
	keep := limit / 2
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &fs); err != nil {
		return 0, err
	}
	blk := max(int64(fs.Bsize), 512)
	drop := (size - keep) / blk * blk
	if drop > 0 {
		err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_COLLAPSE_RANGE, 0, drop)
		if err == nil {
			return drop, nil
		}
		if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EINVAL) {
			return 0, fmt.Errorf("collapse log head: %w", err)
		}
	}
	tail := make([]byte, keep)
	n, err := f.ReadAt(tail, size-keep)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("read log tail: %w", err)
	}
	if err := f.Truncate(0); err != nil {
		return 0, fmt.Errorf("truncate log: %w", err)
	}
	if _, err := f.Write(tail[:n]); err != nil {
		return 0, fmt.Errorf("write log tail back: %w", err)
	}
	return size - int64(n), nil
}
