package agent

import (
	"slices"

	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/inferkey"
)

// hostUnixSockets are the Unix sockets every agent may connect to besides
// its bundle (issue 3: an agent reaches no other Unix socket, since a
// process behind one could hand it an fd of any file). Each gives nothing
// back but its own answers: nscd serves its public name-service cache
// (glibc tries it on every passwd lookup), and syslog and the journal take
// log lines and pass no fds. Both spellings of nscd's path are listed:
// the kernel program compares the text the agent connects to.
var hostUnixSockets = []string{
	"/run/nscd/socket", "/var/run/nscd/socket",
	"/dev/log", "/run/systemd/journal/socket",
}

// implicitCaps is the bundle the enforcer holds for caps: the implicit
// broker TCP rule (inferkey.Broker.Caps: the broker's address for an
// agent with an inference capability), then the Unix sockets every agent needs —
// the daemon's API socket (the eight calls), the broker's socket for an
// agent with an inference capability, and hostUnixSockets. Like the broker
// rule they are not in the agent's record, so `agent caps` does not show
// them, and a grant or revoke recomputes them.
func (m *Manager) implicitCaps(caps []capability.Cap) []capability.Cap {
	out, err := m.cfg.Broker.Caps(caps)
	if err != nil {
		m.log.Error("broker address is not a capability scope", "addr", m.cfg.Broker.Addr, "err", err)
	}
	socks := slices.Clone(hostUnixSockets)
	if m.cfg.Socket != "" {
		socks = append(socks, m.cfg.Socket)
	}
	if m.cfg.Broker.Socket != "" && inferkey.Wants(caps) {
		socks = append(socks, m.cfg.Broker.Socket)
	}
	out = slices.Clip(out)
	for _, s := range socks {
		c, err := capability.Parse("net.connect:unix:" + s)
		if err != nil {
			// Not expressible (a relative or too long path): the agent
			// cannot reach it, which fails closed; say why once per bind.
			m.log.Error("unix socket left out of the agents' allowlist", "path", s, "err", err)
			continue
		}
		out = append(out, c)
	}
	return out
}
