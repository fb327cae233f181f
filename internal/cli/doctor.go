package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/orphan"
)

// Doctor is a registry of checks by group. A check is a function of what
// the daemon answered (or why it did not) and of this machine; each says
// OK or what to do. Checks of other topics live in doctor_<topic>.go and
// register themselves from an init function:
//
//	func init() { registerDoctorCheck(doctorCheck{Group: groupBroker, Name: "upstream", Run: ...}) }
//
// A failed check whose Matters is set makes doctor exit 1.

// Groups, in the order doctor prints them.
const (
	groupKernel        = "kernel"
	groupDaemon        = "daemon"
	groupEnforcer      = "enforcer"
	groupAnchor        = "audit anchor"
	groupBroker        = "broker"
	groupCenter        = "Center"
	groupNotifications = "notifications"
)

var doctorGroups = []string{groupKernel, groupDaemon, groupEnforcer, groupAnchor, groupWitness, groupExport, groupBroker, groupCenter, groupNotifications}

// doctorEnv is what every check sees.
type doctorEnv struct {
	g   *globals
	d   *api.Doctor // nil when the daemon did not answer
	err error       // why it did not
}

// checkResult is one check's finding. Skip leaves the line out (the check
// does not apply here, e.g. daemon-side facts with no daemon).
type checkResult struct {
	OK     bool
	Detail string
	Fix    string
	Skip   bool
}

type doctorCheck struct {
	Group   string
	Name    string
	Matters bool // a failure makes doctor exit non-zero
	Run     func(ctx context.Context, e *doctorEnv) checkResult
}

var doctorChecks []doctorCheck

// registerDoctorCheck adds checks; doctor runs them in group order, and in
// registration order within a group.
func registerDoctorCheck(cs ...doctorCheck) { doctorChecks = append(doctorChecks, cs...) }

// doctorLine is one result, as printed and in --json's "report".
type doctorLine struct {
	Group   string `json:"group"`
	Name    string `json:"name"`
	OK      bool   `json:"ok"`
	Matters bool   `json:"matters"`
	Detail  string `json:"detail"`
	Fix     string `json:"fix,omitempty"`
}

// doctorJSON is `doctor --json`: the daemon's answer (the documented
// fields: enforcer, ecapability, anchor, counters …) with the report and
// the overall verdict beside it.
type doctorJSON struct {
	*api.Doctor
	Report []doctorLine `json:"report"`
	OK     bool         `json:"ok"`
	Error  string       `json:"error,omitempty"`
	// Orphans are found by the CLI itself, daemon or not (their daemon
	// is gone): doctor_orphans.go, issue 18.
	Orphans []orphan.Orphan `json:"orphans"`
}

func runDoctorChecks(ctx context.Context, e *doctorEnv) (lines []doctorLine, ok bool) {
	ok = true
	for _, grp := range doctorGroups {
		for _, c := range doctorChecks {
			if c.Group != grp {
				continue
			}
			r := c.Run(ctx, e)
			if r.Skip {
				continue
			}
			lines = append(lines, doctorLine{Group: grp, Name: c.Name, OK: r.OK, Matters: c.Matters, Detail: r.Detail, Fix: r.Fix})
			if !r.OK && c.Matters {
				ok = false
			}
		}
	}
	return lines, ok
}

// errDoctor is doctor's failure: the report says which checks and how to fix them.
var errDoctor = errors.New("doctor: a check that matters failed (see its fix above)")

func doctorCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "doctor", Short: "Check this kernel, coconutd and its parts; each finding OK or a fix (exit 1 if one that matters fails)", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			e := &doctorEnv{g: g}
			if e.d, e.err = g.client().Doctor(ctx); e.err != nil {
				e.d = nil
			}
			lines, ok := runDoctorChecks(ctx, e)
			orphans, orphansErr := findOrphans()
			if g.json {
				out := doctorJSON{Doctor: e.d, Report: lines, OK: ok, Orphans: orphans}
				if e.err != nil {
					out.Error = e.err.Error()
				}
				if err := printJSON(os.Stdout, out); err != nil {
					return err
				}
			} else {
				printDoctor(e, lines)
				printOrphans(os.Stdout, orphans, orphansErr)
			}
			if !ok {
				return errDoctor
			}
			return nil
		},
	}
}

func printDoctor(e *doctorEnv, lines []doctorLine) {
	if d := e.d; d != nil {
		fmt.Printf("coconutd %s (pid %d), state %s\n", d.Version, d.PID, d.StateDir)
		fmt.Printf("enforcer:    %s — %s\n", d.Enforcer, d.EnforcerWhy)
		fmt.Printf("ECAPABILITY: errno %d\n", d.ECapability)
		fmt.Printf("anchor:      %s\n", d.Anchor)
		fmt.Printf("host key:    %s\n", d.HostKeyID)
		fmt.Printf("audit chain: %d records\n", d.ChainHead)
		fmt.Printf("agents:      %d running\n", d.Agents)
		printQuotaDefaults(d.QuotaDefaults) // doctor_defaults.go
		printDenyStorm(d.DenyStorm)         // doctor_defaults.go
		printCounters(d)                    // doctor_counters.go
		fmt.Println("             (supervisor and network guard denies; Landlock floor denials are only in the kernel audit log: see kernel-audit)")
		printWitnesses(d) // doctor_witness.go, issue 17
	}
	group := ""
	for _, l := range lines {
		if l.Group != group {
			group = l.Group
			fmt.Printf("\n%s\n", group)
		}
		mark := "ok  "
		switch {
		case !l.OK && l.Matters:
			mark = "FAIL"
		case !l.OK:
			mark = "NO  "
		}
		fmt.Printf("  %s %-14s %s\n", mark, l.Name, l.Detail)
		if !l.OK && l.Fix != "" {
			fmt.Printf("       %-14s fix: %s\n", "", l.Fix)
		}
	}
}
