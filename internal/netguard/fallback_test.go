package netguard

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// TestLoadFallback: which loads the Options lead to, and that only the
// missing Unix hooks ever fall back.
func TestLoadFallback(t *testing.T) {
	refused := fmt.Errorf("%w: %w: boom", ErrLoad, ErrUnixHooks)
	other := fmt.Errorf("%w: verifier", ErrLoad)
	tests := []struct {
		name     string
		o        Options
		full     error // what a load with the Unix programs returns
		noUnix   error // and one without
		want     []bool
		wantErr  error
		wantNoUx bool
	}{
		{"default loads all", Options{}, nil, nil, []bool{false}, nil, false},
		{"default refuses old kernel", Options{}, refused, nil, []bool{false}, ErrUnixHooks, false},
		{"allowed falls back", Options{AllowNoUnixHooks: true}, refused, nil, []bool{false, true}, nil, true},
		{"allowed on new kernel keeps hooks", Options{AllowNoUnixHooks: true}, nil, nil, []bool{false}, nil, false},
		{"other error never falls back", Options{AllowNoUnixHooks: true}, other, nil, []bool{false}, ErrLoad, false},
		{"fallback error is returned", Options{AllowNoUnixHooks: true}, refused, other, []bool{false, true}, ErrUnixHooks, false},
		{"forced off", Options{NoUnixHooks: true}, nil, nil, []bool{true}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls []bool
			g, err := loadFallback(tt.o, func(noUnix bool) (*Guard, error) {
				calls = append(calls, noUnix)
				if noUnix {
					if tt.noUnix != nil {
						return nil, tt.noUnix
					}
					return &Guard{noUnix: true}, nil
				}
				if tt.full != nil {
					return nil, tt.full
				}
				return &Guard{}, nil
			})
			if fmt.Sprint(calls) != fmt.Sprint(tt.want) {
				t.Errorf("loads %v, want %v", calls, tt.want)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || g != nil {
					t.Fatalf("got %v, %v; want error %v", g, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g.UnixHooks() == tt.wantNoUx {
				t.Errorf("UnixHooks %v", g.UnixHooks())
			}
		})
	}
}

// attachedHere reports whether any program is attached to root for typ.
func attachedHere(t *testing.T, root string, typ ebpf.AttachType) bool {
	t.Helper()
	dir, err := os.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	res, err := link.QueryPrograms(link.QueryOptions{Target: int(dir.Fd()), Attach: typ})
	if err != nil {
		t.Fatal(err)
	}
	return len(res.Programs) > 0
}

// TestNoUnixHooks: the forced fallback attaches the inet programs only
// (TCP still decided), leaves Unix connects to someone else, and a pinned
// guard without Unix links reopens as such.
func TestNoUnixHooks(t *testing.T) {
	requireRoot(t)
	s := startServers(t)
	root := testRoot(t)
	pins := pinDirFor(t, root)
	agent, id := mkCgroup(t, filepath.Join(root, "agent"))
	other := filepath.Join(t.TempDir(), "other.sock")
	listenUnix(t, other)
	p := strconv.Itoa

	for round := range 2 {
		g, err := OpenOptions(root, pins, Options{NoUnixHooks: true})
		if err != nil {
			t.Fatalf("round %d: OpenOptions: %v", round, err)
		}
		if g.UnixHooks() {
			t.Errorf("round %d: UnixHooks true", round)
		}
		for _, typ := range []ebpf.AttachType{ebpf.AttachCgroupUnixConnect, ebpf.AttachCgroupUnixSendmsg} {
			if attachedHere(t, root, typ) {
				t.Errorf("round %d: a program is attached for %v", round, typ)
			}
		}
		if !attachedHere(t, root, ebpf.AttachCGroupInet4Connect) {
			t.Errorf("round %d: connect4 not attached", round)
		}
		if err := g.SetPolicy(uint32(round+1), caps(t, "net.connect:127.0.0.1:"+p(s.tcp4))); err != nil {
			t.Fatal(err)
		}
		if err := g.Bind(id, uint32(round+1)); err != nil {
			t.Fatal(err)
		}
		got := runOps(t, agent, "connect tcp 127.0.0.1 "+p(s.tcp4), "connect tcp 127.0.0.1 "+p(s.other4), "unix connect "+other)
		// The Unix connect passes here: the guard leaves it to the caller
		// (the seccomp supervisor), which this test does not run.
		if got[0] != "ok" || got[1] != denied || got[2] != "ok" {
			t.Errorf("round %d: %q, want ok, denied, ok", round, got)
		}
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
