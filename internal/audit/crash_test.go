package audit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

const crashChildEnv = "COCONUT_AUDIT_CRASH_DIR"

// TestCrashStormChild is the process TestCrashKill kills: an append storm
// that prints every acknowledged seq on stdout. It does nothing when run
// normally.
func TestCrashStormChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("only run by TestCrashKill")
	}
	c, err := Open(filepath.Join(dir, "chain"), Options{SegmentBytes: 256 << 10, IndexDir: filepath.Join(dir, "index")})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(3)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	for w := 0; w < 32; w++ {
		go func() {
			for i := w; ; i += 32 {
				r, err := c.Append(context.Background(), rec(i))
				if err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(4)
				}
				mu.Lock()
				fmt.Fprintln(out, r.Seq)
				out.Flush() // the parent only counts seqs it has read
				mu.Unlock()
			}
		}()
	}
	select {} // until killed
}

func rs0(rs []Record) Record {
	if len(rs) == 0 {
		return Record{}
	}
	return rs[0]
}

// TestCrashKill kills an append storm with SIGKILL at random moments and
// reopens the chain each time: it must verify, hold every acknowledged
// record, and cut and record a torn tail (simulated in every other round
// by appending a partial frame, which is what a crash mid-write leaves).
func TestCrashKill(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes for a few seconds")
	}
	dir := t.TempDir()
	chainDir := filepath.Join(dir, "chain")
	opts := Options{SegmentBytes: 256 << 10, IndexDir: filepath.Join(dir, "index")}
	var acked uint64 // highest acknowledged seq over all rounds
	for round := range 10 {
		var last uint64
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashStormChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		read := make(chan struct{})
		go func() {
			defer close(read)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if s, err := strconv.ParseUint(sc.Text(), 10, 64); err == nil {
					last = max(last, s)
				}
			}
		}()
		time.Sleep(time.Duration(100+rand.IntN(300)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-read
		werr := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(werr, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: storm ended with %v, not by the kill", round, werr)
		}
		if last <= acked {
			t.Fatalf("round %d: no new acknowledged appends (last %d)", round, last)
		}
		acked = last

		torn := round%2 == 1
		if torn {
			segs := segPaths(t, chainDir)
			f, err := os.OpenFile(segs[len(segs)-1], os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte{200, 0, 0, 0, '{', '"', 's'}) // a frame cut short
			f.Close()
		}
		pre, perr := Verify(chainDir)
		// A SIGKILL during the group commit's write can itself leave a
		// torn tail (the kernel stops a large write at a fatal signal):
		// allowed in every round, required in the simulated ones.
		realTorn := !torn && errors.Is(perr, ErrTornTail)
		if perr != nil && !errors.Is(perr, ErrTornTail) || torn && !errors.Is(perr, ErrTornTail) {
			t.Fatalf("round %d: before reopen Verify = %v, torn tail simulated: %v", round, perr, torn)
		}
		c, err := Open(chainDir, opts)
		if err != nil {
			t.Fatalf("round %d: reopen: %v", round, err)
		}
		head, _ := c.Head()
		if head < acked {
			t.Fatalf("round %d: head %d but seq %d was acknowledged", round, head, acked)
		}
		if torn || realTorn {
			rs, err := c.Query(Query{AfterSeq: pre.Records, Type: TypeTruncated})
			// At least the simulated 7 bytes (more if the kill tore the
			// last write too).
			n, nerr := strconv.Atoi(rs0(rs).Detail["bytes"])
			if err != nil || len(rs) != 1 || nerr != nil || n < 1 || torn && n < 7 {
				t.Fatalf("round %d: cut not recorded: %v %+v", round, err, rs)
			}
		}
		// The index caught up from what the killed process left.
		aid := uint64(101)
		got, err := c.Query(Query{AID: &aid, AfterSeq: acked - min(acked, 50)})
		if err != nil || len(got) == 0 {
			t.Fatalf("round %d: indexed query: %v, %d records", round, err, len(got))
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		rep, err := Verify(chainDir)
		if err != nil || rep.Records < acked {
			t.Fatalf("round %d: Verify after reopen = %+v, %v (acked %d)", round, rep, err, acked)
		}
		t.Logf("round %d: acked %d, chain %d records, torn %v", round, acked, rep.Records, torn)
	}
}
