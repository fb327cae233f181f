package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/coconut-os/coconut/api"
)

// groupWitness is doctor's group for the checkpoints' witnesses (issue 17).
const groupWitness = "audit witness"

func init() {
	registerDoctorCheck(
		doctorCheck{Group: groupWitness, Name: "cosigned", Run: witnessCosigned},
		// A fork makes doctor fail: the chain is not what the witness saw.
		doctorCheck{Group: groupWitness, Name: "fork", Matters: true, Run: witnessFork},
	)
}

// witnessCosigned says how far each witness is behind. A witness that is
// down or behind does not make doctor fail: the checkpoints wait in
// checkpoints.log and the next submission proves from where it stopped.
func witnessCosigned(_ context.Context, e *doctorEnv) checkResult {
	if e.d == nil || len(e.d.Witnesses) == 0 {
		return checkResult{Skip: true}
	}
	var parts, bad []string
	for _, w := range e.d.Witnesses {
		p := fmt.Sprintf("%s: cosigned %d, %d checkpoints behind", w.Name, w.CosignedSize, w.LagCheckpoints)
		if w.LastError != "" {
			bad = append(bad, p+"; failing: "+w.LastError)
		}
		parts = append(parts, p)
	}
	if len(bad) > 0 {
		return checkResult{OK: false, Detail: strings.Join(bad, "; "),
			Fix: "reach the witness (it is retried with backoff), or fix its [[witness]] url/vkey in coconut.toml; a witness that refuses the log must list this host's origin and verifier key (coconutd logs both at start)"}
	}
	return checkResult{OK: true, Detail: strings.Join(parts, "; ")}
}

func witnessFork(_ context.Context, e *doctorEnv) checkResult {
	if e.d == nil || len(e.d.Witnesses) == 0 {
		return checkResult{Skip: true}
	}
	var alarms []string
	for _, w := range e.d.Witnesses {
		if w.Alarm != "" {
			alarms = append(alarms, w.Alarm)
		}
	}
	if len(alarms) == 0 {
		return checkResult{OK: true, Detail: "no witness has seen another history of this chain"}
	}
	return checkResult{OK: false, Detail: strings.Join(alarms, "; "),
		Fix: "the chain differs from what a witness cosigned: keep the state directory as evidence and run coconut audit verify --witness VKEY; the alarm stays until STATE/chain/witness/<witness>.json is removed"}
}

// printWitnesses prints one line per witness and an ALARM line for each
// that saw another history.
func printWitnesses(d *api.Doctor) {
	for i, w := range d.Witnesses {
		label := ""
		if i == 0 {
			label = "witnesses:"
		}
		line := fmt.Sprintf("%-12s %s %s: cosigned size %d, %d checkpoints (%d rows) behind", label, w.Name, w.URL, w.CosignedSize, w.LagCheckpoints, w.LagRows)
		if w.CosignedAt != nil {
			line += ", at " + w.CosignedAt.Local().Format(time.RFC3339)
		}
		if w.LastError != "" {
			line += fmt.Sprintf("; last error (%d in a row): %s", w.Failures, w.LastError)
		}
		fmt.Println(line)
		if w.Alarm != "" {
			at := ""
			if w.AlarmAt != nil {
				at = " (since " + w.AlarmAt.Local().Format(time.RFC3339) + ")"
			}
			fmt.Printf("  ALARM      %s%s\n", w.Alarm, at)
		}
	}
}
