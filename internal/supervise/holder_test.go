package supervise

import (
	"bufio"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHolderHandover: a supervisor hands its listener to the holder and
// stops (a daemon dying); a new one takes it back from the holder and the
// agent's calls are answered again, allowed and denied as before.
func TestHolderHandover(t *testing.T) {
	needRoot(t)
	dir := tree(t)
	d := newTestDecider(bundle(t, dir))
	path := filepath.Join(t.TempDir(), "holder.sock")
	h, err := OpenHolder(path, self(t))
	if err != nil {
		t.Fatal(err)
	}
	sup, ag := socketPair(t)
	defer sup.Close()
	allowed, denied := "read:"+dir+"/allowed/f", "read:"+dir+"/denied/f"
	cmd := agentCmd(t, ag, allowed, "wait", allowed, denied)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	ag.Close()
	l, err := Receive(sup)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Put(42, l); err != nil {
		t.Fatal(err)
	}
	s1, err := NewServer(l, AgentInfo{AID: 42}, d)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s1.Serve() }()
	if err := Ack(sup); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	first, _ := r.ReadString('\n')

	// The first supervisor goes away; only the holder keeps the listener.
	s1.Stop()
	if err := <-done; !errors.Is(err, ErrStopped) {
		t.Fatalf("serve: %v", err)
	}
	l.Close()
	h.Close()
	io.WriteString(stdin, "\n") // the agent's next calls wait: nobody answers, nothing passes
	time.Sleep(100 * time.Millisecond)

	h2, err := OpenHolder(path, self(t))
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	held, err := h2.Take()
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 1 || len(held[42]) != 1 {
		t.Fatalf("held %v", held)
	}
	s2, err := NewServer(held[42][0], AgentInfo{AID: 42}, d)
	if err != nil {
		t.Fatal(err)
	}
	go s2.Serve()
	defer s2.Stop()
	rest, _ := io.ReadAll(r)
	cmd.Wait()
	lines := strings.Split(strings.TrimSpace(first+string(rest)), "\n")
	want := []string{allowed + " 0", allowed + " 0", denied + " 134"}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Fatalf("probe said %q, want %q", lines, want)
	}
	if err := h2.Drop(42); err != nil {
		t.Fatal(err)
	}
	if held, err := h2.Take(); err != nil || len(held) != 0 {
		t.Fatalf("after drop: %v %v", held, err)
	}
}

// TestHolderRefuses: the holder keeps only seccomp listeners.
func TestHolderRefuses(t *testing.T) {
	needRoot(t)
	path := filepath.Join(t.TempDir(), "holder.sock")
	h, err := OpenHolder(path, self(t))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tests := []struct {
		name  string
		aid   uint64
		files []*os.File
	}{
		{"not a listener", 1, []*os.File{f}},
		{"no AID", 0, []*os.File{f}},
		{"nothing", 1, nil},
		{"too many", 1, []*os.File{f, f, f, f, f}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := h.Put(tt.aid, tt.files...); !errors.Is(err, ErrHolder) {
				t.Fatalf("put: %v", err)
			}
		})
	}
	if held, err := h.Take(); err != nil || len(held) != 0 {
		t.Fatalf("held after refusals: %v %v", held, err)
	}
}

// FuzzHolderRequest: no request text makes the holder panic or keep
// anything without a listener.
func FuzzHolderRequest(f *testing.F) {
	for _, s := range []string{"put 1", "drop 1", "list", "put", "put x", "drop", "", "put 18446744073709551616", "held 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, req string) {
		h := &holder{held: map[uint64]heldSet{}}
		reply := h.do(-1, req, nil)
		if reply != "ok" && !strings.HasPrefix(reply, "err: ") {
			t.Fatalf("reply %q", reply)
		}
		if len(h.held) != 0 {
			t.Fatalf("%q: holds %v without a listener", req, h.held)
		}
	})
}
