package otlp

import (
	"errors"
	"github.com/coconut-os/coconut/internal/export/otlp/otlptest"
	"os"
	"path/filepath"
	"testing"
)

// The exporter against a real collector (the OpenTelemetry Collector's own
// OTLP receiver) is tested in test/otlpcollector, a module of its own so the
// collector's dependencies never reach this module's go.mod.

// The shared test rows and chain helpers (otlptest).
var (
	row        = otlptest.Row
	openChain  = otlptest.OpenChain
	appendRows = otlptest.AppendRows
)

// TestStateMismatch: a state file that names a row this chain does not
// have (another chain's, or a longer one's) is refused, never skipped past.
func TestStateMismatch(t *testing.T) {
	dir := t.TempDir()
	c := openChain(t, dir)
	defer c.Close()
	appendRows(t, c, 0, 10)
	state := filepath.Join(dir, "otlp.json")
	cfg := func() Config {
		return Config{Endpoint: "127.0.0.1:4317", Insecure: true, StateFile: state}
	}
	for _, tt := range []struct {
		name string
		a    acked
	}{
		{"past the head", acked{Seq: 11, Hash: genesisHash}},
		{"other hash", acked{Seq: 5, Hash: genesisHash}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := saveAcked(state, tt.a); err != nil {
				t.Fatal(err)
			}
			if _, err := New(cfg(), c); !errors.Is(err, ErrState) {
				t.Errorf("New with %+v: %v, want ErrState", tt.a, err)
			}
		})
	}
	if err := os.WriteFile(state, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg(), c); !errors.Is(err, ErrState) {
		t.Errorf("New with a damaged state file: %v, want ErrState", err)
	}
}

func TestConfigCheck(t *testing.T) {
	for _, tt := range []struct {
		name string
		c    Config
		ok   bool
	}{
		{"grpc host:port", Config{Endpoint: "collector:4317", StateFile: "s"}, true},
		{"http url", Config{Endpoint: "https://collector.example:4318", Protocol: "http", StateFile: "s"}, true},
		{"http host:port", Config{Endpoint: "127.0.0.1:4318", Protocol: "http", StateFile: "s"}, true},
		{"no endpoint", Config{StateFile: "s"}, false},
		{"no port", Config{Endpoint: "collector", StateFile: "s"}, false},
		{"url for grpc", Config{Endpoint: "http://collector:4317", StateFile: "s"}, false},
		{"bad protocol", Config{Endpoint: "collector:4317", Protocol: "udp", StateFile: "s"}, false},
		{"negative batch", Config{Endpoint: "collector:4317", BatchRows: -1, StateFile: "s"}, false},
		{"no state", Config{Endpoint: "collector:4317"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Check()
			if (err == nil) != tt.ok {
				t.Errorf("Check: %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrConfig) {
				t.Errorf("Check: %v is not ErrConfig", err)
			}
		})
	}
}

// FuzzLoadAcked: whatever the state file holds, loading it fails cleanly
// or gives a seq.
func FuzzLoadAcked(f *testing.F) {
	f.Add([]byte(`{"seq":12,"hash":"ab"}`))
	f.Add([]byte(`{"seq":-1}`))
	f.Add([]byte(``))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "s.json")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		a, err := loadAcked(p)
		if err != nil && !errors.Is(err, ErrState) {
			t.Fatalf("loadAcked: %v is not ErrState", err)
		}
		if err == nil && a.Seq == 0 && a.Hash != genesisHash {
			t.Fatalf("seq 0 with hash %q", a.Hash)
		}
	})
}
