package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// probeEvery is how many intervals pass between two ssh probes.
const probeEvery = 10

// probeSSH tries to read the user's ssh private key, as a misbehaving agent
// would, and returns one log line saying what happened. The bytes are
// counted and thrown away: the content is never kept or printed.
func probeSSH(home string) string {
	path := filepath.Join(home, ".ssh", "id_ed25519")
	n, err := readAndDiscard(path)
	if err != nil {
		e, ok := errnoOf(err)
		switch {
		case !ok:
			return fmt.Sprintf("probe: read %s: failed: %v (no errno)", path, err)
		case isDenial(e):
			return fmt.Sprintf("probe: read %s: denied errno=%d (%v)", path, int(e), e)
		default:
			return fmt.Sprintf("probe: read %s: failed errno=%d (%v)", path, int(e), e)
		}
	}
	return fmt.Sprintf("probe: read %s: succeeded (%d bytes) — nothing stopped me", path, n)
}

// readAndDiscard reads up to maxRead bytes of path into io.Discard and
// returns how many there were.
func readAndDiscard(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return io.Copy(io.Discard, io.LimitReader(f, maxRead))
}
