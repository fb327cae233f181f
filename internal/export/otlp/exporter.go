package otlp

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"

	"github.com/coconut-os/coconut/internal/audit"
)

// Chain is what the exporter reads: *audit.Chain.
type Chain interface {
	Follow(ctx context.Context, q audit.Query) (<-chan audit.Record, error)
	Query(q audit.Query) ([]audit.Record, error)
	Head() (seq uint64, hash string)
}

// sender is the OTLP exporter of the configured protocol.
type sender interface {
	Export(ctx context.Context, recs []sdklog.Record) error
	Shutdown(ctx context.Context) error
}

// Status is where export stands (doctor's "export", /metrics).
type Status struct {
	Endpoint string
	Protocol string
	// AckedSeq is the last row the collector acknowledged; Head the
	// chain's last row; Lag = Head - AckedSeq.
	AckedSeq, Head, Lag uint64
	// Exported counts rows acknowledged since this daemon started;
	// Resent rows sent again after a failed call; Failures failed calls.
	Exported, Resent, Failures uint64
	LastError                  string // the last failure, "" once a call succeeds
	LastAck                    time.Time
}

// Exporter sends the chain's rows to a collector, at least once, in seq
// order. It runs in its own goroutine; the chain never waits for it.
type Exporter struct {
	cfg    Config
	chain  Chain
	send   sender
	lp     *sdklog.LoggerProvider
	logger otellog.Logger
	col    *collect

	mu        sync.Mutex
	acked     acked // last acknowledged row
	persisted uint64
	st        Status

	cancel context.CancelFunc
	done   chan struct{}
}

// New checks cfg, reads the acknowledged seq from cfg.StateFile (which
// must name a row of chain) and prepares the OTLP client; Start begins.
func New(cfg Config, chain Chain) (*Exporter, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	a, err := loadAcked(cfg.StateFile)
	if err != nil {
		return nil, err
	}
	if err := checkAcked(chain, a, cfg.StateFile); err != nil {
		return nil, err
	}
	s, err := newSender(cfg)
	if err != nil {
		return nil, err
	}
	res := resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName("coconutd"), semconv.ServiceVersion(cfg.Version),
		semconv.HostID(cfg.HostID), semconv.HostName(cfg.HostName),
		attribute.String(KeyHostKeyID, cfg.HostKeyID))
	col := &collect{}
	// No limits (a row is exported whole) and no de-duplication: a row's
	// keys are distinct by construction (logRecord), and the SDK's check
	// was a sixth of the exporter's CPU.
	lp := sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(col),
		sdklog.WithAttributeCountLimit(-1), sdklog.WithAttributeValueLengthLimit(-1), sdklog.WithAllowKeyDuplication())
	e := &Exporter{cfg: cfg, chain: chain, send: s, lp: lp, col: col,
		logger: lp.Logger("github.com/coconut-os/coconut/audit", otellog.WithInstrumentationVersion(cfg.Version)),
		acked:  a, persisted: a.Seq, done: make(chan struct{})}
	e.st = Status{Endpoint: cfg.Endpoint, Protocol: cfg.Protocol, AckedSeq: a.Seq}
	return e, nil
}

func newSender(cfg Config) (sender, error) {
	ctx := context.Background()
	if cfg.Protocol == ProtocolHTTP {
		opts := []otlploghttp.Option{otlploghttp.WithTimeout(cfg.Timeout),
			otlploghttp.WithRetry(otlploghttp.RetryConfig{Enabled: false})}
		if u, err := url.Parse(cfg.Endpoint); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
			if u.Path == "" || u.Path == "/" {
				u.Path = "/v1/logs" // the OTLP/HTTP logs path, as a URL without one means
			}
			opts = append(opts, otlploghttp.WithEndpointURL(u.String()))
		} else {
			opts = append(opts, otlploghttp.WithEndpoint(cfg.Endpoint))
			if cfg.Insecure {
				opts = append(opts, otlploghttp.WithInsecure())
			}
		}
		if len(cfg.Headers) > 0 {
			opts = append(opts, otlploghttp.WithHeaders(cfg.Headers))
		}
		s, err := otlploghttp.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("otlp http exporter: %w", err)
		}
		return s, nil
	}
	opts := []otlploggrpc.Option{otlploggrpc.WithEndpoint(cfg.Endpoint), otlploggrpc.WithTimeout(cfg.Timeout),
		otlploggrpc.WithRetry(otlploggrpc.RetryConfig{Enabled: false})}
	if cfg.Insecure {
		opts = append(opts, otlploggrpc.WithInsecure())
	}
	if len(cfg.Headers) > 0 {
		opts = append(opts, otlploggrpc.WithHeaders(cfg.Headers))
	}
	s, err := otlploggrpc.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("otlp grpc exporter: %w", err)
	}
	return s, nil
}

