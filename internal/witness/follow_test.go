package witness

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/coconut-os/coconut/internal/checkpoint"
)

// treeSource is a Source over the x/mod tlog test tree: the checkpoint at
// a size the test sets, signed with the host key.
type treeSource struct {
	t    *testing.T
	h    hostKeys
	mu   sync.Mutex
	tr   *tree
	size int64
}

func (s *treeSource) set(tr *tree, size int64) {
	s.mu.Lock()
	s.tr, s.size = tr, size
	s.mu.Unlock()
}

func (s *treeSource) Latest() (checkpoint.Checkpoint, []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	root, err := tlog.TreeHash(s.size, s.tr.reader())
	if err != nil {
		s.t.Error(err)
	}
	cp := checkpoint.Checkpoint{Origin: s.h.origin, Size: uint64(s.size), Root: root}
	b, err := checkpoint.Sign(cp, s.h.signer)
	if err != nil {
		s.t.Error(err)
	}
	return cp, b
}

func (s *treeSource) ConsistencyProof(old, size uint64) ([][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old == 0 || old == size {
		return nil, nil
	}
	p, err := tlog.ProveTree(int64(size), int64(old), s.tr.reader())
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = append([]byte(nil), p[i][:]...)
	}
	return out, nil
}

func waitState(t *testing.T, f *Follower, what string, ok func(State) bool) State {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := f.Status()[0]
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: witness state %+v", what, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFollower: a Follower against transparency-dev's witness on
// loopback. Each new checkpoint is cosigned and stored (Newest verifies
// it); with its state lost it takes the witness's size from a 409 and
// proves from there; a forked history raises the alarm and keeps it
// across a restart; a witness that is down is retried with backoff and
// never blocks Record.
func TestFollower(t *testing.T) {
	h := newHost(t)
	srv, vkey := startWitness(t, h)
	key, err := ParseKey(vkey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := Config{
		Witnesses: []Witness{{Key: key, URL: srv.URL, Timeout: 2 * time.Second}},
		StateDir:  filepath.Join(dir, "witness"), CosigPath: filepath.Join(dir, CosignaturesName),
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, HostVKey: "host+vkey",
	}
	good := newTree(t, 40, -1)
	src := &treeSource{t: t, h: h}
	src.set(good, 10)
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.Start(src)
	waitState(t, f, "first checkpoint", func(s State) bool { return s.CosignedSize == 10 })
	src.set(good, 20)
	f.Record(checkpoint.Checkpoint{})
	st := waitState(t, f, "second checkpoint", func(s State) bool { return s.CosignedSize == 20 })
	if st.LastError != "" || st.Alarm != "" || st.Name != "witness.test" || st.URL != srv.URL {
		t.Fatalf("state after two cosignatures: %+v", st)
	}
	if err := f.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	found, err := Newest(cfg.CosigPath, h.pub, []Key{key})
	if err != nil || found[0].Count != 2 || found[0].Smallest != 10 || found[0].Newest == nil || found[0].Newest.Checkpoint.Size != 20 {
		t.Fatalf("Newest: %+v %v", found, err)
	}
	if root, _ := tlog.TreeHash(20, good.reader()); found[0].Newest.Checkpoint.Root != root || found[0].Newest.Time.IsZero() {
		t.Fatalf("newest cosigned checkpoint %+v, want root %x and a timestamp", found[0].Newest, root)
	}

	// State lost: the first submission (old 0) gets 409 with 20, the
	// retry proves 20 -> 25.
	statePath := filepath.Join(cfg.StateDir, StateFileName(key))
	if err := os.Remove(statePath); err != nil {
		t.Fatal(err)
	}
	src.set(good, 25)
	f, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.Start(src)
	waitState(t, f, "after a lost state", func(s State) bool { return s.CosignedSize == 25 })

	// A forked history (rows 16.. rewritten, re-signed with the host key).
	forked := newTree(t, 40, 15)
	src.set(forked, 30)
	f.Record(checkpoint.Checkpoint{})
	st = waitState(t, f, "forked checkpoint", func(s State) bool { return s.Alarm != "" })
	if !strings.Contains(st.Alarm, "FORK") || !strings.Contains(st.LastError, "422") || st.CosignedSize != 25 {
		t.Fatalf("fork: %+v", st)
	}
	if err := f.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	saved, err := LoadState(statePath)
	if err != nil || saved == nil || saved.Alarm != st.Alarm || saved.CosignedSize != 25 {
		t.Fatalf("saved state %+v %v, want the alarm kept", saved, err)
	}
	found, err = Newest(cfg.CosigPath, h.pub, []Key{key})
	if err != nil || found[0].Count != 3 || found[0].Newest.Checkpoint.Size != 25 {
		t.Fatalf("Newest after the fork: %+v %v", found, err)
	}

	// The witness down: failures are retried with backoff.
	srv.Close()
	src.set(good, 35)
	f, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.Start(src)
	st = waitState(t, f, "witness down", func(s State) bool { return s.Failures >= 3 })
	if !strings.Contains(st.LastError, "unavailable") || st.Alarm == "" {
		t.Fatalf("witness down: %+v (the alarm stays)", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := f.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestFollowerNeverBlocks: with a witness that accepts the connection and
// never answers, Record (called by the checkpoint log under its lock)
// still returns, and Close ends within its context.
func TestFollowerNeverBlocks(t *testing.T) {
	h := newHost(t)
	_, vkey := startWitness(t, h)
	key, _ := ParseKey(vkey)
	hang := make(chan struct{})
	var once sync.Once
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang }))
	defer stuck.Close()
	defer once.Do(func() { close(hang) })
	dir := t.TempDir()
	f, err := New(Config{Witnesses: []Witness{{Key: key, URL: stuck.URL, Timeout: time.Hour}},
		StateDir: filepath.Join(dir, "witness"), CosigPath: filepath.Join(dir, CosignaturesName)})
	if err != nil {
		t.Fatal(err)
	}
	src := &treeSource{t: t, h: h}
	src.set(newTree(t, 5, -1), 5)
	f.Start(src)
	done := make(chan struct{})
	go func() {
		for i := 0; i < 1000; i++ {
			f.Record(checkpoint.Checkpoint{})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second): // a deadlock detector, not a timing
		t.Fatal("Record blocked on a witness that does not answer")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- f.Close(ctx) }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not end with its context")
	}
	if st := f.Status()[0]; st.CosignedSize != 0 || st.LastError == "" {
		t.Fatalf("state after a witness that never answered: %+v", st)
	}
}
