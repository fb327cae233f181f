package bench

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/client"
	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/notify"
	"github.com/coconut-os/coconut/internal/usage"
)

// benchNotifyCmd is `coconut bench notify` (issue 13): how long from a
// deny's audit row to its notification on the session bus, against the
// same rows' arrival on the event stream (the baseline: what notify adds
// is the agent lookup, the D-Bus call and the notification server).
func benchNotifyCmd(g *globals) *cobra.Command {
	var denies int
	var gap time.Duration
	cmd := &cobra.Command{
		Use:   "notify [--denies N] [--gap D]",
		Short: "Deny to desktop notification on the bus (p50, p99) against deny to row on the event stream",
		Long: "Starts a private coconutd (portable enforcer), a private dbus-daemon with a recording\n" +
			"notification server, and `coconut notify` (every deny shown), then runs an agent that\n" +
			"is denied N times, D apart. Latency is measured from each deny row's time in the chain.\n" +
			"Needs root and dbus-daemon.",
		Args: usage.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if denies < 10 || denies > 100000 || gap < 0 || gap > time.Second {
				return usage.Errorf("--denies 10..100000, --gap 0..1s")
			}
			if os.Geteuid() != 0 {
				return fmt.Errorf("bench notify needs root (a private coconutd)")
			}
			res, err := benchNotify(cmd.Context(), denies, gap)
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(os.Stdout, res)
			}
			h := res["headline"].(map[string]float64)
			fmt.Printf("%d denies, %v apart\n", denies, gap)
			fmt.Printf("deny -> notification on the bus: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", h["notify_p50_ms"], h["notify_p99_ms"], h["notify_max_ms"])
			fmt.Printf("deny -> row on the event stream: p50 %.2f ms, p99 %.2f ms (baseline)\n", h["stream_p50_ms"], h["stream_p99_ms"])
			fmt.Printf("p99 ratio %.2f; lost %v, shown twice %v\n", h["p99_ratio"], h["lost"], h["repeated"])
			return nil
		},
	}
	cmd.Flags().IntVar(&denies, "denies", 500, "how many denies")
	cmd.Flags().DurationVar(&gap, "gap", 10*time.Millisecond, "pause between denies")
	return cmd
}

func benchNotify(ctx context.Context, denies int, gap time.Duration) (map[string]any, error) {
	coconutd, err := findBeside("coconutd")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "coconut-bench-notify-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	d, err := startDaemon(ctx, coconutd, filepath.Join(dir, "daemon"))
	if err != nil {
		return nil, err
	}
	defer d.stop()
	bus, err := notify.StartBus(dir)
	if err != nil {
		return nil, err
	}
	defer bus.Stop()
	rec, err := notify.NewRecorder(bus.Addr)
	if err != nil {
		return nil, err
	}
	defer rec.Close()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("not for agents\n"), 0o644); err != nil {
		return nil, err
	}
	doc, err := d.c.Doctor(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// The baseline: the same denies on the event stream.
	st, err := d.c.Events(ctx, doc.ChainHead, client.EventFilter{Result: "deny"})
	if err != nil {
		return nil, err
	}
	streamAt := map[uint64]time.Time{}
	streamDone := make(chan struct{})
	go func() {
		defer close(streamDone)
		for st.Next() {
			streamAt[st.Record().Seq] = time.Now()
		}
	}()
	// coconut notify itself, showing every deny, on the private bus.
	os.Setenv("DBUS_SESSION_BUS_ADDRESS", bus.Addr)
	state := filepath.Join(dir, "notify.json")
	notifyErr := make(chan error, 1)
	go func() {
		notifyErr <- notify.Run(ctx, notify.Options{Client: d.c, Socket: d.c.SocketPath(), StatePath: state, Period: -1})
	}()
	for i := 0; ; i++ {
		if _, err := os.Stat(state); err == nil {
			break
		}
		select {
		case err := <-notifyErr:
			return nil, fmt.Errorf("coconut notify: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		if i > 500 {
			return nil, fmt.Errorf("coconut notify did not start in 10s")
		}
	}
	time.Sleep(200 * time.Millisecond) // its subscription follows the state file

	script := fmt.Sprintf("for i in $(eval echo {1..%d}); do read -r l < %s 2>/dev/null; sleep %.3f; done", denies, secret, gap.Seconds())
	aid, logs, err := d.runAgent(ctx, api.RunRequest{Name: "bench-denier", Workdir: "/", Caps: []string{"fs.exec:/usr/bin/sleep"},
		Command: []string{"/bin/bash", "-c", script}}, 10*time.Minute)
	if err != nil {
		return nil, fmt.Errorf("%v (log: %s)", err, tail(logs))
	}
	var rows []api.Record
	for q := (client.AuditQuery{AID: &aid, Type: audit.TypeCapDeny}); ; {
		page, err := d.c.AgentAuditQuery(ctx, q)
		if err != nil {
			return nil, err
		}
		rows = append(rows, page.Records...)
		if page.Next == 0 {
			break
		}
		q.AfterSeq = page.Next
	}
	if len(rows) < denies {
		return nil, fmt.Errorf("the agent left %d deny rows, want %d", len(rows), denies)
	}
	// Wait for the last notification, then stop everything.
	last := rows[len(rows)-1].Seq
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && !slices.ContainsFunc(rec.All(), func(p notify.Posted) bool { return p.Seq == last }) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-streamDone

	shown := map[uint64]time.Time{}
	repeated := 0
	for _, p := range rec.All() {
		if p.AID != aid || !p.HasHints {
			continue
		}
		for s := p.First; s <= p.Seq; s++ {
			if _, dup := shown[s]; dup {
				repeated++
			}
			shown[s] = p.At
		}
	}
	var bus99, stream99 []float64
	lost := 0
	for _, r := range rows {
		at, ok := shown[r.Seq]
		if !ok {
			lost++
			continue
		}
		bus99 = append(bus99, ms(at.Sub(r.Time)))
		if s, ok := streamAt[r.Seq]; ok {
			stream99 = append(stream99, ms(s.Sub(r.Time)))
		}
	}
	if len(bus99) == 0 || len(stream99) == 0 {
		return nil, fmt.Errorf("no deny reached the bus (%d) or the stream (%d)", len(bus99), len(stream99))
	}
	head := map[string]float64{
		"notify_p50_ms": pctl(bus99, 50), "notify_p99_ms": pctl(bus99, 99), "notify_max_ms": pctl(bus99, 100),
		"stream_p50_ms": pctl(stream99, 50), "stream_p99_ms": pctl(stream99, 99),
		"lost": float64(lost), "repeated": float64(repeated), "denies": float64(len(rows)),
	}
	head["p99_ratio"] = math.Round(head["notify_p99_ms"]/math.Max(head["stream_p99_ms"], 0.001)*100) / 100
	return map[string]any{"name": "notify", "gap_ms": ms(gap), "headline": head,
		"notes": strings.Join([]string{
			"latency from each cap.deny row's time (taken as the chain prepares the row) to the recorder's receipt of Notify",
			"baseline: the same rows' arrival on GET /v1/events in this process",
		}, "; ")}, nil
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e4) / 100 }

// pctl is the p-th percentile (nearest rank) of xs.
func pctl(xs []float64, p float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}