// Start begins exporting from the row after the acknowledged one.
func (e *Exporter) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go e.run(ctx)
}

// Close stops exporting (a batch in flight is abandoned and sent again
// next time), saves the acknowledged seq and closes the client.
func (e *Exporter) Close() error {
	if e.cancel != nil {
		e.cancel()
		<-e.done
	}
	err := e.persist()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return errors.Join(err, e.send.Shutdown(sctx), e.lp.Shutdown(sctx))
}

// Status returns where export stands now.
func (e *Exporter) Status() Status {
	head, _ := e.chain.Head()
	e.mu.Lock()
	st := e.st
	e.mu.Unlock()
	st.Head = max(head, st.AckedSeq)
	st.Lag = st.Head - st.AckedSeq
	return st
}

// persist writes the acknowledged seq if it moved since the last write.
func (e *Exporter) persist() error {
	e.mu.Lock()
	a, done := e.acked, e.persisted
	e.mu.Unlock()
	if a.Seq == done {
		return nil
	}
	if err := saveAcked(e.cfg.StateFile, a); err != nil {
		return fmt.Errorf("save export state: %w", err)
	}
	e.mu.Lock()
	e.persisted = a.Seq
	e.mu.Unlock()
	return nil
}

func (e *Exporter) dirty() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.acked.Seq != e.persisted
}

// run follows the chain from the acknowledged seq and exports batch after
// batch until ctx ends.
func (e *Exporter) run(ctx context.Context) {
	defer close(e.done)
	e.mu.Lock()
	read, prev := e.acked.Seq, e.acked.Hash // the last row taken from the chain
	e.mu.Unlock()
	var ch <-chan audit.Record
	f := follower{chain: e.chain}
	defer f.stop()
	batch := make([]audit.Record, 0, e.cfg.BatchRows)
	backoff := minBackoff
	linger := time.NewTimer(batchLinger)
	linger.Stop()
	for ctx.Err() == nil {
		if ch == nil {
			c, err := f.follow(ctx, read)
			if err != nil {
				if errors.Is(err, audit.ErrClosed) {
					return
				}
				e.failed(err, 0)
				if !sleep(ctx, &backoff) {
					return
				}
				continue
			}
			ch = c
		}
		// A batch: wait for one row, then take what else is ready.
		batch = batch[:0]
		var tick <-chan time.Time
		if e.dirty() {
			tick = time.After(persistEvery)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick: // the last save failed: try again
			e.persistLogged()
			continue
		case r, ok := <-ch:
			if !ok {
				ch = nil // dropped for falling behind, or the chain closed
				continue
			}
			batch = append(batch, r)
		}
		// Then what arrives within batchLinger: a busy chain fills the
		// batch, so the save after each acknowledged batch (an fsync) and
		// the call itself are paid per BatchRows rows, not per row.
		linger.Reset(batchLinger)
	fill:
		for len(batch) < e.cfg.BatchRows {
			select {
			case r, ok := <-ch:
				if !ok {
					ch = nil
					break fill
				}
				batch = append(batch, r)
			case <-linger.C:
				break fill
			case <-ctx.Done():
				return
			}
		}
		linger.Stop()
		// Rows arrive in seq order with no gap; anything else is a bug
		// here or in the chain: re-read from the last good row.
		for i, r := range batch {
			if r.Seq != read+uint64(i)+1 {
				e.cfg.Log.Error("otlp export: rows out of order, re-reading", "want", read+uint64(i)+1, "got", r.Seq)
				batch, ch = batch[:i], nil
				break
			}
		}
		if len(batch) == 0 {
			continue
		}
		recs, err := e.build(ctx, batch, prev)
		if err != nil {
			e.failed(err, 0)
			e.cfg.Log.Error("otlp export stopped: a row cannot be exported", "seq", batch[0].Seq, "err", err)
			<-ctx.Done()
			return
		}
		for {
			err := e.send.Export(ctx, recs)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			e.failed(err, len(batch))
			if !sleep(ctx, &backoff) {
				return
			}
		}
		backoff = minBackoff
		last := batch[len(batch)-1]
		read, prev = last.Seq, last.Hash
		e.mu.Lock()
		e.acked = acked{Seq: last.Seq, Hash: last.Hash}
		e.st.AckedSeq = last.Seq
		e.st.Exported += uint64(len(batch))
		e.st.LastError = ""
		e.st.LastAck = time.Now()
		e.mu.Unlock()
		// Saved before the next batch is sent, so a crash re-sends at
		// most the batch in flight, never one acknowledged before it.
		e.persistLogged()
	}
}

