package daemon

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"

	"github.com/coconut-os/coconut/internal/center"
	"github.com/coconut-os/coconut/internal/tiles"
)

// checkCenterAddr refuses a non-loopback Center address at once.
func checkCenterAddr(addr string) error {
	if addr == "" {
		return nil
	}
	if _, err := center.CheckAddr(addr); err != nil {
		return fmt.Errorf("--center-addr: %w", err)
	}
	return nil
}

// openCenter binds the Center's loopback address (issue 13) when one is
// configured. A non-loopback address stops the daemon: the Center must
// never be reachable from another host.
func (d *Daemon) openCenter() error {
	if d.opts.CenterAddr == "" {
		return nil
	}
	c, err := center.Listen(center.Config{
		Addr: d.opts.CenterAddr, Agents: d.agents, Chain: d.chain, Events: d.events, Proofs: d.ckpt,
		Trust: d.trust, HostPub: d.hostKey.Public().(ed25519.PublicKey), Counters: d.agents.Counters, Doctor: d.doctor,
		Inference: d.brk.inference, PricePer1K: d.opts.Broker.PricePer1KTokens, Log: d.log,
		Tiles: filepath.Join(d.opts.StateDir, tiles.DirName),
	})
	if err != nil {
		return fmt.Errorf("--center-addr: %w", err)
	}
	d.center = c
	return nil
}

// loginLink is the Unix API's POST /v1/center/login, nil without a Center.
func (d *Daemon) loginLink() func(uint32, string) (string, error) {
	if d.center == nil {
		return nil
	}
	return d.center.LoginLink
}

// serveCenter runs the Center beside the API.
func (d *Daemon) serveCenter(errc chan<- error) {
	if d.center == nil {
		return
	}
	go func() {
		if err := d.center.Serve(); err != nil {
			errc <- fmt.Errorf("center: %w", err)
		}
	}()
	d.log.Info("Coconut Center ready: `coconut center` prints a login link", "addr", d.center.Addr())
}

func (d *Daemon) shutdownCenter(ctx context.Context) {
	if d.center != nil {
		d.center.Shutdown(ctx)
	}
}
