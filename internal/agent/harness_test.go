package agent

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/cgroup"
	"github.com/coconut-os/coconut/internal/enforce"
	"github.com/coconut-os/coconut/internal/launch"
	"github.com/coconut-os/coconut/internal/quota"
	"github.com/coconut-os/coconut/internal/sign"
	"github.com/coconut-os/coconut/internal/state"
)

// The unit harness: a Manager over fakes of the interfaces in deps.go that
// record what they were asked, so spawn, caps, delegation and adoption run
// without root. What is not faked is real: the audit chain (in a temporary
// directory), the trust store, manifest signatures, the measured (sealed)
// program, the registry on disk, and the agents' processes (the fake
// launcher starts the real program as the test's own user, without the
// trampoline). The integration tests in test/integration run the same
// paths with real cgroups, BPF and the supervisor.

// fakeCgroups keeps agent "cgroups" as directories under a temporary
// root and the processes the fake launcher put in each.
type fakeCgroups struct {
	Groups // Create, Group, Open, List: directories under the fake root
	mu     sync.Mutex
	procs  map[string][]*os.Process // group path -> its processes
	frozen map[string]bool
	calls  []string // "kill PATH", "remove PATH", "freeze PATH true"

	freezeErr error
}

// controlFiles are the files the kernel makes in a new cgroup that the
// quota controller writes (cgroup files always exist: it opens them
// without a mode, so here they must exist too, writable by the test's
// user) and that the tests write as the kernel would (memory.events).
var controlFiles = []string{"cpu.weight", "cpu.max", "memory.max", "memory.high", "memory.oom.group", "pids.max", "memory.events"}

// Create makes the agent's directory and its control files.
func (f *fakeCgroups) Create(aid uint64) (*cgroup.Group, error) {
	g, err := f.Groups.Create(aid)
	if err != nil {
		return nil, err
	}
	for _, n := range controlFiles {
		if err := os.WriteFile(filepath.Join(g.Path, n), nil, 0o644); err != nil {
			return nil, err
		}
	}
	return g, nil
}

func (f *fakeCgroups) record(s string) {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	f.mu.Unlock()
}

// called reports whether a call starting with prefix was made.
func (f *fakeCgroups) called(prefix string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.ContainsFunc(f.calls, func(c string) bool { return strings.HasPrefix(c, prefix) })
}

func (f *fakeCgroups) Kill(g *cgroup.Group) error {
	f.record("kill " + g.Path)
	f.mu.Lock()
	ps := f.procs[g.Path]
	delete(f.procs, g.Path)
	f.mu.Unlock()
	for _, p := range ps {
		p.Kill()
	}
	return nil
}

// Remove removes the directory as rmdir does a cgroup's: the control
// files (here, the ones the quota controller wrote) go with it, a child
// group makes it fail.
func (f *fakeCgroups) Remove(g *cgroup.Group) error {
	f.record("remove " + g.Path)
	ents, err := os.ReadDir(g.Path)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			if err := os.Remove(filepath.Join(g.Path, e.Name())); err != nil {
				return err
			}
		}
	}
	return os.Remove(g.Path)
}

func (f *fakeCgroups) Freeze(path string, on bool) error {
	f.record(fmt.Sprintf("freeze %s %v", path, on))
	if f.freezeErr != nil {
		return f.freezeErr
	}
	f.mu.Lock()
	f.frozen[path] = on
	f.mu.Unlock()
	return nil
}

func (f *fakeCgroups) Holds(g *cgroup.Group, pid int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.ContainsFunc(f.procs[g.Path], func(p *os.Process) bool { return p.Pid == pid })
}

// launched is one call of the fake launcher.
type launched struct {
	group string // the cgroup the process was put in (from CgroupFD)
	spec  launch.Spec
	floor *launch.Floor
	cmd   *exec.Cmd
}

// fakeLauncher starts spec.Argv as the test's own user, in the fake
// cgroup CgroupFD names, with its output in the agent's log.
type fakeLauncher struct {
	cg   *fakeCgroups
	mu   sync.Mutex
	runs []launched
	err  error
}

