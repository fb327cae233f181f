package audit

import (
	"bytes"
	"errors"
	"sync/atomic"
	"testing"
)

type countObserver struct{ last atomic.Uint64 }

func (o *countObserver) Committed(seq uint64) { o.last.Store(seq) }

func TestObserverAndPayloads(t *testing.T) {
	obs := &countObserver{}
	c := openT(t, t.TempDir(), Options{Observer: obs, SegmentBytes: 4096})
	defer c.Close()
	recs := fill(t, c, 120)
	if got := obs.last.Load(); got != 120 {
		t.Fatalf("observer saw seq %d, want 120", got)
	}
	if c.Observer() != Observer(obs) {
		t.Fatal("Observer() does not return the configured observer")
	}
	tests := []struct {
		name        string
		after, upTo uint64
		want        []uint64
	}{
		{"all", 0, 120, seqs(1, 120)},
		{"across segments", 30, 70, seqs(31, 70)},
		{"past the head", 118, 500, seqs(119, 120)},
		{"empty", 50, 50, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []uint64
			err := c.Payloads(tt.after, tt.upTo, func(seq uint64, p []byte) error {
				want, _ := RecordBytes(recs[seq-1])
				if !bytes.Equal(p, want) {
					t.Fatalf("seq %d: payload %q, want %q", seq, p, want)
				}
				got = append(got, seq)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) || (len(got) > 0 && (got[0] != tt.want[0] || got[len(got)-1] != tt.want[len(tt.want)-1])) {
				t.Fatalf("got seqs %v, want %v", got, tt.want)
			}
		})
	}
	stop := errors.New("stop here")
	if err := c.Payloads(0, 120, func(seq uint64, _ []byte) error {
		if seq == 5 {
			return stop
		}
		return nil
	}); !errors.Is(err, stop) {
		t.Fatalf("Payloads did not pass fn's error on: %v", err)
	}
}

func TestVerifyFuncVisitError(t *testing.T) {
	dir := t.TempDir()
	c := openT(t, dir, Options{})
	fill(t, c, 30)
	c.Close()
	var n int
	rep, err := VerifyFunc(dir, func(seq uint64, _ []byte) error {
		n++
		if seq == 17 {
			return errors.New("root differs")
		}
		return nil
	})
	var se *SeqError
	if !errors.As(err, &se) || se.Seq != 17 || rep.FirstBad != 17 || n != 17 {
		t.Fatalf("VerifyFunc: %v, first bad %d after %d visits; want seq 17", err, rep.FirstBad, n)
	}
}

func seqs(a, b uint64) []uint64 {
	var out []uint64
	for s := a; s <= b; s++ {
		out = append(out, s)
	}
	return out
}
