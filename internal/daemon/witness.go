package daemon

// --- issue 17: witnessing, the signed checkpoints cosigned outside the host ---

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/checkpoint"
	"github.com/coconut-os/coconut/internal/statedir"
	"github.com/coconut-os/coconut/internal/witness"
)

// witnessStopWait bounds what a stop waits for the witnesses to cosign
// the final checkpoint; a witness that does not answer in time gets it
// from the next daemon.
const witnessStopWait = 3 * time.Second

// openWitnesses prepares the follower that submits each new checkpoint to
// the [[witness]] entries (nil when there are none). An entry or a state
// file that cannot be used stops the daemon with the reason; a witness
// that is down does not.
func openWitnesses(opts Options, key ed25519.PrivateKey, log *slog.Logger) (*witness.Follower, error) {
	if len(opts.Witnesses) == 0 {
		return nil, nil
	}
	var ws []witness.Witness
	for i, c := range opts.Witnesses {
		w, err := c.Parse()
		if err != nil {
			return nil, fmt.Errorf("[[witness]] %d: %w", i+1, err)
		}
		ws = append(ws, w)
	}
	pub := key.Public().(ed25519.PublicKey)
	origin := checkpoint.HostOrigin(pub)
	vkey, err := checkpoint.VerifierKey(origin, pub)
	if err != nil {
		return nil, err
	}
	f, err := witness.New(witness.Config{
		Witnesses: ws, StateDir: statedir.Witness(opts.StateDir),
		CosigPath: filepath.Join(statedir.Chain(opts.StateDir), witness.CosignaturesName),
		HostVKey:  vkey, Log: log,
	})
	if err != nil {
		return nil, fmt.Errorf("audit witnesses: %w", err)
	}
	// Whoever runs a witness adds this log with these two strings.
	log.Info("audit checkpoints are submitted to witnesses", "witnesses", len(ws), "origin", origin, "verifier_key", vkey)
	return f, nil
}

// anchors hands each checkpoint to every anchor in order (the TPM or
// seals, then the witnesses' wake-up).
type anchors []checkpoint.Anchor

func (as anchors) Record(cp checkpoint.Checkpoint) error {
	var first error
	for _, a := range as {
		if err := a.Record(cp); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// witnessInfo is doctor's "witnesses".
func (d *Daemon) witnessInfo(doc *api.Doctor) {
	if d.wit == nil {
		return
	}
	latest, _ := d.ckpt.Latest()
	for _, st := range d.wit.Status() {
		w := api.DoctorWitness{Name: st.Name, URL: st.URL, CosignedSize: st.CosignedSize,
			LagCheckpoints: d.ckpt.CheckpointsAfter(st.CosignedSize), LastError: st.LastError,
			Failures: st.Failures, Alarm: st.Alarm}
		if latest.Size > st.CosignedSize {
			w.LagRows = latest.Size - st.CosignedSize
		}
		w.CosignedAt, w.LastAttempt, w.AlarmAt = timePtr(st.CosignedAt), timePtr(st.LastAttempt), timePtr(st.AlarmAt)
		doc.Witnesses = append(doc.Witnesses, w)
	}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// closeWitnesses signs a checkpoint of every row (daemon.stop included),
// gives the witnesses a moment to cosign it, and stops them. It runs
// before the checkpoint log closes: the proofs come from its tree.
func (d *Daemon) closeWitnesses() {
	if d.wit == nil {
		return
	}
	if _, err := d.ckpt.Sync(); err != nil && !errors.Is(err, checkpoint.ErrClosed) {
		d.log.Error("final checkpoint for the witnesses", "err", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), witnessStopWait)
	defer cancel()
	if err := d.wit.Close(ctx); err != nil {
		d.log.Error("close audit witnesses", "err", err)
	}
	d.wit = nil
}
