package statedir

import "testing"

// The layout is on disk in every installed state directory: a changed
// path would orphan a host's key, trust store or chain.
func TestLayout(t *testing.T) {
	const d = "/s"
	for _, c := range []struct{ got, want string }{
		{Keys(d), "/s/keys"},
		{HostKeyPrefix(d), "/s/keys/host"},
		{HostPub(d), "/s/keys/host.pub"},
		{Trust(d), "/s/trust"},
		{Chain(d), "/s/chain"},
		{QueryIndex(d), "/s/index/aid"},
		{Merkle(d), "/s/index/merkle"},
		{ExportOTLP(d), "/s/export/otlp.json"},
		{Witness(d), "/s/chain/witness"},
	} {
		if c.got != c.want {
			t.Errorf("got %s, want %s", c.got, c.want)
		}
	}
}
