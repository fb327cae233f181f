package top

import (
	"context"
	"sync"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/client"
)

// Poll is how often agents and usage are read.
const Poll = time.Second

// snapshot is one poll of the daemon.
type snapshot struct {
	at        time.Time
	agents    []api.Agent
	inference *api.Inference // nil when the daemon runs no broker
	usage     map[uint64]api.QuotaUsage
	err       error
}

// Source reads the daemon for the model.
type Source struct {
	C *client.Client
}

func (s Source) poll(ctx context.Context) snapshot {
	snap := snapshot{at: time.Now(), usage: map[uint64]api.QuotaUsage{}}
	snap.agents, snap.err = s.C.Agents(ctx, false)
	if snap.err != nil {
		return snap
	}
	if inf, err := s.C.Inference(ctx); err == nil {
		snap.inference = inf
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, a := range snap.agents {
		wg.Add(1)
		sem <- struct{}{}
		go func(aid uint64) {
			defer wg.Done()
			defer func() { <-sem }()
			if q, err := s.C.AgentQuota(ctx, aid, nil); err == nil {
				mu.Lock()
				snap.usage[aid] = q.Usage
				mu.Unlock()
			}
		}(a.AID)
	}
	wg.Wait()
	return snap
}

// Poll reads one snapshot now.
func (s Source) Poll(ctx context.Context) tea.Msg { return s.poll(ctx) }

// rowsMsg is a batch of rows from the event stream; streamErr says it
// ended (and is being resubscribed).
type rowsMsg []api.Record
type streamErr struct{ err error }

// Follow sends the stream's rows to send, in batches (the backlog of a long
// chain is many rows), until ctx ends, resubscribing after the last row
// when the daemon goes away.
func (s Source) Follow(ctx context.Context, send func(tea.Msg)) {
	var since uint64
	for ctx.Err() == nil {
		st, err := s.C.Events(ctx, since, client.EventFilter{})
		if err == nil {
			rows := make(chan api.Record, 4096)
			go func() {
				defer close(rows)
				for st.Next() {
					rows <- st.Record()
				}
			}()
			for r := range rows {
				batch := []api.Record{r}
			more:
				for len(batch) < 4096 {
					select {
					case r, ok := <-rows:
						if !ok {
							break more
						}
						batch = append(batch, r)
					default:
						break more
					}
				}
				send(rowsMsg(batch))
			}
			since, err = st.Last, st.Err()
			st.Close()
		}
		if ctx.Err() != nil {
			return
		}
		send(streamErr{err})
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
