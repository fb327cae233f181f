package peer

import (
	"os"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// TestAliveUnderSignals: a live process stays alive while signals hit the
// caller's threads. A zero-timeout poll that finds nothing ready returns
// EINTR when a signal is pending, and Go's runtime signals its own threads
// to preempt goroutines; read as "exited", that refused live callers.
func TestAliveUnderSignals(t *testing.T) {
	pidfd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		t.Skipf("pidfd_open: %v", err)
	}
	defer unix.Close(pidfd)
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			unix.Kill(os.Getpid(), unix.SIGURG) // the runtime's own preemption signal: harmless
		}
	}()
	for i := 0; i < 200000; i++ {
		if !alive(pidfd) {
			stop.Store(true)
			<-done
			t.Fatalf("alive() = false for this live process at call %d", i)
		}
	}
	stop.Store(true)
	<-done
}