func (e *Exporter) persistLogged() {
	if err := e.persist(); err != nil {
		e.cfg.Log.Error("otlp export", "err", err)
	}
}

// failed records a failed call (resent: rows that will be sent again).
func (e *Exporter) failed(err error, resent int) {
	e.mu.Lock()
	first := e.st.LastError == ""
	e.st.Failures++
	e.st.Resent += uint64(resent)
	e.st.LastError = err.Error()
	e.mu.Unlock()
	if first {
		e.cfg.Log.Warn("otlp export failing; rows wait in the chain and are sent again", "endpoint", e.cfg.Endpoint, "err", err)
	}
}

// build turns rows into SDK log records through the logger provider (which
// stamps the resource and scope).
func (e *Exporter) build(ctx context.Context, rows []audit.Record, prev string) ([]sdklog.Record, error) {
	e.col.recs = e.col.recs[:0]
	for _, r := range rows {
		lr, err := logRecord(r, prev)
		if err != nil {
			return nil, fmt.Errorf("row %d: %w", r.Seq, err)
		}
		e.logger.Emit(ctx, lr)
		prev = r.Hash
	}
	if len(e.col.recs) != len(rows) {
		return nil, fmt.Errorf("logger provider kept %d of %d records", len(e.col.recs), len(rows))
	}
	return e.col.recs, nil
}

// follower holds one Follow at a time: a new one cancels the last.
type follower struct {
	chain  Chain
	cancel context.CancelFunc
}

func (f *follower) follow(ctx context.Context, after uint64) (<-chan audit.Record, error) {
	f.stop()
	fctx, cancel := context.WithCancel(ctx)
	f.cancel = cancel
	return f.chain.Follow(fctx, audit.Query{AfterSeq: after})
}

func (f *follower) stop() {
	if f.cancel != nil {
		f.cancel()
	}
}

// sleep waits *d (doubling it up to maxBackoff) or until ctx ends.
func sleep(ctx context.Context, d *time.Duration) bool {
	t := time.NewTimer(*d)
	defer t.Stop()
	*d = min(2**d, maxBackoff)
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// collect is the provider's processor: it keeps what is emitted for the
// exporter's own loop, which calls the OTLP exporter synchronously so it
// knows which rows were acknowledged (the SDK's batch processor would
// not say).
type collect struct{ recs []sdklog.Record }

func (c *collect) OnEmit(_ context.Context, r *sdklog.Record) error {
	c.recs = append(c.recs, r.Clone())
	return nil
}
func (c *collect) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }
func (c *collect) Shutdown(context.Context) error                         { return nil }
func (c *collect) ForceFlush(context.Context) error                       { return nil }