func (l *fakeLauncher) start(cfg launch.Config, spec launch.Spec) (*exec.Cmd, error) {
	if l.err != nil {
		return nil, l.err
	}
	path, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", cfg.CgroupFD))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(spec.Argv[0], spec.Argv[1:]...)
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = spec.Env, spec.Dir, cfg.Output, cfg.Output
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	l.cg.mu.Lock()
	l.cg.procs[path] = append(l.cg.procs[path], cmd.Process)
	l.cg.mu.Unlock()
	l.mu.Lock()
	l.runs = append(l.runs, launched{group: path, spec: spec, floor: spec.Floor, cmd: cmd})
	l.mu.Unlock()
	return cmd, nil
}

func (l *fakeLauncher) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.runs)
}

// fakeEnforcer records the bundles it is given.
type fakeEnforcer struct {
	mu      sync.Mutex
	binds   []enforce.Agent
	updates []enforce.Agent
	unbinds []uint64
	events  chan enforce.Event

	bindErr, updateErr error
}

func (f *fakeEnforcer) Name() string     { return "fake" }
func (f *fakeEnforcer) Rights() []string { return []string{"fake"} }
func (f *fakeEnforcer) Bind(a enforce.Agent) (*launch.Floor, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.bindErr != nil {
		return nil, f.bindErr
	}
	f.binds = append(f.binds, a)
	return nil, nil
}
func (f *fakeEnforcer) Update(a enforce.Agent) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.updateErr != nil {
		return f.updateErr
	}
	f.updates = append(f.updates, a)
	return nil
}
func (f *fakeEnforcer) Unbind(aid uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unbinds = append(f.unbinds, aid)
	return nil
}
func (f *fakeEnforcer) Events() <-chan enforce.Event { return f.events }
func (f *fakeEnforcer) Counters() (enforce.Counters, error) {
	return enforce.Counters{BySource: map[string]uint64{}}, nil
}
func (f *fakeEnforcer) Close() error { return nil }

// lastUpdate is the bundle of the enforcer's last Update of aid.
func (f *fakeEnforcer) lastUpdate(aid uint64) (enforce.Agent, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.updates) - 1; i >= 0; i-- {
		if f.updates[i].AID == aid {
			return f.updates[i], true
		}
	}
	return enforce.Agent{}, false
}

func (f *fakeEnforcer) boundAIDs() []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []uint64
	for _, a := range f.binds {
		out = append(out, a.AID)
	}
	return out
}

// refusingChain is the real chain that refuses rows of one type (and,
// for agent.state, of one target state).
type refusingChain struct {
	*audit.Chain
	mu           sync.Mutex
	refuse       string
	refuseObject string
}

func (c *refusingChain) Append(ctx context.Context, r audit.Record) (audit.Record, error) {
	c.mu.Lock()
	refuse, object := c.refuse, c.refuseObject
	c.mu.Unlock()
	if refuse != "" && r.Type == refuse && (object == "" || r.Object == object) {
		return audit.Record{}, errors.New("refused by the test")
	}
	return c.Chain.Append(ctx, r)
}

func (c *refusingChain) setRefuse(typ string) {
	c.mu.Lock()
	c.refuse, c.refuseObject = typ, ""
	c.mu.Unlock()
}

// setRefuseState refuses the agent.state rows of transitions to to.
func (c *refusingChain) setRefuseState(to string) {
	c.mu.Lock()
	c.refuse, c.refuseObject = audit.TypeAgentState, to
	c.mu.Unlock()
}

// unit is one Manager under test and its fakes.
type unit struct {
	t       *testing.T
	dir     string
	m       *Manager
	cg      *fakeCgroups
	launch  *fakeLauncher
	enf     *fakeEnforcer
	chain   *refusingChain
	trust   *sign.Trust
	signer  ed25519.PrivateKey
	caller  Caller
	program string            // an absolute program the agents run
	quota   *quota.Controller // the Manager's: quota.NewV2 on the fake tree
	opened  []*Manager        // every Manager opened, for their reapers at cleanup
}

