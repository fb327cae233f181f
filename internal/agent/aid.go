package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/coconut-os/coconut/internal/atomicfile"
	"github.com/coconut-os/coconut/internal/audit"
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

// openAllocator reads the high-water mark and never goes below atLeast+1
// (the highest AID the registry knows of). Without aid.hw (lost, or a
// state directory restored without it) the chain is asked too, through
// chainHigh: it is read only then, not at every start (on a chain whose
// query index is being rebuilt the question is a scan). When a witness is
// ahead of the file, a block more is skipped: AIDs handed out just before
// the witness's last record may not be in it.
func openAllocator(stateDir string, atLeast uint64, chainHigh func() (uint64, error)) (*allocator, error) {
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
		if chainHigh != nil {
			hi, err := chainHigh()
			if err != nil {
				return nil, err
			}
			atLeast = max(atLeast, hi)
		}
	default:
		return nil, fmt.Errorf("read AID high-water mark: %w", err)
	}
	if atLeast >= a.hw {
		a.hw = atLeast + 1 + aidBlock
	}
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

// highestSpawnedAID is the highest AID among the chain's last agent.spawn
// rows: the chain is a witness of every AID ever used that no prune
// touches (the registry forgets pruned agents). It looks back from the
// head in windows that double, so a start reads the tail only; AIDs are
// allocated in order and their spawn rows appended at once, so the last
// window holding any spawn row holds the highest AID.
func highestSpawnedAID(c Chain) (uint64, error) {
	if c == nil {
		return 0, nil
	}
	head, _ := c.Head()
	for window := uint64(4096); ; window *= 2 {
		from := uint64(0)
		if head > window {
			from = head - window
		}
		var hi uint64
		for after := from; ; {
			rs, err := c.Query(audit.Query{Type: audit.TypeAgentSpawn, AfterSeq: after, Limit: audit.MaxLimit})
			if err != nil {
				return 0, fmt.Errorf("read the chain's last spawn rows: %w", err)
			}
			for _, r := range rs {
				hi = max(hi, r.AID)
			}
			if len(rs) < audit.MaxLimit {
				break
			}
			after = rs[len(rs)-1].Seq
		}
		if hi > 0 || from == 0 {
			return hi, nil
		}
	}
}
