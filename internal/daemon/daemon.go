package daemon

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/agent"
	"github.com/coconut-os/coconut/internal/anchor"
	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/center"
	"github.com/coconut-os/coconut/internal/cgroup"
	"github.com/coconut-os/coconut/internal/checkpoint"
	"github.com/coconut-os/coconut/internal/config"
	"github.com/coconut-os/coconut/internal/enforce"
	"github.com/coconut-os/coconut/internal/events"
	"github.com/coconut-os/coconut/internal/export/otlp"
	"github.com/coconut-os/coconut/internal/server"
	"github.com/coconut-os/coconut/internal/sign"
	"github.com/coconut-os/coconut/internal/statedir"
	"github.com/coconut-os/coconut/internal/storm"
	"github.com/coconut-os/coconut/internal/witness"
)

// Version is set at build time.
var Version = "dev"

// Options are coconutd's flags (docs/cli.md); empty means the config
// file's value, then the default.
type Options struct {
	StateDir   string
	Socket     string
	Enforcer   string
	User       string
	DemoUser   string
	CenterAddr string
	BrokerAddr string
	TPMSocket  string        // issue 4: swtpm data socket for the anchor ("": /dev/tpmrm0 if present)
	Broker     config.Broker // issue 6: the [broker] table (broker.go)
	Log        *slog.Logger
	// Quota is [quota.defaults] (issue 19, quota_defaults.go).
	Quota config.QuotaDefaults
	// OnDenyStorm is on_deny_storm (issue 19, internal/storm); "": storm.Default.
	OnDenyStorm string
	// AuditReserve is audit_reserve (issue 19, agent/reserve.go); "": 64M.
	AuditReserve string
	// AuditEachUse is audit_each_use (issue 19): no allowed use nor
	// inference call is counted into an aggregate row.
	AuditEachUse bool
	// Export is [export.otlp] (issue 17, export.go): off without an endpoint.
	Export config.ExportOTLP
	// AuditCompress is audit_compress (issue 17): sealed segments kept
	// zstd-compressed in the background.
	AuditCompress bool
	// AgentLogMax is agent_log_max (issue 17, agent/logcap.go); "": 8M.
	AgentLogMax string
	// AgentRetention is agent_retention (issue 17, agent/prune.go); "": kept.
	AgentRetention string
	// Witnesses are the [[witness]] entries (issue 17, witness.go).
	Witnesses []config.Witness
}

// Daemon is a running coconutd.
type Daemon struct {
	opts     Options
	log      *slog.Logger
	chain    *audit.Chain
	ckpt     *checkpoint.Log // issue 4: Merkle checkpoints of the chain
	anchor   string          // issue 4: "tpm", "fss" or "none"
	anc      io.Closer       // issue 4: the anchor, closed after the final checkpoint
	agents   *agent.Manager
	srv      *server.Server
	tree     *cgroup.Tree
	hostKey  ed25519.PrivateKey
	enforcer string
	enf      enforce.Enforcer  // nil when none could load
	brk      *brokerSvc        // issue 6: the inference broker (broker.go)
	events   *events.Service   // issue 13: the event stream, one for every door
	center   *center.Center    // issue 13: the Center web UI (center.go); nil when off
	exp      *otlp.Exporter    // issue 17: the chain's OTLP export (export.go); nil when off
	wit      *witness.Follower // issue 17: the checkpoints' witnesses (witness.go); nil when none
	trust    *sign.Trust
	why      string
	started  time.Time
}

