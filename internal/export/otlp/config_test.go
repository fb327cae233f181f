package otlp

import (
	"errors"
	"strings"
	"testing"
)

// TestCheckEndpoint: a bad endpoint is refused with ErrConfig, and
// credentials in a URL are refused without being echoed (the endpoint is
// logged and shown by doctor).
func TestCheckEndpoint(t *testing.T) {
	for _, tc := range []struct {
		endpoint, protocol string
		ok                 bool
	}{
		{"127.0.0.1:4317", "grpc", true},
		{"http://127.0.0.1:4318", "http", true},
		{"https://collector.example:4318/v1/logs", "http", true},
		{"127.0.0.1", "grpc", false},
		{"http://127.0.0.1:4318", "grpc", false},
		{"http://:4318", "http", false},
		{"https://user:s3cret@collector.example:4318", "http", false},
	} {
		c := Config{Endpoint: tc.endpoint, Protocol: tc.protocol, StateFile: t.TempDir() + "/otlp.json"}
		err := c.Check()
		if (err == nil) != tc.ok {
			t.Errorf("%s %s: %v, want ok=%v", tc.protocol, tc.endpoint, err, tc.ok)
			continue
		}
		if err != nil && !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v is not ErrConfig", tc.endpoint, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("the error echoes the credentials: %v", err)
		}
	}
}
