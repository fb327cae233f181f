package main

import (
	"context"
	"log"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRunInfersEveryFewIntervals(t *testing.T) {
	srv := httptest.NewServer(&fakeBackend{})
	defer srv.Close()
	cfg := testConfig(t.TempDir(), roleCoder, "c")
	cfg.Duration, cfg.Interval, cfg.InferEvery = 280*time.Millisecond, 50*time.Millisecond, 2
	cfg.BaseURL = srv.URL + "/v1"

	var logs syncBuffer
	run(context.Background(), cfg, log.New(&logs, "", 0))
	out := logs.String()
	steps := strings.Count(out, "wrote ")
	calls := strings.Count(out, "inference: 17 tokens used")
	// Steps 0, 2, 4… call inference: half the steps, rounded up.
	if steps < 4 || calls != (steps+1)/2 {
		t.Errorf("%d steps, %d inference calls:\n%s", steps, calls, out)
	}
	if !strings.Contains(out, "inference: via "+srv.URL+"/v1, model sim, every 2 intervals") {
		t.Errorf("no inference start line:\n%s", out)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	cfg := testConfig(t.TempDir(), rolePlanner, "p")
	cfg.Interval = time.Hour // only the cancel can end it
	ctx, cancel := context.WithCancelCause(context.Background())
	var logs syncBuffer
	done := make(chan struct{})
	go func() {
		run(ctx, cfg, log.New(&logs, "", 0))
		close(done)
	}()
	cancel(signalCause(syscall.SIGTERM))
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("run did not stop")
	}
	if out := logs.String(); !strings.Contains(out, "stopping after 1 steps: signal: received terminated") {
		t.Errorf("log:\n%s", out)
	}
}
