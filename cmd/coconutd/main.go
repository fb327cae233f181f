// Command coconutd is Coconut's privileged daemon: AID registry, spawner,
// audit chain writer and the local API on a Unix socket. See docs/cli.md
// for its flags.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/coconut-os/coconut/internal/config"
	"github.com/coconut-os/coconut/internal/daemon"
	"github.com/coconut-os/coconut/internal/launch"
	"github.com/coconut-os/coconut/internal/orphan"
	"github.com/coconut-os/coconut/internal/statedir"
)

func main() {
	// An agent's trampoline is this binary re-executed: it never returns.
	launch.Main()
	// Before anything else: what the starting process left open must not
	// reach agents (issue 11).
	inherited, ierr := daemon.CloseInherited()
	if ierr != nil {
		fmt.Fprintln(os.Stderr, "coconutd:", ierr)
		os.Exit(1)
	}
	os.Exit(run(os.Args[1:], inherited))
}

func run(args []string, inherited []int) int {
	fs := flag.NewFlagSet("coconutd", flag.ContinueOnError)
	cfgPath := fs.String("config", config.DefaultPath, "configuration `file`")
	stateDir := fs.String("state-dir", "", "state `dir` (default /var/lib/coconut)")
	socket := fs.String("socket", "", "API socket `path` (default /run/coconut/coconut.sock)")
	centerAddr := fs.String("center-addr", "", "Center web UI `host:port`")
	brokerAddr := fs.String("broker-addr", "", "inference broker `host:port`")
	enforcer := fs.String("enforcer", "", "enforcer backend: auto, bpf-lsm or portable")
	user := fs.String("user", "", "workstation `user` root's agents run as")
	tpmSocket := fs.String("tpm-socket", "", "swtpm data socket `path` for the audit anchor (default /dev/tpmrm0 when present)")
	verbose := fs.Bool("v", false, "debug logging")
	uninstall := fs.Bool("uninstall", false, "remove the pinned network guard and the empty cgroup subtree of this state dir, then exit (refused while agents run)")
	killAgents := fs.Bool("kill-agents", false, "with --uninstall: end the state dir's agents first (refused while its daemon runs)")
	reapOrphans := fs.Bool("reap-orphans", false, "end the agents, unpin the programs and remove the cgroup subtrees of daemons that are gone and whose state dir no longer exists (only this one with --state-dir), then exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *killAgents && !*uninstall {
		fmt.Fprintln(os.Stderr, "coconutd: --kill-agents goes with --uninstall")
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "coconutd: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	cfg, err := config.Load(*cfgPath, explicit)
	if err != nil {
		fmt.Fprintln(os.Stderr, "coconutd:", err)
		return 1
	}
	pick := func(flagV, cfgV, def string) string {
		if flagV != "" {
			return flagV
		}
		if cfgV != "" {
			return cfgV
		}
		return def
	}
	level := slog.LevelInfo
	if *verbose || cfg.LogLevel == "debug" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if len(inherited) > 0 {
		log.Info("closed inherited descriptors", "fds", fmt.Sprint(inherited))
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "coconutd: must run as root (it creates cgroups and switches agents to their users)")
		return 1
	}
	if *reapOrphans {
		if err := daemon.ReapOrphans(*stateDir, log); err != nil {
			fmt.Fprintln(os.Stderr, "coconutd:", err)
			return 1
		}
		return 0
	}
	if *uninstall && *killAgents {
		if err := orphan.UninstallKillingAgents(pick(*stateDir, cfg.StateDir, statedir.Default), log); err != nil {
			fmt.Fprintln(os.Stderr, "coconutd:", err)
			return 1
		}
		return 0
	}
	if *uninstall {
		if err := orphan.Uninstall(pick(*stateDir, cfg.StateDir, statedir.Default)); err != nil {
			fmt.Fprintln(os.Stderr, "coconutd:", err)
			return 1
		}
		return 0
	}
	d, err := daemon.New(daemon.Options{
		StateDir:       pick(*stateDir, cfg.StateDir, statedir.Default),
		Socket:         pick(*socket, cfg.Socket, "/run/coconut/coconut.sock"),
		Enforcer:       pick(*enforcer, cfg.Enforcer, "auto"),
		User:           pick(*user, cfg.User, ""),
		DemoUser:       cfg.DemoUser,
		CenterAddr:     pick(*centerAddr, cfg.CenterListen(), ""), // by profile: on for a workstation, off for a server
		BrokerAddr:     pick(*brokerAddr, cfg.BrokerAddr, ""),
		TPMSocket:      pick(*tpmSocket, cfg.TPMSocket, ""),
		Broker:         cfg.Broker,
		Quota:          cfg.Quota.Defaults,
		OnDenyStorm:    cfg.OnDenyStorm,
		AuditReserve:   cfg.AuditReserve,
		AuditEachUse:   cfg.AuditEachUse,
		AuditCompress:  cfg.CompressAudit(),
		AgentLogMax:    cfg.AgentLogMax,
		AgentRetention: cfg.AgentRetention,
		Export:         cfg.Export.OTLP,
		Witnesses:      cfg.Witnesses, // issue 17
		Log:            log,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "coconutd:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := d.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "coconutd:", err)
		return 1
	}
	return 0
}