// New prepares everything and adopts running agents; Serve starts answering.
func New(opts Options) (*Daemon, error) {
	log := opts.Log
	d := &Daemon{opts: opts, log: log, started: time.Now()}
	switch opts.Enforcer {
	case "", "auto", "portable", "bpf-lsm":
	default:
		return nil, fmt.Errorf("--enforcer %q: must be auto, portable or bpf-lsm", opts.Enforcer)
	}
	if err := checkCenterAddr(opts.CenterAddr); err != nil { // issue 13: before anything is set up
		return nil, err
	}
	if err := os.MkdirAll(opts.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	var err error
	if d.hostKey, err = loadOrCreateHostKey(opts.StateDir); err != nil {
		return nil, err
	}
	trust, err := sign.OpenTrust(statedir.Trust(opts.StateDir))
	if err != nil {
		return nil, err
	}
	for _, p := range trust.Problems() {
		log.Warn("trust store entry ignored", "err", p)
	}
	// --- issue 4: checkpoints (begin) ---
	if d.wit, err = openWitnesses(opts, d.hostKey, log); err != nil { // issue 17: woken by each checkpoint
		return nil, err
	}
	if d.ckpt, d.anchor, d.anc, err = openCheckpoints(opts, d.hostKey, log, d.wit); err != nil {
		if d.wit != nil {
			d.wit.Close(context.Background())
		}
		return nil, err
	}
	if d.chain, err = audit.Open(statedir.Chain(opts.StateDir), audit.Options{
		Observer: d.ckpt, IndexDir: statedir.QueryIndex(opts.StateDir),
		CompressSealed: opts.AuditCompress,
		OnCompressError: func(err error) {
			log.Warn("audit segment compression failed (the segment stays plain; retried at the next rotation)", "err", err)
		},
	}); err != nil {
		d.ckpt.Close()
		d.anc.Close()
		return nil, fmt.Errorf("open audit chain: %w", err)
	}
	fail := func(err error) (*Daemon, error) {
		if d.brk != nil { // issue 6
			d.brk.close()
		}
		d.closeExport()    // issue 17
		d.closeWitnesses() // issue 17
		d.ckpt.Close()
		d.anc.Close()
		d.chain.Close()
		return nil, err
	}
	if err := d.ckpt.Start(d.chain); err != nil {
		return fail(fmt.Errorf("audit checkpoints: %w", err))
	}
	if d.wit != nil { // issue 17: in the background; the latest checkpoint first
		d.wit.Start(d.ckpt)
	}
	// --- issue 4: checkpoints (end) ---
	if d.tree, err = cgroup.OpenTree(cgroup.SubtreeName(opts.StateDir)); err != nil {
		return fail(err)
	}
	if err := recordOwner(opts.StateDir, d.tree); err != nil { // issue 18: orphans are told from the record
		return fail(err)
	}
	self, err := trampoline(log)
	if err != nil {
		return fail(err)
	}
	// The enforcer: a backend asked for by name must load or the daemon
	// does not start; with auto, a kernel that offers none leaves the
	// daemon serving (audit, adoption) but every spawn is refused.
	// The seccomp supervisor's listeners are kept by a holder process
	// outside the daemon (state dir socket), so agents survive a restart;
	// COCONUT_SUPERVISOR=off turns the supervisor off (floor and network
	// guard only).
	enfCfg := enforce.Config{CgroupRoot: d.tree.Root, Self: self, HolderSocket: filepath.Join(opts.StateDir, "holder.sock")}
	if os.Getenv("COCONUT_SUPERVISOR") == "off" {
		enfCfg.HolderSocket = ""
	}
	// COCONUT_UNIX_HOOKS=off is a test and diagnostic switch: the network
	// guard leaves out its Unix socket programs and the supervisor checks
	// Unix connects instead, as on a kernel before 6.7.
	if os.Getenv("COCONUT_UNIX_HOOKS") == "off" {
		enfCfg.NoUnixHooks = true
	}
	enfBackend, why, err := enforce.Choose(opts.Enforcer, enfCfg)
	enf := "none"
	switch {
	case err == nil:
		enf = enfBackend.Name()
		d.enf = enfBackend
	case opts.Enforcer == "" || opts.Enforcer == "auto":
		why = err.Error()
		log.Error("no capability enforcer could load: agents will not start", "err", err)
	default:
		return fail(err)
	}
	d.enforcer, d.why = enf, why
	hostPub := d.hostKey.Public().(ed25519.PublicKey)
	if _, err := d.chain.Append(context.Background(), audit.DaemonStart(Version, os.Getpid(), sign.KeyID(hostPub), enf)); err != nil {
		return fail(fmt.Errorf("audit chain refuses appends: %w", err))
	}
	// issue 6: the broker's listeners exist before any agent is spawned
	// or adopted, so agents are told (and allowed) the real address.
	if err := d.openExport(opts.Export); err != nil { // issue 17: its metrics are the broker's /metrics too
		return fail(err)
	}
	if d.brk, err = openBroker(opts, d.tree, d.chain, log, d.exportMetrics()...); err != nil {
		return fail(err)
	}
	d.brk.agents = func() *agent.Manager { return d.agents }
	qd, err := quotaDefaults(opts.Quota) // issue 19
	if err != nil {
		return fail(err)
	}
	var reserve int64 // issue 19: audit_reserve
	if opts.AuditReserve != "" {
		if reserve, err = agent.ParseAuditReserve(opts.AuditReserve); err != nil {
			return fail(err)
		}
	}
	// Chain.Err (asked before a use is let through as a count) wants the
	// same headroom spawns do.
	d.chain.SetReserve(cmp.Or(reserve, agent.DefaultAuditReserve))
	var logMax int64 // issue 17: agent_log_max
	if opts.AgentLogMax != "" {
		if logMax, err = agent.ParseLogMax(opts.AgentLogMax); err != nil {
			return fail(err)
		}
	}
	var retention time.Duration // issue 17: agent_retention
	if opts.AgentRetention != "" {
		if retention, err = agent.ParseRetention(opts.AgentRetention); err != nil {
			return fail(err)
		}
	}
	var sd storm.Policy // issue 19: on_deny_storm
	if opts.OnDenyStorm != "" {
		if sd, err = storm.Parse(opts.OnDenyStorm); err != nil {
			return fail(err)
		}
	}
	d.agents, err = agent.New(agent.Config{
		StateDir: opts.StateDir, Tree: d.tree, Chain: d.chain, Trust: trust, HostKey: d.hostKey,
		HostID: hostID(), Self: self, Socket: opts.Socket, WorkstationUser: opts.User,
		DemoUser: opts.DemoUser, Enforcer: enf, Enforce: d.enf, EnforceWhy: why, Log: log, QuotaDefaults: qd, StormDefault: sd, AuditReserve: reserve, AuditEachUse: opts.AuditEachUse, LogMax: logMax, Retention: retention,
		Broker:    d.brk.env(),            // issue 6
		BeforeEnd: d.brk.calls.flushAgent, // issue 19: an ended agent's inference rows come before its end
	})
	if err != nil {
		return fail(err)
	}
	d.agents.Tenants().OnEnd(d.brk.b.Forget) // issue 6
	d.events = events.New(d.chain, d.agents) // issue 13
	d.trust = trust
	if err := d.openCenter(); err != nil { // issue 13: center.go
		d.agents.Close()
		return fail(err)
	}
	d.srv = server.New(server.Config{Agents: d.agents, Chain: d.chain, Trust: trust, Tree: d.tree, Doctor: d.doctor, Inference: d.brk.inference, Events: d.events, Log: log,
		CenterLogin: d.loginLink()})
	return d, nil
}

// Run serves until ctx ends, then stops cleanly: no new calls, calls in
// flight finish, a daemon.stop row, the chain flushed. Agents keep running.
func (d *Daemon) Run(ctx context.Context) error {
	l, err := d.srv.Listen(d.opts.Socket)
	if err != nil {
		return err
	}
	errc := make(chan error, 4)
	go func() { errc <- d.srv.Serve(l) }()
	d.brk.serve(errc) // issue 6
	if d.exp != nil { // issue 17
		d.exp.Start()
	}
	d.serveCenter(errc) // issue 13
	if ok, err := sddaemon.SdNotify(false, sddaemon.SdNotifyReady); ok {
		d.log.Debug("told systemd we are ready")
	} else if err != nil {
		d.log.Warn("sd_notify", "err", err)
	}
	d.log.Info("coconutd ready", "socket", d.opts.Socket, "broker_socket", d.brk.sock, "broker_addr", d.brk.addr, "state_dir", d.opts.StateDir,
		"cgroup", d.tree.Root, "enforcer", d.enforcer, "agents", d.agents.Running())
	select {
	case <-ctx.Done():
	case err := <-errc:
		d.close()
		return err
	}
	sddaemon.SdNotify(false, sddaemon.SdNotifyStopping)
	d.log.Info("stopping; agents keep running", "agents", d.agents.Running())
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d.srv.Shutdown(sctx)
	d.brk.shutdown(sctx)   // issue 6: calls in flight finish; close() releases the rest
	d.shutdownCenter(sctx) // issue 13
	os.Remove(d.opts.Socket)
	d.close()
	return nil
}

func (d *Daemon) close() {
	d.brk.close()                    // issue 6
	d.agents.Tenants().FlushTokens() // issue 6: token usage not yet persisted
	d.agents.Close()
	if d.enf != nil {
		// The network guard stays attached through its bpffs pins and the
		// Landlock floors stay on the agents, so running agents remain
		// guarded; the next daemon reopens the pins and binds them again
		// (coconutd --uninstall removes the pins).
		if err := d.enf.Close(); err != nil {
			d.log.Error("close enforcer", "err", err)
		}
	}
	if _, err := d.chain.Append(context.Background(), audit.DaemonStop(Version, os.Getpid())); err != nil {
		d.log.Error("record daemon stop", "err", err)
	}
	d.closeExport()                        // issue 17: daemon.stop goes with the next daemon's first batch
	d.closeWitnesses()                     // issue 17: the final checkpoint, cosigned if the witnesses answer
	if err := d.ckpt.Close(); err != nil { // issue 4: the final checkpoint covers daemon.stop
		d.log.Error("close audit checkpoints", "err", err)
	}
	if err := d.anc.Close(); err != nil { // issue 4: after the final checkpoint was handed to it
		d.log.Error("close audit anchor", "err", err)
	}
	if err := d.chain.Close(); err != nil {
		d.log.Error("close audit chain", "err", err)
	}
}

func loadOrCreateHostKey(stateDir string) (ed25519.PrivateKey, error) {
	prefix := statedir.HostKeyPrefix(stateDir)
	key, err := sign.LoadPrivateKey(prefix + ".key")
	if errors.Is(err, fs.ErrNotExist) {
		if _, err := sign.GenerateKey(prefix); err != nil {
			return nil, fmt.Errorf("create host key: %w", err)
		}
		key, err = sign.LoadPrivateKey(prefix + ".key")
	}
	if err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	return key, nil
}

// trampoline picks the binary agents start through: coconut-trampoline
// beside the daemon (or in ../libexec/coconut), else the daemon itself. It
// runs as root for a moment, so it must be root's and writable by no one
// else.
func trampoline(log *slog.Logger) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find own executable for the trampoline: %w", err)
	}
	dir := filepath.Dir(self)
	for _, p := range []string{filepath.Join(dir, "coconut-trampoline"), filepath.Join(dir, "../libexec/coconut/coconut-trampoline")} {
		st, err := os.Stat(p)
		if err != nil {
			continue
		}
		sys, ok := st.Sys().(*syscall.Stat_t)
		if !ok || sys.Uid != 0 || st.Mode().Perm()&0o022 != 0 || !st.Mode().IsRegular() {
			log.Warn("ignoring trampoline not owned by root or writable by others", "path", p)
			continue
		}
		return p, nil
	}
	log.Info("coconut-trampoline not installed beside coconutd: agents start through coconutd itself (slower)")
	return self, nil
}

