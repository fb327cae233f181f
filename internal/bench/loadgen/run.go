package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// Run is one load phase: tenants calling a target for Duration.
type Run struct {
	Target  Target
	Tenants []Tenant
	// Duration is how long new requests are issued. Requests started
	// before Warmup are sent but not measured.
	Duration, Warmup time.Duration
	// Grace bounds how long requests outstanding at Duration may take to
	// finish; closed loops keep their load on until the open-loop
	// tenants' last requests are done, so those are measured under the
	// same conditions as the rest, then theirs are cancelled.
	Grace time.Duration
	Seed  uint64
}

// Result holds every request of a run, per tenant in Run.Tenants order.
type Result struct {
	Run     Run
	Records [][]Record
	Elapsed time.Duration
}

func (r Run) validate() error {
	if len(r.Tenants) == 0 {
		return fmt.Errorf("%w: no tenants", ErrConfig)
	}
	if r.Duration <= 0 || r.Warmup < 0 || r.Warmup >= r.Duration || r.Grace < 0 {
		return fmt.Errorf("%w: need 0 <= warmup < duration and grace >= 0", ErrConfig)
	}
	for _, t := range r.Tenants {
		if err := t.validate(); err != nil {
			return err
		}
	}
	return nil
}

// Do runs the phase. Only a bad config is an error: failed requests are
// records with Err set.
func (r Run) Do(ctx context.Context) (Result, error) {
	if err := r.validate(); err != nil {
		return Result{}, err
	}
	recs := make([][]Record, len(r.Tenants))
	var mu sync.Mutex
	add := func(i int, rec Record) {
		mu.Lock()
		recs[i] = append(recs[i], rec)
		mu.Unlock()
	}
	hard, cancelAll := context.WithTimeout(ctx, r.Duration+r.Grace)
	defer cancelAll()
	// Closed loops stop when the open-loop tenants are done.
	closedCtx, stopClosed := context.WithCancel(hard)
	defer stopClosed()
	var deadline time.Time
	hasOpen := false
	for _, t := range r.Tenants {
		hasOpen = hasOpen || t.Outstanding <= 0
	}
	openFinished := make(chan struct{})
	// keepClosed: closed loops issue until the deadline and, where there
	// are open-loop tenants, until their last request is done.
	keepClosed := func() bool {
		if closedCtx.Err() != nil {
			return false
		}
		if time.Now().Before(deadline) {
			return true
		}
		select {
		case <-openFinished:
			return false
		default:
			return hasOpen
		}
	}
	t0 := time.Now()
	deadline = t0.Add(r.Duration)
	var open, closed sync.WaitGroup
	for i, tn := range r.Tenants {
		prompt := strings.Repeat("x", tn.PromptBytes)
		if tn.Outstanding > 0 {
			for k := 0; k < tn.Outstanding; k++ {
				rng := rand.New(rand.NewPCG(r.Seed, uint64(i)<<32|uint64(k)))
				closed.Add(1)
				go func() {
					defer closed.Done()
					for keepClosed() {
						add(i, r.Target.Do(closedCtx, t0, tn.ID, prompt, tn.MaxTokens.Draw(rng), tn.Stream))
					}
				}()
			}
			continue
		}
		rng := rand.New(rand.NewPCG(r.Seed, uint64(i)<<32))
		open.Add(1)
		go func() {
			defer open.Done()
			var reqs sync.WaitGroup
			defer reqs.Wait()
			next := t0.Add(tn.nextGap(rng))
			for next.Before(deadline) {
				select {
				case <-time.After(time.Until(next)):
				case <-hard.Done():
					return
				}
				n := tn.MaxTokens.Draw(rng)
				reqs.Add(1)
				go func() {
					defer reqs.Done()
					add(i, r.Target.Do(hard, t0, tn.ID, prompt, n, tn.Stream))
				}()
				next = next.Add(tn.nextGap(rng))
			}
		}()
	}
	open.Wait()
	close(openFinished)
	if hasOpen {
		// The flood was only there to load the measured requests.
		stopClosed()
	}
	closed.Wait()
	return Result{Run: r, Records: recs, Elapsed: time.Since(t0)}, nil
}
