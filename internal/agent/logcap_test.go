package agent

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// TestTrimLogKeepsTail: a log over the cap keeps exactly its last bytes,
// about half the cap, in the same file (the writer's descriptor stays
// valid); one under the cap is left alone.
func TestTrimLogKeepsTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "7.log")
	var all bytes.Buffer
	for i := range 40000 {
		fmt.Fprintf(&all, "line %06d of the agent's output\n", i)
	}
	if err := os.WriteFile(path, all.Bytes(), 0o640); err != nil {
		t.Fatal(err)
	}
	st0, _ := os.Stat(path)
	if n, err := trimLog(path, int64(all.Len())); err != nil || n != 0 {
		t.Fatalf("log at the cap trimmed: %d, %v", n, err)
	}
	const limit = 256 << 10
	dropped, err := trimLog(path, limit)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if int64(len(got))+dropped != int64(all.Len()) || len(got) > limit || len(got) < limit/2 {
		t.Fatalf("kept %d bytes, dropped %d, of %d (cap %d)", len(got), dropped, all.Len(), limit)
	}
	if !bytes.Equal(got, all.Bytes()[dropped:]) {
		t.Fatal("what is kept is not the log's tail")
	}
	st1, _ := os.Stat(path)
	if !os.SameFile(st0, st1) {
		t.Fatal("the log was replaced, not trimmed in place")
	}
}

// TestTrimLogBesideWriter: trims while a writer appends lines through its
// own O_APPEND descriptor, as an agent does: what remains is the last
// lines in order, none lost after the first cut.
func TestTrimLogBesideWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "8.log")
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	const lines = 200000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range lines {
			fmt.Fprintf(w, "line %07d\n", i)
		}
	}()
	const limit = 128 << 10
	trims := 0
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		n, err := trimLog(path, limit)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			trims++
		}
	}
	w.Close()
	if trims == 0 {
		t.Fatal("never over the cap: the test proves nothing")
	}
	f, _ := os.Open(path)
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // the first line may be cut
	prev := -1
	for sc.Scan() {
		n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "line "))
		if err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if prev >= 0 && n != prev+1 {
			t.Fatalf("line %d follows %d: output lost or reordered", n, prev)
		}
		prev = n
	}
	if prev != lines-1 {
		t.Fatalf("last line %d, want %d", prev, lines-1)
	}
	t.Logf("%d trims", trims)
}

// TestParseLogMax: sizes of at least 64K, nothing else.
func TestParseLogMax(t *testing.T) {
	if n, err := ParseLogMax("8M"); err != nil || n != 8<<20 {
		t.Fatalf("8M = %d, %v", n, err)
	}
	for _, s := range []string{"", "1K", "max", "-1", "lots"} {
		if _, err := ParseLogMax(s); err == nil {
			t.Errorf("ParseLogMax(%q) accepted", s)
		}
	}
}

// TestTrimLogFallback: on a filesystem that cannot collapse a range
// (tmpfs), the tail is kept by truncating and appending it back.
func TestTrimLogFallback(t *testing.T) {
	var fs unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &fs); err != nil || fs.Type != unix.TMPFS_MAGIC {
		t.Skip("needs /dev/shm on tmpfs, which cannot collapse a range")
	}
	dir, err := os.MkdirTemp("/dev/shm", "coconut-logcap-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "9.log")
	all := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	os.WriteFile(path, all, 0o640)
	dropped, err := trimLog(path, 256<<10)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if len(got) != 128<<10 || dropped != int64(len(all)-len(got)) || !bytes.Equal(got, all[len(all)-len(got):]) {
		t.Fatalf("kept %d, dropped %d", len(got), dropped)
	}
}
