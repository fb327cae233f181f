package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"
)

// prompts are the tiny questions each role asks the model.
var prompts = map[string]string{
	rolePlanner:    "You plan a small software project. In one sentence, what should the team do next?",
	roleResearcher: "You research a codebase. In one sentence, what would you look at next?",
	roleCoder:      "You write Go. In one sentence, what function would you write next?",
	roleReviewer:   "You review code. In one sentence, what would you check next?",
}

// run works until ctx is done or cfg.Duration has passed, one step per
// interval. It blocks on a timer between steps, never spins. The reason it
// stopped is logged; ctx's cause (set by main on a signal) names it.
func run(ctx context.Context, cfg config, l *log.Logger) {
	l.Printf("dream-agent started: role=%s aid=%s name=%s class=%s pid=%d",
		cfg.Role, orDash(cfg.AID), orDash(cfg.Name), orDash(cfg.Class), os.Getpid())
	dur := "until signalled"
	if cfg.Duration > 0 {
		dur = cfg.Duration.String()
	}
	l.Printf("project %s, notes %s, interval %v, duration %s", cfg.Project, cfg.Notes, cfg.Interval, dur)

	in, err := newInferer(cfg)
	switch {
	case err != nil:
		l.Printf("inference: disabled: %v", err)
	case in == nil:
		l.Printf("inference: disabled: neither OPENAI_BASE_URL nor COCONUT_BROKER_SOCKET is set")
	default:
		l.Printf("inference: via %s, model %s, every %d intervals", in.via, in.model, cfg.InferEvery)
	}

	w := newWorker(cfg, l)
	var deadline <-chan time.Time
	if cfg.Duration > 0 {
		t := time.NewTimer(cfg.Duration)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()

	for i := 0; ; i++ {
		if cfg.ProbeSSH && i%probeEvery == 0 {
			l.Print(probeSSH(cfg.Home))
		}
		w.step(i)
		if in != nil && i%cfg.InferEvery == 0 {
			infer(ctx, in, cfg.Role, l)
		}
		select {
		case <-ctx.Done():
			l.Printf("stopping after %d steps: %v", i+1, context.Cause(ctx))
			return
		case <-deadline:
			l.Printf("stopping after %d steps: duration %v reached", i+1, cfg.Duration)
			return
		case <-tick.C:
		}
	}
}

// infer makes one completion and logs the tokens it cost or why it failed.
func infer(ctx context.Context, in *inferer, role string, l *log.Logger) {
	start := time.Now()
	u, err := in.complete(ctx, prompts[role])
	if err != nil {
		if ctx.Err() != nil {
			return // stopping; run logs why
		}
		l.Printf("inference: %s", describe(err))
		return
	}
	l.Printf("inference: %d tokens used (prompt %d, completion %d) in %v",
		u.Total, u.Prompt, u.Completion, time.Since(start).Round(time.Millisecond))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// errSignal is the cause main gives the context when a signal arrives.
var errSignal = errors.New("signal")

func signalCause(sig os.Signal) error {
	return fmt.Errorf("%w: received %v", errSignal, sig)
}
