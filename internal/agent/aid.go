package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/coconut-os/coconut/internal/atomicfile"
)

// aidBlock is how many AIDs one durable write reserves. Reserving ahead
// keeps an fsync off most spawns; a crash loses at most the unused rest of
// a block, which is fine: AIDs must never repeat, they need not be dense.
const aidBlock = 64

// allocator hands out AIDs that are never reused on this host: the
// high-water mark of everything that may have been handed out is on disk
// before any AID below it is used.
type allocator struct {
	mu   sync.Mutex
	path string
	next uint64 // next AID to hand out
	hw   uint64 // first AID not yet reserved on disk
}

func openAllocator(stateDir string, atLeast uint64) (*allocator, error) {
	a := &allocator{path: filepath.Join(stateDir, "aid.hw")}
	b, err := os.ReadFile(a.path)
	switch {
	case err == nil:
		hw, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if perr != nil || hw == 0 {
			return nil, fmt.Errorf("%s is corrupt (%q): refusing to guess, AIDs must never repeat", a.path, b)
		}
		a.hw = hw
	case os.IsNotExist(err):
		a.hw = 1
	default:
		return nil, fmt.Errorf("read AID high-water mark: %w", err)
	}
	// The registry is a second witness: never go below an AID it knows.
	a.hw = max(a.hw, atLeast+1)
	a.next = a.hw
	return a, nil
}

// Next returns a fresh AID.
func (a *allocator) Next() (uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.next >= a.hw {
		hw := a.next + aidBlock
		if err := atomicfile.Write(a.path, []byte(strconv.FormatUint(hw, 10)+"\n"), 0o644); err != nil {
			return 0, fmt.Errorf("persist AID high-water mark: %w", err)
		}
		a.hw = hw
	}
	aid := a.next
	a.next++
	return aid, nil
}