// hostID names this machine in attestations: its machine id, else hostname.
func hostID() string {
	if b, err := os.ReadFile("/etc/machine-id"); err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			return s
		}
	}
	h, _ := os.Hostname()
	return h
}

func (d *Daemon) doctor() api.Doctor {
	seq, _ := d.chain.Head()
	hostPub := d.hostKey.Public().(ed25519.PublicKey)
	doc := api.Doctor{
		Version: Version, Enforcer: d.enforcer, EnforcerWhy: d.why, ECapability: int(api.ECapability),
		Anchor:   d.anchor, // issue 4
		Counters: d.agents.Counters(),
		StateDir: d.opts.StateDir, CgroupRoot: d.tree.Root, HostKeyID: sign.KeyID(hostPub),
		ChainHead: seq, Agents: d.agents.Running(), PID: os.Getpid(),
		Checks: append(append(kernelChecks(d.tree), enforcerChecks(d.enf)...), bpfLSMSelftestCheck(d.enforcer, d.why)),
	}
	d.brk.doctorInfo(&doc) // issue 6
	d.headInfo(&doc)       // issue 13
	if d.center != nil {
		doc.CenterAddr = d.center.Addr()
	}
	d.exportInfo(&doc)  // issue 17
	d.witnessInfo(&doc) // issue 17
	doc.QuotaDefaults = d.agents.QuotaDefaults()
	doc.DenyStorm = d.agents.StormDefault()                  // issue 19
	doc.Checks = append(doc.Checks, d.agents.ReserveCheck()) // issue 19: the chain's disk headroom
	// issue 20: read after Counters above, which updates it.
	doc.CountersAlarm = d.agents.CountersAlarm()
	return doc
}

