package inferkey

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/coconut-os/coconut/internal/capability"
)

func TestWithEnv(t *testing.T) {
	env := []string{"HOME=/home/a", "OPENAI_API_KEY=sk-manifest", "OPENAI_BASE_URL=https://api.example/v1", "X=1"}
	got := WithEnv(env, Broker{Socket: "/s", Addr: netip.MustParseAddrPort("127.0.0.1:9")}.Env("coco-k"))
	want := []string{"HOME=/home/a", "X=1", "OPENAI_BASE_URL=http://127.0.0.1:9/v1", "OPENAI_API_KEY=coco-k", "COCONUT_BROKER_SOCKET=/s"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if got := WithEnv([]string{"A=1"}, Broker{}.Env("")); !slices.Equal(got, []string{"A=1"}) {
		t.Fatalf("no broker: %q", got)
	}
}

func TestCaps(t *testing.T) {
	b := Broker{Addr: netip.MustParseAddrPort("127.0.0.1:7878")}
	with, _ := capability.ParseAll([]string{"inference:model=*"})
	got, err := b.Caps(with)
	if err != nil || len(got) != 2 || got[1].String() != "net.connect:127.0.0.1:7878" || len(with) != 1 {
		t.Fatalf("Caps = %v, %v (caller's slice %v)", got, err, with)
	}
	if got, _ := (Broker{}).Caps(with); len(got) != 1 {
		t.Fatalf("no broker address: %v", got)
	}
}