// newUnit makes the fakes and a Manager over them.
func newUnit(t *testing.T) *unit {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "cgroup", "coconut-unit")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	// The fake subtree delegates cpu, memory and pids: quota.NewV2 (open)
	// enables them in its cgroup.subtree_control and writes each agent's
	// limits into its directory, here. It never looks for v1 hierarchies,
	// which quota.New would find on a hybrid host: the machine's own.
	for name, text := range map[string]string{"cgroup.controllers": "cpu memory pids\n", "cgroup.subtree_control": ""} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cg := &fakeCgroups{Groups: Groups{Tree: &cgroup.Tree{Mount: filepath.Join(dir, "cgroup"), Rel: "/coconut-unit", Root: root}},
		procs: map[string][]*os.Process{}, frozen: map[string]bool{}}
	chain, err := audit.Open(filepath.Join(dir, "chain"), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	trust, err := sign.OpenTrust(filepath.Join(dir, "trust"))
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trust.Add(pub, 0, "unit test"); err != nil {
		t.Fatal(err)
	}
	program, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	if program, err = filepath.EvalSymlinks(program); err != nil {
		t.Fatal(err)
	}
	u := &unit{t: t, dir: dir, cg: cg, enf: &fakeEnforcer{events: make(chan enforce.Event)},
		chain: &refusingChain{Chain: chain}, trust: trust, signer: priv,
		caller: Caller{UID: uint32(os.Getuid())}, program: program}
	u.launch = &fakeLauncher{cg: cg}
	t.Cleanup(func() {
		if u.m != nil {
			u.m.Close()
		}
		// Every process the fake launcher started, whether or not a fake
		// Kill already killed it (a finished process is not signalled
		// again: os.Process knows it was reaped).
		u.launch.mu.Lock()
		for _, r := range u.launch.runs {
			r.cmd.Process.Kill()
		}
		u.launch.mu.Unlock()
		// Their reapers return only once the killed processes are reaped
		// and any end they were recording is saved: no write into the
		// temporary directory after this.
		for _, m := range u.opened {
			m.reapers.Wait()
		}
		chain.Close()
	})
	u.open()
	return u
}

