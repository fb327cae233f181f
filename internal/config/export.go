package config

import (
	"fmt"
	"time"
)

// Export is the [export] table: where the audit chain is sent besides
// this host (issue 17).
type Export struct {
	// OTLP is [export.otlp]: OpenTelemetry logs to a collector
	// (internal/export/otlp). Off unless endpoint is set.
	OTLP ExportOTLP `toml:"otlp"`
}

// ExportOTLP is [export.otlp].
type ExportOTLP struct {
	// Endpoint is the collector: host:port for grpc, host:port or an
	// http(s) URL for http; "" turns export off.
	Endpoint string `toml:"endpoint"`
	Protocol string `toml:"protocol"` // grpc (default) or http
	// Insecure sends in plain text (a collector on loopback); otherwise TLS.
	Insecure bool `toml:"insecure"`
	// HeadersFile names a file of "Name: value" lines sent with every
	// export call (a collector's API key), so no secret sits in this file.
	HeadersFile string `toml:"headers_file"`
	// Timeout is one export call's limit ("10s" when empty).
	Timeout string `toml:"timeout"`
	// BatchRows is the most rows one call carries (512 when 0).
	BatchRows int `toml:"batch_rows"`
}

// TimeoutDuration parses Timeout (0 when empty).
func (e ExportOTLP) TimeoutDuration() (time.Duration, error) {
	if e.Timeout == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(e.Timeout)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("timeout %q: want a positive duration such as \"10s\"", e.Timeout)
	}
	return d, nil
}

func (e ExportOTLP) validate() error {
	if e.Endpoint == "" {
		if e.Protocol != "" || e.Insecure || e.HeadersFile != "" || e.Timeout != "" || e.BatchRows != 0 {
			return fmt.Errorf("settings without an endpoint: set endpoint to export, or remove them")
		}
		return nil
	}
	switch e.Protocol {
	case "", "grpc", "http":
	default:
		return fmt.Errorf("protocol %q: must be grpc or http", e.Protocol)
	}
	if e.BatchRows < 0 || e.BatchRows > 100_000 {
		return fmt.Errorf("batch_rows %d: 0..100000", e.BatchRows)
	}
	_, err := e.TimeoutDuration()
	return err
}
