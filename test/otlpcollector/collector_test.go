package otlpcollector_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/coconut-os/coconut/internal/export/otlp"
)

// got is one log record as the collector received it.
type got struct {
	body     string
	attrs    map[string]any
	resource map[string]any
	scope    string
	event    string
	severity string
}

// sink is the collector pipeline's end: every record received, by seq.
type sink struct {
	mu      sync.Mutex
	bySeq   map[int64][]got
	records int
	refuse  bool // answer every export with an error
	// countOnly keeps no records, only the count (the benchmark).
	countOnly bool
}

func newSink() *sink { return &sink{bySeq: map[int64][]got{}} }

func (s *sink) consume(_ context.Context, ld plog.Logs) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refuse {
		return errors.New("sink refuses (test)")
	}
	for i := 0; i < ld.ResourceLogs().Len(); i++ {
		rl := ld.ResourceLogs().At(i)
		res := rl.Resource().Attributes().AsRaw()
		for j := 0; j < rl.ScopeLogs().Len(); j++ {
			sl := rl.ScopeLogs().At(j)
			for k := 0; k < sl.LogRecords().Len(); k++ {
				lr := sl.LogRecords().At(k)
				if s.countOnly {
					s.records++
					continue
				}
				g := got{body: lr.Body().AsString(), attrs: lr.Attributes().AsRaw(), resource: res,
					scope: sl.Scope().Name(), event: lr.EventName(), severity: lr.SeverityText()}
				seq, _ := lr.Attributes().Get(otlp.KeySeq)
				if seq.Type() != pcommon.ValueTypeInt {
					continue
				}
				s.bySeq[seq.Int()] = append(s.bySeq[seq.Int()], g)
				s.records++
			}
		}
	}
	return nil
}

func (s *sink) setRefuse(v bool) {
	s.mu.Lock()
	s.refuse = v
	s.mu.Unlock()
}

// missing returns the seqs of 1..n not received, and how many received
// records were duplicates.
func (s *sink) missing(n uint64) (missing []uint64, dups int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for q := uint64(1); q <= n; q++ {
		switch c := len(s.bySeq[int64(q)]); {
		case c == 0:
			missing = append(missing, q)
		case c > 1:
			dups += c - 1
		}
	}
	return missing, dups
}

func (s *sink) get(seq uint64) []got {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bySeq[int64(seq)]
}

// collector is the OpenTelemetry Collector's own OTLP receiver, embedded:
// started, stopped and started again on one address.
type collector struct {
	t        testing.TB
	protocol string
	addr     string
	sink     *sink
	rcv      receiver.Logs
}

func startCollector(t testing.TB, protocol string) *collector {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := &collector{t: t, protocol: protocol, addr: addr, sink: newSink()}
	c.start()
	t.Cleanup(c.stop)
	return c
}

// endpoint is what the exporter is configured with.
func (c *collector) endpoint() string {
	if c.protocol == otlp.ProtocolHTTP {
		return "http://" + c.addr
	}
	return c.addr
}

func (c *collector) start() {
	c.t.Helper()
	f := otlpreceiver.NewFactory()
	cfg := f.CreateDefaultConfig().(*otlpreceiver.Config)
	if c.protocol == otlp.ProtocolHTTP {
		cfg.Protocols.HTTP.GetOrInsertDefault().ServerConfig.NetAddr.Endpoint = c.addr
	} else {
		cfg.Protocols.GRPC.GetOrInsertDefault().NetAddr.Endpoint = c.addr
	}
	cons, err := consumer.NewLogs(c.sink.consume)
	if err != nil {
		c.t.Fatal(err)
	}
	r, err := f.CreateLogs(context.Background(), receivertest.NewNopSettings(f.Type()), cfg, cons)
	if err != nil {
		c.t.Fatal(err)
	}
	// The port was just free; a restart may find it in TIME_WAIT briefly.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err = r.Start(context.Background(), componenttest.NewNopHost())
		if err == nil || time.Now().After(deadline) || !strings.Contains(err.Error(), "address already in use") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatalf("start OTLP receiver: %v", err)
	}
	c.rcv = r
}

func (c *collector) stop() {
	if c.rcv != nil {
		if err := c.rcv.Shutdown(context.Background()); err != nil {
			c.t.Errorf("stop OTLP receiver: %v", err)
		}
		c.rcv = nil
	}
}