// open starts a Manager on the unit's state directory and fakes (again,
// after close: a daemon restart).
func (u *unit) open() {
	u.t.Helper()
	hostPub, hostKey, _ := ed25519.GenerateKey(nil)
	_ = hostPub
	me, err := user.Current()
	if err != nil {
		u.t.Fatal(err)
	}
	var enf enforce.Enforcer
	if u.enf != nil {
		enf = u.enf
	}
	qc, err := quota.NewV2(u.cg.Tree.Mount, u.cg.Tree.Root)
	if err != nil {
		u.t.Fatal(err)
	}
	if qc.Mode() != quota.ModeV2 {
		u.t.Fatalf("quota on the fake tree: %s (%s)", qc.Mode(), qc.Why())
	}
	u.quota = qc
	m, err := New(Config{
		StateDir: u.dir, Tree: u.cg.Tree, Quota: qc, Cgroups: u.cg, Chain: u.chain, Trust: u.trust,
		HostKey: hostKey, HostID: "unit", Socket: filepath.Join(u.dir, "api.sock"),
		WorkstationUser: me.Username, // root's agents (when the tests run as root) run as root here
		Enforcer:        "fake", Enforce: enf, EnforceWhy: "no enforcer in this test",
		Launch: u.launch.start, Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		u.t.Fatal(err)
	}
	u.m = m
	u.opened = append(u.opened, m)
}

// close stops the Manager as a daemon stops: its agents keep running.
func (u *unit) close() {
	u.m.Close()
	u.m = nil
}

// run starts one agent with caps, running the program for a minute.
func (u *unit) run(caller Caller, caps ...string) (*api.Agent, error) {
	return u.m.Run(context.Background(), caller, api.RunRequest{
		Command: []string{u.program, "60"}, Caps: caps, Workdir: u.dir,
	})
}

func (u *unit) mustRun(caps ...string) *api.Agent {
	u.t.Helper()
	a, err := u.run(u.caller, caps...)
	if err != nil {
		u.t.Fatal(err)
	}
	return a
}

// sign signs a manifest with the trusted key.
func (u *unit) sign(name string, man []byte) []byte {
	u.t.Helper()
	sig, err := sign.SignManifest(u.signer, name, man)
	if err != nil {
		u.t.Fatal(err)
	}
	return sig
}

// manifestCaps is a signed one-agent manifest NAME.yaml running the
// unit's program in the unit's directory with caps and ceiling (nil: no
// ceiling line), and extra lines appended to the agent.
func (u *unit) manifestCaps(name string, caps, ceiling []string, extra ...string) api.SpawnRequest {
	u.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: coconut/v1\nkind: Workload\nmetadata:\n  name: %s\nagents:\n  - name: w\n", name)
	fmt.Fprintf(&b, "    command: [%s, '60']\n    workdir: %s\n", u.program, u.dir)
	list := func(key string, cs []string) {
		if cs == nil {
			return
		}
		fmt.Fprintf(&b, "    %s:\n", key)
		for _, c := range cs {
			fmt.Fprintf(&b, "      - %s\n", c)
		}
	}
	list("capabilities", caps)
	list("ceiling", ceiling)
	for _, e := range extra {
		b.WriteString(e)
	}
	return u.signed(name+".yaml", []byte(b.String()))
}

// manifest is manifestCaps with net.connect:127.0.0.1:80 under the
// ceiling net.connect:127.0.0.0/8:*.
func (u *unit) manifest(name string, extra ...string) api.SpawnRequest {
	return u.manifestCaps(name, []string{"net.connect:127.0.0.1:80"}, []string{"net.connect:127.0.0.0/8:*"}, extra...)
}

// signed is the spawn request of manifest man, file name, signed with the
// trusted key.
func (u *unit) signed(file string, man []byte) api.SpawnRequest {
	return api.SpawnRequest{File: file, Manifest: man, Signature: u.sign(file, man)}
}

// record is agent aid's registry record as it is on disk.
func (u *unit) record(aid uint64) *record {
	u.t.Helper()
	recs, err := store{dir: filepath.Join(u.dir, "agents")}.load()
	if err != nil {
		u.t.Fatal(err)
	}
	for _, r := range recs {
		if r.AID == aid {
			return r
		}
	}
	u.t.Fatalf("no record of agent %d on disk", aid)
	return nil
}

// rows returns the chain's rows of type typ ("agent.*" a prefix), oldest first.
func (u *unit) rows(typ string) []audit.Record {
	u.t.Helper()
	rs, err := u.chain.Query(audit.Query{Type: typ, Limit: audit.MaxLimit})
	if err != nil {
		u.t.Fatal(err)
	}
	return rs
}

// rowsOf returns agent aid's rows, oldest first, as "type" or
// "agent.state:TO".
func (u *unit) rowsOf(aid uint64) []string {
	u.t.Helper()
	rs, err := u.chain.Query(audit.Query{AID: &aid, Limit: audit.MaxLimit})
	if err != nil {
		u.t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		s := r.Type
		if r.Type == audit.TypeAgentState {
			s += ":" + r.Object
		}
		out = append(out, s)
	}
	return out
}

// waitState waits until agent aid is in state want.
func (u *unit) waitState(aid uint64, want state.State) *api.Agent {
	u.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		a, err := u.m.Get(Caller{UID: 0}, aid)
		if err != nil {
			u.t.Fatal(err)
		}
		if a.State == string(want) {
			return a
		}
		if time.Now().After(deadline) {
			u.t.Fatalf("agent %d is %s (%s), want %s", aid, a.State, a.Reason, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether pid still runs (not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z" && syscall.Kill(pid, 0) == nil
}

// isErr reports whether err carries the API error kind.
func isErr(err, kind error) bool { return err != nil && errors.Is(err, kind) }
