package witness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/coconut-os/coconut/internal/atomicfile"
	"github.com/coconut-os/coconut/internal/checkpoint"
)

// Defaults for Config and Witness.
const (
	DefaultTimeout    = 10 * time.Second
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = 5 * time.Minute
)

// Source is the checkpoint log a Follower follows (*checkpoint.Log).
type Source interface {
	Latest() (checkpoint.Checkpoint, []byte)
	ConsistencyProof(old, size uint64) ([][]byte, error)
}

// Witness is one witness the host submits its checkpoints to.
type Witness struct {
	Key     Key
	URL     string        // its tlog-witness URL prefix (…/add-checkpoint is appended)
	Timeout time.Duration // one submission (DefaultTimeout when 0)
}

// Config sets up a Follower.
type Config struct {
	Witnesses []Witness
	StateDir  string       // one state file per witness (STATE/chain/witness)
	CosigPath string       // the cosignature log (STATE/chain/cosignatures.log)
	HostVKey  string       // the host's checkpoint verifier key, for messages to whoever runs the witness
	Client    *http.Client // nil: a client of its own
	// MinBackoff and MaxBackoff bound the wait before a failed
	// submission is tried again (doubling from MinBackoff).
	MinBackoff, MaxBackoff time.Duration
	Log                    *slog.Logger
}

// State is one witness's standing, kept in its state file after every
// change, and shown by doctor.
type State struct {
	Name string `json:"name"` // the witness key's name
	VKey string `json:"vkey"`
	URL  string `json:"url"`
	// CosignedSize is the size of the newest checkpoint the witness
	// cosigned (stored in the cosignature log before this is saved).
	CosignedSize uint64    `json:"cosigned_size"`
	CosignedAt   time.Time `json:"cosigned_at,omitzero"`
	LastAttempt  time.Time `json:"last_attempt,omitzero"`
	// LastError is the last submission's failure, "" once one succeeds.
	LastError string `json:"last_error,omitempty"`
	// Failures counts the submissions failed in a row.
	Failures uint64 `json:"failures,omitempty"`
	// Alarm is set when the witness's answer means the chain is not what
	// it saw: a refusal as inconsistent (a fork), or a witness holding
	// more of this log than the chain has. It is kept until the state
	// file is removed, whatever later answers say.
	Alarm   string    `json:"alarm,omitempty"`
	AlarmAt time.Time `json:"alarm_at,omitzero"`
}

// Follower submits each new checkpoint to every configured witness in
// the background (one goroutine per witness; the append path never
// waits) and keeps their cosignatures. It implements checkpoint.Anchor,
// so the checkpoint log wakes it after each checkpoint.
type Follower struct {
	cfg     Config
	cos     *CosigLog
	workers []*worker
	stop    chan struct{}
	wg      sync.WaitGroup
	src     Source
	started bool
}

type worker struct {
	f    *Follower
	w    Witness
	path string
	wake chan struct{}

	mu sync.Mutex
	st State
}

// New loads each witness's state and opens the cosignature log. A state
// file that cannot be read is an error naming it: it holds the size the
// witness cosigned and any alarm, which must not be lost silently.
func New(cfg Config) (*Follower, error) {
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("create witness state dir: %w", err)
	}
	f := &Follower{cfg: cfg, stop: make(chan struct{})}
	seen := map[string]bool{}
	for _, w := range cfg.Witnesses {
		if w.Timeout <= 0 {
			w.Timeout = DefaultTimeout
		}
		name := StateFileName(w.Key)
		if seen[name] {
			return nil, fmt.Errorf("witness %s is named twice", w.Key.Name)
		}
		seen[name] = true
		wk := &worker{f: f, w: w, path: filepath.Join(cfg.StateDir, name), wake: make(chan struct{}, 1)}
		st, err := LoadState(wk.path)
		if err != nil {
			return nil, err
		}
		if st == nil {
			st = &State{}
		}
		st.Name, st.VKey, st.URL = w.Key.Name, w.Key.VKey, w.URL
		wk.st = *st
		f.workers = append(f.workers, wk)
	}
	cos, err := OpenCosigLog(cfg.CosigPath)
	if err != nil {
		return nil, err
	}
	f.cos = cos
	return f, nil
}

// StateFileName is a witness's state file name: its key name made safe
// for a file name, and its key hash (two keys of one name stay apart).
func StateFileName(k Key) string {
	safe := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, k.Name)
	return fmt.Sprintf("%s-%08x.json", safe, k.Verifier.KeyHash())
}

// LoadState reads a witness state file; (nil, nil) when there is none.
func LoadState(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("witness state: %w", err)
	}
	var st State
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("witness state %s: %v (remove it to start over: the witness answers with the size it holds)", path, err)
	}
	return &st, nil
}

