package daemon

// --- issue 17: the audit chain's export to an OpenTelemetry collector ---

import (
	"crypto/ed25519"
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/config"
	"github.com/coconut-os/coconut/internal/export/otlp"
	"github.com/coconut-os/coconut/internal/sign"
	"github.com/coconut-os/coconut/internal/statedir"
)

// openExport prepares the OTLP exporter [export.otlp] names (nil when it
// names no endpoint). A configuration or state file that cannot be used
// stops the daemon with the reason: a user who asked for export is never
// left without it silently. A collector that is down does not: rows wait
// in the chain and the lag (doctor, /metrics) says so.
func (d *Daemon) openExport(c config.ExportOTLP) error {
	if c.Endpoint == "" {
		return nil
	}
	timeout, err := c.TimeoutDuration()
	if err != nil {
		return fmt.Errorf("[export.otlp] %w", err)
	}
	var headers map[string]string
	if c.HeadersFile != "" {
		b, err := readSecretFile("[export.otlp] headers_file", c.HeadersFile)
		if err != nil {
			return err
		}
		if headers, err = otlp.ParseHeaders(b); err != nil {
			return fmt.Errorf("[export.otlp] headers_file %s: %w", c.HeadersFile, err)
		}
	}
	host, _ := os.Hostname()
	e, err := otlp.New(otlp.Config{
		Endpoint: c.Endpoint, Protocol: c.Protocol, Insecure: c.Insecure, Headers: headers,
		Timeout: timeout, BatchRows: c.BatchRows, StateFile: statedir.ExportOTLP(d.opts.StateDir),
		HostID: hostID(), HostName: host, Version: Version,
		HostKeyID: sign.KeyID(d.hostKey.Public().(ed25519.PublicKey)), Log: d.log,
	}, d.chain)
	if err != nil {
		return fmt.Errorf("[export.otlp]: %w", err)
	}
	d.exp = e
	return nil
}

// exportMetrics are the exporter's series for /metrics (none when off).
func (d *Daemon) exportMetrics() []prometheus.Gatherer {
	if d.exp == nil {
		return nil
	}
	return []prometheus.Gatherer{d.exp.Registry()}
}

// exportInfo is doctor's "export".
func (d *Daemon) exportInfo(doc *api.Doctor) {
	if d.exp == nil {
		return
	}
	st := d.exp.Status()
	doc.Export = &api.DoctorExport{Endpoint: st.Endpoint, Protocol: st.Protocol, AckedSeq: st.AckedSeq, LagRows: st.Lag,
		Exported: st.Exported, Resent: st.Resent, Failures: st.Failures, LastError: st.LastError}
	if !st.LastAck.IsZero() {
		t := st.LastAck.UTC()
		doc.Export.LastAck = &t
	}
}

// closeExport stops the exporter after the last row (daemon.stop) was
// appended; what it had not sent is sent by the next daemon.
func (d *Daemon) closeExport() {
	if d.exp == nil {
		return
	}
	if err := d.exp.Close(); err != nil {
		d.log.Error("close otlp export", "err", err)
	}
}
