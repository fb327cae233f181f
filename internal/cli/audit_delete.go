package cli

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/checkpoint"
	"github.com/coconut-os/coconut/internal/statedir"
)

// auditDelete is `coconut audit archive --delete --before DATE`: the last
// stage of the same retention `archive --to` begins (moved, then gone),
// so it shares --before and the report's shape; `agent prune` is about
// agents' records and never touches the chain. It works on the state
// directory with coconutd stopped: the deletion is recorded as an
// audit.delete row, and only the chain's one writer can append it.
func auditDelete(g *globals, before time.Time, yes bool, pubFile string) error {
	if g.json && !yes {
		return usagef("--json needs --yes: nothing is deleted without being asked")
	}
	pub, err := hostPublicKey(g, pubFile)
	if err != nil {
		return err
	}
	dir := statedir.Chain(g.state())
	plan, err := checkpoint.PlanDelete(dir, pub, before)
	if err != nil {
		return err
	}
	if len(plan.Segments) == 0 {
		if g.json {
			return printJSON(os.Stdout, audit.DeleteReport{DeletePlan: plan})
		}
		fmt.Printf("no sealed segment ends before %s and is covered by a signed checkpoint: nothing to delete", before.Format(time.RFC3339))
		if plan.HeldBack > 0 {
			fmt.Printf(" (%d held back: rows not yet in a checkpoint)", plan.HeldBack)
		}
		fmt.Println()
		return audit.FinishDelete(dir)
	}
	if !g.json {
		fmt.Printf("would delete %d sealed segments: rows %d..%d (%d rows, %s on disk), last row %s\n",
			len(plan.Segments), plan.First, plan.Last, plan.Rows, mib(plan.Bytes), plan.Segments[len(plan.Segments)-1].LastTime.UTC().Format(time.RFC3339))
		if plan.HeldBack > 0 {
			fmt.Printf("(%d older segments held back: rows not yet covered by a signed checkpoint)\n", plan.HeldBack)
		}
		fmt.Println("their hashes stay (manifest entries and the Merkle compact range), so later checkpoints and proofs stay verifiable; the rows themselves cannot be read again")
	}
	if !yes {
		if !isTTY(os.Stdin) {
			return usagef("not a terminal: pass --yes to delete")
		}
		fmt.Print("delete them? [y/N] ")
		line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
		if a := strings.TrimSpace(strings.ToLower(line)); a != "y" && a != "yes" {
			fmt.Println("nothing deleted")
			return nil
		}
	}
	c, err := audit.Open(dir, audit.Options{})
	if errors.Is(err, audit.ErrLocked) {
		return fmt.Errorf("coconutd is running and holds the audit chain: stop it first (the deletion is recorded as an audit.delete row, which only the chain's writer appends): %w", err)
	}
	if err != nil {
		return err
	}
	rep, err := checkpoint.DeletePrefix(c, pub, plan, whoAsked())
	if cerr := c.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if g.json {
		return printJSON(os.Stdout, rep)
	}
	fmt.Printf("deleted %d segments: rows %d..%d (%d rows, %s), recorded as row %d (audit.delete); verify starts from the recorded head and compact range at %d\n",
		len(rep.Segments), rep.First, rep.Last, rep.Rows, mib(rep.Bytes), rep.Row, rep.Last)
	return nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// whoAsked names the user for the deletion's record: uid and name, and
// the sudo caller when there is one.
func whoAsked() string {
	uid := os.Getuid()
	s := "uid " + strconv.Itoa(uid)
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		s += " (" + u.Username + ")"
	}
	if su := os.Getenv("SUDO_USER"); su != "" && uid == 0 {
		s += " via sudo by " + su
	}
	return s
}

// isTTY reports whether f is a terminal one can be asked on: a termios
// device, not any character device (/dev/null is one).
func isTTY(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