// --- issue 4: checkpoints (begin) ---

// openCheckpoints opens the checkpoint log beside the chain, signing with
// the host key, and the anchor that keeps its latest root out of root's
// reach.
func openCheckpoints(opts Options, key ed25519.PrivateKey, log *slog.Logger, wit *witness.Follower) (*checkpoint.Log, string, io.Closer, error) {
	stateDir := opts.StateDir
	if err := os.MkdirAll(statedir.Chain(stateDir), 0o700); err != nil {
		return nil, "", nil, fmt.Errorf("create chain dir: %w", err)
	}
	anc, kind, closer, err := openAnchor(opts, log)
	if err != nil {
		return nil, "", nil, fmt.Errorf("audit anchor: %w", err)
	}
	if wit != nil { // issue 17: each checkpoint also wakes the witnesses
		anc = anchors{anc, wit}
	}
	l, err := checkpoint.New(checkpoint.Config{ChainDir: statedir.Chain(stateDir), TreeDir: statedir.Merkle(stateDir), Key: key, Anchor: anc, Log: log})
	if err != nil {
		closer.Close()
		return nil, "", nil, fmt.Errorf("audit checkpoints: %w", err)
	}
	return l, kind, closer, nil
}

// closers closes several things in order.
type closers []io.Closer

func (cs closers) Close() error {
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// openAnchor picks where checkpoints are anchored: the TPM when a socket
// is configured or /dev/tpmrm0 exists (an unreachable configured TPM is an
// error, never a silent fallback), forward-secure seals otherwise. A chain
// once anchored in a TPM does not silently continue under seals.
func openAnchor(opts Options, log *slog.Logger) (checkpoint.Anchor, string, io.Closer, error) {
	chainDir := statedir.Chain(opts.StateDir)
	_, devErr := os.Stat(anchor.DeviceTPM)
	if opts.TPMSocket != "" || devErr == nil {
		tpm, err := anchor.DialTPM(opts.TPMSocket)
		if err != nil {
			return nil, "", nil, err
		}
		// The owner auth coconut init set, to define the index on a
		// first start (nil where init never took the owner hierarchy).
		owner, err := anchor.ReadOwnerAuth(filepath.Join(opts.StateDir, "keys"))
		if err != nil {
			tpm.Close()
			return nil, "", nil, err
		}
		a, err := anchor.OpenTPM(anchor.TPMConfig{TPM: tpm, ChainDir: chainDir, Log: log, OwnerAuth: owner})
		if err != nil {
			tpm.Close()
			return nil, "", nil, err
		}
		log.Info("audit checkpoints anchored in the TPM", "nv_index", fmt.Sprintf("%#x", uint32(anchor.DefaultIndex)), "min_interval", anchor.DefaultMinInterval)
		return a, "tpm", closers{a, tpm}, nil
	}
	if fi, err := os.Stat(filepath.Join(chainDir, anchor.JournalName)); err == nil && fi.Size() > 0 {
		return nil, "", nil, fmt.Errorf("%w: this chain is anchored in a TPM (%s) and none is reachable; start with --tpm-socket or on the host with the TPM", anchor.ErrNoTPM, anchor.JournalName)
	}
	keys := statedir.Keys(opts.StateDir)
	f, seed, err := anchor.OpenFSS(keys, chainDir)
	if err != nil {
		return nil, "", nil, err
	}
	if seed != "" {
		log.Warn("audit chain: forward-secure sealing started (no TPM). The verification seed is shown once: keep it off this host and delete the file; verify with `coconut audit verify --seal-key SEED`",
			"seed", seed, "file", filepath.Join(keys, anchor.SeedName))
	}
	return f, "fss", f, nil
}

// --- issue 4: checkpoints (end) ---
