package inferkey

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/coconut-os/coconut/internal/capability"
)

// Broker is where agents reach coconutd's inference broker. The zero
// value means no broker: agents get no inference environment.
type Broker struct {
	Socket string         // the broker's Unix socket, told as COCONUT_BROKER_SOCKET
	Addr   netip.AddrPort // its loopback TCP address, told as OPENAI_BASE_URL
}

// Env is the environment that points an agent at the broker: an
// unmodified OpenAI client needs only OPENAI_BASE_URL and OPENAI_API_KEY.
func (b Broker) Env(key string) []string {
	var env []string
	if b.Addr.IsValid() {
		env = append(env, "OPENAI_BASE_URL=http://"+b.Addr.String()+"/v1", "OPENAI_API_KEY="+key)
	}
	if b.Socket != "" {
		env = append(env, "COCONUT_BROKER_SOCKET="+b.Socket)
	}
	return env
}

// Caps adds the implicit rule an inference capability brings: the agent
// may connect to the broker's TCP address, which its net.connect caps
// need not name (and `agent caps` does not show). The backend's own
// address is never added: agents reach inference only through the broker.
// caps is not changed; on an error caps is returned as it is.
func (b Broker) Caps(caps []capability.Cap) ([]capability.Cap, error) {
	if !b.Addr.IsValid() || !Wants(caps) {
		return caps, nil
	}
	c, err := capability.Parse("net.connect:" + b.Addr.String())
	if err != nil {
		return caps, fmt.Errorf("broker address %s is not a capability scope: %w", b.Addr, err)
	}
	return append(slices.Clip(caps), c), nil
}

// Wants reports whether caps hold an inference capability.
func Wants(caps []capability.Cap) bool {
	return slices.ContainsFunc(caps, func(c capability.Cap) bool { return c.Domain == "inference" })
}

// WithEnv replaces (not duplicates) the variables add names: glibc's
// getenv returns the first match, so a manifest's OPENAI_API_KEY must not
// sit before coconut's.
func WithEnv(env, add []string) []string {
	names := make([]string, len(add))
	for i, kv := range add {
		names[i], _, _ = strings.Cut(kv, "=")
	}
	out := slices.DeleteFunc(env, func(kv string) bool {
		n, _, _ := strings.Cut(kv, "=")
		return slices.Contains(names, n)
	})
	return append(out, add...)
}
