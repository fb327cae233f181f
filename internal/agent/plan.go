package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/attest"
	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/launch"
	"github.com/coconut-os/coconut/internal/manifest"
	"github.com/coconut-os/coconut/internal/measure"
	"github.com/coconut-os/coconut/internal/sign"
	"github.com/coconut-os/coconut/internal/storm"
)

// plan is one agent, fully checked and measured, ready to start. Every plan
// of a request is made before the first agent starts, so bad input spawns
// nothing.
type plan struct {
	name, class, workload string
	user                  identity
	owner                 uint32
	command               []string // as written, for the record
	argv                  []string // what is exec'd: the script path replaced by its memfd
	env                   map[string]string
	dir                   string
	caps                  []string
	ceiling               []string // nil: the caps are the ceiling
	quota                 manifest.Quota
	memory                manifest.MemoryTiers
	audit                 manifest.AuditPolicy // the spec's `audit:`; zero for agent run (the default)
	static                bool                 // the spec's `enforcement: static`
	storm                 storm.Policy         // on_deny_storm (storm.go)
	parent                uint64               // the agent that asked for this one (delegate.go), 0: a user
	delegated             map[string]uint64    // capability -> the agent it was delegated by
	exe, script           *measure.Measured
	authorizer            attest.Authorizer
	manifestRef           *attest.ManifestRef
}

// planner turns requests into plans: it verifies a manifest against the
// trust store, resolves whom each agent runs as (users), gives each the
// host's default budget (budget.withDefaults) and measures what will run
// into sealed copies (it owns the measure cache, and each plan holds its
// references until release). It knows nothing of the registry: a plan has
// no AID until startAll.
type planner struct {
	trust  *sign.Trust
	cache  *measure.Cache
	users  users
	budget *budget
}

var namePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// planManifest verifies the signature first, then parses and plans every
// instance.
func (pl *planner) manifest(caller Caller, req api.SpawnRequest) ([]*plan, error) {
	file := filepath.Base(req.File)
	if file == "." || file == "/" || file == "" {
		file = "manifest"
	}
	v, err := sign.VerifyManifest(req.Manifest, req.Signature, pl.trust, caller.UID)
	if err != nil {
		return nil, api.Errorf(api.ErrSignature, "%s: %v", file, err)
	}
	man, err := manifest.Parse(file, req.Manifest)
	if err != nil {
		return nil, api.Errorf(api.ErrInvalid, "%v", err)
	}
	sum := sha256.Sum256(req.Manifest)
	ref := &attest.ManifestRef{Name: man.Metadata.Name, File: file, SHA256: hex.EncodeToString(sum[:]), SignerKeyID: v.KeyID}
	var plans []*plan
	fail := func(err error) ([]*plan, error) {
		pl.release(plans)
		return nil, err
	}
	for i := range man.Agents {
		spec := &man.Agents[i]
		field := func(f string) (string, int) {
			p := fmt.Sprintf("agents[%d]%s", i, f)
			return p, man.Line(p)
		}
		user, err := pl.users.resolve(caller, spec.User)
		if err != nil {
			p, line := field(".user")
			return fail(api.Errorf(err, "%s", manifest.Errorf(file, line, p, "%v", err)))
		}
		auth := attest.Authorizer{UID: caller.UID, User: userName(caller.UID), Via: attest.ViaManifest}
		if v.AddedBy == caller.UID {
			auth.KeyID = v.KeyID // the caller signed it with their own key
		}
		base := &plan{
			class: spec.Class, workload: man.Metadata.Name, user: user, owner: caller.UID,
			command: spec.Command, env: spec.Env, quota: pl.budget.withDefaults(spec.Quota, spec.Memory), memory: spec.Memory, audit: spec.Audit, static: spec.Enforcement == manifest.EnforceStatic, storm: spec.Storm,
			authorizer: auth, manifestRef: ref,
		}
		for _, c := range spec.Capabilities {
			base.caps = append(base.caps, c.Expand(user.Home).String())
		}
		if spec.Ceiling != nil {
			base.ceiling = []string{}
			for _, c := range spec.Ceiling {
				base.ceiling = append(base.ceiling, c.Expand(user.Home).String())
			}
		}
		if err := pl.prepare(base, spec.Script, spec.Workdir); err != nil {
			p, line := field(err.field)
			return fail(api.Errorf(api.ErrInvalid, "%s", manifest.Errorf(file, line, p, "%v", err.err)))
		}
		first := true
		for _, inst := range man.Instances() {
			if inst.Spec != spec {
				continue
			}
			p := *base
			p.name = inst.Name
			if !first { // every plan holds its own reference to the sealed copies
				p.exe, p.script = pl.cache.Retain(base.exe), pl.cache.Retain(base.script)
			}
			first = false
			plans = append(plans, &p)
		}
	}
	return plans, nil
}