// Record is checkpoint.Anchor: a new checkpoint wakes every witness's
// goroutine without waiting.
func (f *Follower) Record(checkpoint.Checkpoint) error {
	for _, w := range f.workers {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// Start follows src: the latest checkpoint is submitted at once, then
// each new one.
func (f *Follower) Start(src Source) {
	f.src, f.started = src, true
	for _, w := range f.workers {
		f.wg.Add(1)
		go w.run()
	}
	f.Record(checkpoint.Checkpoint{})
}

// Status returns every witness's state, in configuration order.
func (f *Follower) Status() []State {
	out := make([]State, len(f.workers))
	for i, w := range f.workers {
		w.mu.Lock()
		out[i] = w.st
		w.mu.Unlock()
	}
	return out
}

// Close stops the goroutines, then submits the latest checkpoint once
// more to each witness that has not cosigned it (in parallel, each within
// its timeout and ctx), so a clean stop leaves the final checkpoint
// cosigned where the witnesses answer; and closes the cosignature log.
func (f *Follower) Close(ctx context.Context) error {
	close(f.stop)
	f.wg.Wait()
	if f.started {
		var wg sync.WaitGroup
		for _, w := range f.workers {
			wg.Add(1)
			go func() { defer wg.Done(); w.attempt(ctx) }()
		}
		wg.Wait()
	}
	return f.cos.Close()
}

func (w *worker) run() {
	defer w.f.wg.Done()
	backoff := time.Duration(0)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-w.f.stop:
			timer.Stop()
			return
		case <-w.wake:
			if backoff > 0 {
				continue // the timer tries the latest checkpoint when the backoff ends
			}
		case <-timer.C:
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-w.f.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		err := w.attempt(ctx)
		cancel()
		if err == nil {
			backoff = 0
			continue
		}
		backoff = min(max(2*backoff, w.f.cfg.MinBackoff), w.f.cfg.MaxBackoff)
		timer.Reset(backoff)
	}
}

// attempt submits the latest checkpoint if the witness has not cosigned
// it, with a proof from the size the witness last cosigned; on 409 it
// takes the size the witness holds and tries once more from there.
func (w *worker) attempt(ctx context.Context) error {
	cp, signed := w.f.src.Latest()
	w.mu.Lock()
	old := w.st.CosignedSize
	w.mu.Unlock()
	if cp.Size == 0 || cp.Size == old {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, w.w.Timeout)
	defer cancel()
	if old > cp.Size {
		return w.failed(cp, fmt.Errorf("witness %s cosigned size %d of this log, the latest checkpoint is %d", w.w.Key.Name, old, cp.Size),
			fmt.Sprintf("witness %s cosigned %d records of this log, the chain's latest checkpoint signs %d: rows were dropped or the chain was replaced", w.w.Key.Name, old, cp.Size))
	}
	cos, err := w.submit(ctx, old, cp, signed)
	var ce *ConflictError
	if errors.As(err, &ce) {
		if ce.Size > cp.Size {
			return w.failed(cp, err, fmt.Sprintf("witness %s holds %d records of this log, the chain's latest checkpoint signs %d: rows were dropped or the chain was replaced", w.w.Key.Name, ce.Size, cp.Size))
		}
		w.f.cfg.Log.Info("witness holds another size of this log; proving from it", "witness", w.w.Key.Name, "ours", old, "theirs", ce.Size)
		old = ce.Size
		cos, err = w.submit(ctx, old, cp, signed)
	}
	if errors.Is(err, ErrInconsistent) {
		return w.failed(cp, err, fmt.Sprintf("witness %s refused checkpoint %d as inconsistent with the checkpoint of size %d it holds for this log: a FORK, the chain was rewritten after the witness saw it", w.w.Key.Name, cp.Size, old))
	}
	if err != nil {
		if errors.Is(err, ErrRefused) && w.f.cfg.HostVKey != "" {
			err = fmt.Errorf("%w (the witness must know this log: origin %s, verifier key %s)", err, cp.Origin, w.f.cfg.HostVKey)
		}
		return w.failed(cp, err, "")
	}
	return w.cosigned(cp, signed, cos)
}

func (w *worker) submit(ctx context.Context, old uint64, cp checkpoint.Checkpoint, signed []byte) ([]byte, error) {
	proof, err := w.f.src.ConsistencyProof(old, cp.Size)
	if err != nil {
		return nil, fmt.Errorf("consistency proof %d -> %d: %w", old, cp.Size, err)
	}
	return Submit(ctx, w.f.cfg.Client, w.w.URL, old, proof, signed)
}

// cosigned checks the answer with the configured key, stores it in the
// cosignature log and then the new size in the state file.
func (w *worker) cosigned(cp checkpoint.Checkpoint, signed, cos []byte) error {
	entry := append(append([]byte(nil), signed...), cos...)
	if _, err := note.Open(entry, note.VerifierList(w.w.Key.Verifier)); err != nil {
		return w.failed(cp, fmt.Errorf("witness %s answered a cosignature that does not verify with its vkey in coconut.toml (%v)", w.w.Key.Name, err), "")
	}
	if err := w.f.cos.Append(entry); err != nil {
		return w.failed(cp, err, "")
	}
	w.mu.Lock()
	now := time.Now().UTC()
	w.st.CosignedSize, w.st.CosignedAt, w.st.LastAttempt, w.st.LastError, w.st.Failures = cp.Size, now, now, "", 0
	st := w.st
	w.mu.Unlock()
	return w.save(st)
}

// failed records a failure (and an alarm, if alarm is set) and returns err.
func (w *worker) failed(cp checkpoint.Checkpoint, err error, alarm string) error {
	w.mu.Lock()
	now := time.Now().UTC()
	changed := w.st.LastError != err.Error() || (alarm != "" && w.st.Alarm == "")
	w.st.LastAttempt, w.st.LastError = now, err.Error()
	w.st.Failures++
	if alarm != "" && w.st.Alarm == "" {
		w.st.Alarm, w.st.AlarmAt = alarm, now
	}
	st := w.st
	w.mu.Unlock()
	if alarm != "" {
		w.f.cfg.Log.Error("WITNESS ALARM", "witness", w.w.Key.Name, "url", w.w.URL, "size", cp.Size, "alarm", alarm, "err", err)
	} else {
		w.f.cfg.Log.Warn("witness submission failed (retried with backoff)", "witness", w.w.Key.Name, "url", w.w.URL, "size", cp.Size, "err", err)
	}
	if changed {
		if serr := w.save(st); serr != nil {
			w.f.cfg.Log.Error("save witness state", "witness", w.w.Key.Name, "err", serr)
		}
	}
	return err
}

func (w *worker) save(st State) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return atomicfile.Write(w.path, append(b, '\n'), 0o600)
}
