package main

import (
	"io"
	"os"
	"path/filepath"
)

// maxRead caps every file read: 31 agents run at once and none needs more.
const maxRead = 1 << 20

// textStats are the counts a researcher reports about a file.
type textStats struct {
	Bytes, Lines, Words int
}

// countText counts bytes, lines and words in the first maxRead bytes of r,
// streaming through a small buffer instead of holding the file.
func countText(r io.Reader) (textStats, error) {
	var s textStats
	buf := make([]byte, 32<<10)
	inWord := false
	lr := io.LimitReader(r, maxRead)
	for {
		n, err := lr.Read(buf)
		for _, c := range buf[:n] {
			s.Bytes++
			if c == '\n' {
				s.Lines++
			}
			space := c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f'
			if !space && !inWord {
				s.Words++
			}
			inWord = !space
		}
		if err == io.EOF {
			return s, nil
		}
		if err != nil {
			return s, err
		}
	}
}

// statFile opens path and counts it. The read, not only the open, can be
// refused (bpf-lsm checks file_permission on each read), so both errors are
// returned as they are.
func statFile(path string) (textStats, error) {
	f, err := os.Open(path)
	if err != nil {
		return textStats{}, err
	}
	defer f.Close()
	// f.Read's errors already name the operation and the path.
	return countText(f)
}

// readSmall returns at most max bytes of path.
func readSmall(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max))
}

// writeFileAtomic writes data to path through a temporary file and a rename,
// so a reviewer or planner reading the notes never sees half a file.
func writeFileAtomic(path string, data []byte) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
