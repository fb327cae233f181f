package cli

import (
	"context"
	"fmt"
)

// groupExport is doctor's group for the audit chain's export (issue 17).
const groupExport = "audit export"

func init() {
	registerDoctorCheck(doctorCheck{Group: groupExport, Name: "otlp", Run: exportOTLP})
}

// exportOTLP reports the OTLP export's lag. It does not make doctor fail:
// rows the collector has not acknowledged wait in the chain and are sent
// once it answers, so a collector down loses nothing.
func exportOTLP(_ context.Context, e *doctorEnv) checkResult {
	if e.d == nil || e.d.Export == nil {
		return checkResult{Skip: true} // no daemon, or [export.otlp] names no endpoint
	}
	x := e.d.Export
	detail := fmt.Sprintf("%s (%s): acknowledged up to seq %d, lag %d rows; %d rows sent since start", x.Endpoint, x.Protocol, x.AckedSeq, x.LagRows, x.Exported)
	if x.LastError != "" {
		return checkResult{OK: false, Detail: detail + "; failing: " + x.LastError,
			Fix: "start or reach the collector at " + x.Endpoint + " (rows wait in the chain and are sent when it answers), or fix [export.otlp] in coconut.toml"}
	}
	return checkResult{OK: true, Detail: detail}
}
