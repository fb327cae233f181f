package otlp

import (
	"fmt"
	"log/slog"
	"net/url"
	"time"
)

// Protocols.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http"
)

// Defaults.
const (
	DefaultBatchRows = 512
	DefaultTimeout   = 10 * time.Second
	// persistEvery is how soon a failed save of the acknowledged seq is
	// tried again.
	persistEvery = time.Second
	// batchLinger is how long a batch waits for more rows after its
	// first: the export of a row is late by at most this much.
	batchLinger = 5 * time.Millisecond
	minBackoff  = 100 * time.Millisecond
	maxBackoff  = 10 * time.Second
)

// Config says where and how to export.
type Config struct {
	// Endpoint is the collector: host:port for gRPC (4317 by
	// convention), or host:port or an http(s) URL for HTTP (4318; the
	// path defaults to /v1/logs).
	Endpoint string
	Protocol string // ProtocolGRPC or ProtocolHTTP; "": gRPC
	// Insecure sends in plain text (a collector on loopback or in the
	// same trust zone); otherwise TLS with the system roots.
	Insecure bool
	Headers  map[string]string // sent with every export (an API key)
	// Timeout is one export call's limit; 0: DefaultTimeout.
	Timeout time.Duration
	// BatchRows is the most rows one export call carries; 0:
	// DefaultBatchRows.
	BatchRows int
	// StateFile keeps the acknowledged seq across restarts.
	StateFile string
	// Resource: who exports (host.id, service.version, coconut.host_key_id).
	HostID, HostName, Version, HostKeyID string
	Log                                  *slog.Logger
}

// Check validates c and fills in defaults.
func (c *Config) Check() error {
	if c.Endpoint == "" {
		return fmt.Errorf("%w: endpoint is empty", ErrConfig)
	}
	switch c.Protocol {
	case "":
		c.Protocol = ProtocolGRPC
	case ProtocolGRPC, ProtocolHTTP:
	default:
		return fmt.Errorf("%w: protocol %q: must be grpc or http", ErrConfig, c.Protocol)
	}
	if u, err := url.Parse(c.Endpoint); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		if u.User != nil {
			// The endpoint is logged and shown by doctor: credentials in
			// it would be too. Not echoed here either.
			return fmt.Errorf("%w: endpoint: credentials in the URL (user:password@) are refused; put them in headers_file", ErrConfig)
		}
		if c.Protocol == ProtocolGRPC {
			return fmt.Errorf("%w: endpoint %q: a URL is for protocol = \"http\"; grpc takes host:port", ErrConfig, c.Endpoint)
		}
		if u.Hostname() == "" {
			return fmt.Errorf("%w: endpoint %q: no host", ErrConfig, c.Endpoint)
		}
	} else if !hasPort(c.Endpoint) {
		return fmt.Errorf("%w: endpoint %q: want host:port or an http(s) URL", ErrConfig, c.Endpoint)
	}
	if c.BatchRows < 0 || c.BatchRows > 100_000 {
		return fmt.Errorf("%w: batch_rows %d: 0..100000", ErrConfig, c.BatchRows)
	}
	if c.BatchRows == 0 {
		c.BatchRows = DefaultBatchRows
	}
	if c.Timeout < 0 {
		return fmt.Errorf("%w: timeout %v is negative", ErrConfig, c.Timeout)
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.StateFile == "" {
		return fmt.Errorf("%w: no state file", ErrConfig)
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

func hasPort(hostport string) bool {
	u, err := url.Parse("//" + hostport)
	return err == nil && u.Host == hostport && u.Port() != "" && u.Hostname() != ""
}
