package cli

import (
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/coconut-os/coconut/internal/checkpoint"
	"github.com/coconut-os/coconut/internal/witness"
)

// TestWitnessResults: what verify --witness concludes from a witness's
// newest cosignature, the latest checkpoint and the verify pass.
func TestWitnessResults(t *testing.T) {
	_, vkey, _ := note.GenerateKey(rand.Reader, "w.example")
	k, err := witness.ParseKey(vkey)
	if err != nil {
		t.Fatal(err)
	}
	check := func(size uint64) *witnessCheck {
		f := witness.Found{Key: k}
		if size > 0 {
			f.Count, f.Smallest = 3, 10
			f.Newest = &witness.Cosigned{Checkpoint: checkpoint.Checkpoint{Size: size}}
		}
		return &witnessCheck{found: f, what: "witness w.example's cosigned checkpoint"}
	}
	forkErr := errors.New("anchor mismatch: records 1..50 do not hash to the root of witness w.example's cosigned checkpoint 1 (size 50): the chain was rewritten")
	tests := []struct {
		name    string
		c       *witnessCheck
		latest  uint64
		pass    error
		ok      bool
		wantErr string
		fork    bool
	}{
		{name: "latest cosigned", c: check(50), latest: 50, ok: true},
		{name: "none", c: check(0), latest: 50, wantErr: "has cosigned no checkpoint"},
		{name: "behind", c: check(40), latest: 50, wantErr: "has not cosigned the latest checkpoint (size 50): its newest cosignature is of size 40 (3 cosignatures, sizes 10..40); rows 41..50"},
		{name: "past the log", c: check(60), latest: 50, wantErr: "past the latest stored checkpoint (50)"},
		{name: "fork", c: check(50), latest: 50, pass: forkErr, wantErr: "FORK: witness w.example cosigned a checkpoint of size 50", fork: true},
		{name: "chain broken elsewhere", c: check(50), latest: 50, pass: errors.New("seq 3: bad hash")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := witnessResults([]*witnessCheck{tc.c}, checkpoint.Checkpoint{Size: tc.latest}, tc.pass)
			if len(rs) != 1 || rs[0].OK != tc.ok || rs[0].Fork != tc.fork {
				t.Fatalf("results %+v", rs)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("err %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err %v, want %q", err, tc.wantErr)
			case tc.fork && !errors.Is(err, errFork):
				t.Fatalf("a fork is not errFork: %v", err)
			}
		})
	}
}