// run plans `coconut agent run`: no manifest, the caller authorizes.
func (pl *planner) run(caller Caller, req api.RunRequest) (*plan, error) {
	if len(req.Command) == 0 {
		return nil, api.Errorf(api.ErrInvalid, "command: empty")
	}
	if !filepath.IsAbs(req.Command[0]) || filepath.Clean(req.Command[0]) != req.Command[0] {
		return nil, api.Errorf(api.ErrInvalid, "command[0]: %q must be an absolute, clean path", req.Command[0])
	}
	name := req.Name
	if name == "" {
		name = nameFromCommand(req.Command[0])
	}
	if !namePattern.MatchString(name) {
		return nil, api.Errorf(api.ErrInvalid, "name %q: use lower-case letters, digits and '-', at most 63", name)
	}
	class := req.Class
	if class == "" {
		class = "run"
	}
	if !namePattern.MatchString(class) {
		return nil, api.Errorf(api.ErrInvalid, "class %q: use lower-case letters, digits and '-', at most 63", class)
	}
	for k := range req.Env {
		if !envName.MatchString(k) || len(k) >= 8 && k[:8] == "COCONUT_" {
			return nil, api.Errorf(api.ErrInvalid, "env %q: not a valid name, or reserved (COCONUT_*)", k)
		}
	}
	caps, err := capability.ParseAll(req.Caps)
	if err != nil {
		return nil, api.Errorf(api.ErrInvalid, "%v", err)
	}
	user, err := pl.users.resolve(caller, req.User)
	if err != nil {
		return nil, err
	}
	p := &plan{
		name: name, class: class, user: user, owner: caller.UID, command: req.Command, env: req.Env,
		authorizer: attest.Authorizer{UID: caller.UID, User: userName(caller.UID), Via: attest.ViaCommandLine},
	}
	for _, c := range caps {
		p.caps = append(p.caps, c.Expand(user.Home).String())
	}
	if p.quota, p.memory, err = runQuota(req.Quota); err != nil { // quota.go
		return nil, err
	}
	p.quota = pl.budget.withDefaults(p.quota, p.memory) // budget.go
	if req.OnDenyStorm != "" {
		if p.storm, err = storm.Parse(req.OnDenyStorm); err != nil {
			return nil, api.Errorf(api.ErrInvalid, "%v", err)
		}
	}
	if req.Workdir != "" && !filepath.IsAbs(req.Workdir) {
		return nil, api.Errorf(api.ErrInvalid, "workdir %q: must be absolute", req.Workdir)
	}
	if perr := pl.prepare(p, "", req.Workdir); perr != nil {
		return nil, api.Errorf(api.ErrInvalid, "%s: %v", perr.field[1:], perr.err)
	}
	return p, nil
}

// nameFromCommand derives the default name of a `coconut agent run` agent
// from its command's base name. The user did not choose that name, so it
// is made valid rather than refused: lower-cased, every run of other
// characters turned into one '-', trimmed to 63 ("python3.11" →
// "python3-11"). A base name with nothing usable in it gives "run".
func nameFromCommand(command string) string {
	base := strings.ToLower(filepath.Base(command))
	var b strings.Builder
	dash := false
	for _, r := range base {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
			continue
		}
		dash = true
	}
	name := b.String()
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	if name == "" {
		return "run"
	}
	return name
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

type fieldError struct {
	field string
	err   error
}

// prepare measures the program (and script) and checks the working
// directory, filling p.exe, p.script, p.argv and p.dir.
func (pl *planner) prepare(p *plan, script, workdir string) *fieldError {
	exe, err := pl.cache.Measure(p.command[0], true)
	if err != nil {
		return &fieldError{".command[0]", err}
	}
	p.exe = exe
	p.argv = append([]string{}, p.command...)
	if script != "" {
		s, err := pl.cache.Measure(script, false)
		if err != nil {
			return &fieldError{".script", err}
		}
		p.script = s
		for i := 1; i < len(p.argv); i++ {
			if p.argv[i] == script {
				p.argv[i] = launch.ScriptPath
			}
		}
	}
	dir := workdir
	switch {
	case dir == "":
		dir = p.user.Home
	case dir == "~":
		dir = p.user.Home
	case len(dir) > 1 && dir[:2] == "~/":
		dir = filepath.Join(p.user.Home, dir[2:])
	}
	st, err := os.Stat(dir)
	if err != nil {
		return &fieldError{".workdir", err}
	}
	if !st.IsDir() {
		return &fieldError{".workdir", fmt.Errorf("%s: not a directory", dir)}
	}
	p.dir = dir
	return nil
}

// release gives back the plans' references to their sealed copies.
func (pl *planner) release(plans []*plan) {
	for _, p := range plans {
		pl.cache.Release(p.exe)
		pl.cache.Release(p.script)
	}
}

// agentEnv is the environment an agent starts with: the manifest's, then
// the variables coconut owns (which the manifest may not set).
func (p *plan) agentEnv(aid uint64, socket string) []string {
	keys := make([]string, 0, len(p.env))
	for k := range p.env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	env := []string{
		"HOME=" + p.user.Home, "USER=" + p.user.Name, "LOGNAME=" + p.user.Name,
		"PATH=/usr/local/bin:/usr/bin:/bin",
	}
	for _, k := range keys {
		switch k {
		case "HOME", "USER", "LOGNAME":
			continue
		case "PATH":
			env[3] = "PATH=" + p.env[k]
			continue
		}
		env = append(env, k+"="+p.env[k])
	}
	return append(env,
		"COCONUT_AID="+strconv.FormatUint(aid, 10),
		"COCONUT_AGENT_NAME="+p.name,
		"COCONUT_AGENT_CLASS="+p.class,
		"COCONUT_WORKLOAD="+p.workload,
		"COCONUT_SOCKET="+socket,
	)
}
