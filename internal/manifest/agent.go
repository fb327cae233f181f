package manifest

import (
	"fmt"
	"path"
	"strings"

	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/policy"
	"go.yaml.in/yaml/v3"
)

var agentFields = []string{
	"name", "class", "replicas", "command", "script", "env", "workdir", "user",
	"capabilities", "ceiling", "quota", "memory", "audit", "enforcement",
	"on_deny_storm", // storm.go (issue 19)
}

// agents decodes the agents list, then checks what spans agents: unique
// names and instance names, and the total instance count.
func (d *decoder) agents(v val) []AgentSpec {
	items, ok := d.list(v)
	if !ok {
		return nil
	}
	if len(items) == 0 {
		d.errorf(v.line, v.field, "must list at least one agent")
		return nil
	}
	specs := make([]AgentSpec, len(items))
	for i, it := range items {
		specs[i] = d.agent(it, i)
	}
	d.crossCheck(v, specs)
	return specs
}

func (d *decoder) agent(v val, index int) AgentSpec {
	a := AgentSpec{Replicas: 1, Line: v.line, Index: index, Enforcement: EnforceSupervised,
		Audit: AuditPolicy{Reads: "first", Writes: "all", Exec: "all", Connect: "all"}}
	entries, _ := d.mapping(v, agentFields)
	if v.n.Kind != yaml.MappingNode {
		return a
	}
	got := map[string]val{}
	var capItems []val
	capsOK, ceilOK := true, true
	for _, e := range entries {
		got[e.key] = e.v
		switch e.key {
		case "name":
			a.Name = d.name(e.v)
		case "class":
			a.Class = d.name(e.v)
		case "replicas":
			n, _ := d.integer(e.v, 1, MaxInstances)
			a.Replicas = int(n)
		case "command":
			a.Command = d.command(e.v)
		case "script":
			if s, ok := d.str(e.v); ok && d.absClean(e.v, s) {
				a.Script = s
			}
		case "env":
			a.Env = d.env(e.v)
		case "workdir":
			if s, ok := d.str(e.v); ok {
				d.workdir(e.v, s)
				a.Workdir = s
			}
		case "user":
			if s, ok := d.str(e.v); ok {
				if err := checkUser(s); err != nil {
					d.errorf(e.v.line, e.v.field, "%v", err)
				}
				a.User = s
			}
		case "capabilities":
			a.Capabilities, capItems, capsOK = d.caps(e.v)
		case "ceiling":
			a.Ceiling, _, ceilOK = d.caps(e.v)
			if a.Ceiling == nil && ceilOK {
				a.Ceiling = []capability.Cap{} // present but empty: nothing may be granted
			}
		case "quota":
			a.Quota = d.quota(e.v)
		case "memory":
			a.Memory = d.memory(e.v)
		case "audit":
			a.Audit = d.audit(e.v, a.Audit)
		case "on_deny_storm":
			a.Storm = d.stormPolicy(e.v)
		case "enforcement":
			if s, ok := d.str(e.v); ok {
				if s != EnforceSupervised && s != EnforceStatic {
					d.errorf(e.v.line, e.v.field, "must be %s or %s, got %q", EnforceSupervised, EnforceStatic, s)
				} else {
					a.Enforcement = s
				}
			}
		}
	}
	if ev, ok := got["enforcement"]; ok && a.Enforcement == EnforceStatic {
		if _, ceil := got["ceiling"]; ceil {
			// A static agent's floor is its bundle: nothing beyond it
			// can ever be granted, so a ceiling would promise grants the
			// kernel cannot give.
			d.errorf(ev.line, ev.field, "static enforcement cannot have a ceiling: the Landlock floor is the bundle itself (use supervised enforcement to grant later)")
		}
	}
	for _, k := range []string{"name", "command"} {
		if _, ok := got[k]; !ok {
			d.errorf(v.line, join(v.field, k), "required")
		}
	}
	if a.Class == "" {
		a.Class = a.Name
	}
	if sv, ok := got["script"]; ok && a.Script != "" && len(a.Command) > 0 && !contains(a.Command[1:], a.Script) {
		d.errorf(sv.line, sv.field, "%q must appear as an argument in command", a.Script)
	}
	if _, ok := got["ceiling"]; ok && capsOK && ceilOK {
		d.withinCeiling(a, capItems)
	}
	return a
}

func (d *decoder) name(v val) string {
	s, ok := d.str(v)
	if !ok {
		return ""
	}
	if err := checkName(s); err != nil {
		d.errorf(v.line, v.field, "%v", err)
		return "" // so the cross-agent checks do not report it again
	}
	return s
}

func (d *decoder) command(v val) []string {
	cmd, items, ok := d.strList(v)
	if !ok {
		return nil
	}
	if len(cmd) == 0 {
		d.errorf(v.line, v.field, "must not be empty")
		return nil
	}
	d.absClean(items[0], cmd[0])
	return cmd
}

// absClean reports whether s is an absolute path with nothing to clean
// (no ., .., // or trailing /), recording an error if not.
func (d *decoder) absClean(v val, s string) bool {
	if !path.IsAbs(s) || path.Clean(s) != s {
		d.errorf(v.line, v.field, "must be an absolute, clean path (no ., .., // or trailing /), got %q", s)
		return false
	}
	return true
}

// workdir accepts an absolute clean path, ~ or ~/clean/path.
func (d *decoder) workdir(v val, s string) {
	rest := s
	if s == "~" {
		return
	}
	if strings.HasPrefix(s, "~/") {
		rest = s[1:]
	}
	if !path.IsAbs(rest) || path.Clean(rest) != rest || rest == "/" && s != "/" {
		d.errorf(v.line, v.field, "must be an absolute or ~/ path with no ., .., // or trailing /, got %q", s)
	}
}

func checkUser(s string) error {
	if len(s) == 0 || len(s) > 32 {
		return fmt.Errorf("user name must be 1 to 32 characters, got %d", len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c == '_' || i > 0 && (c >= '0' && c <= '9' || c == '-')
		if !ok {
			return fmt.Errorf("user name %q must match [a-z_][a-z0-9_-]*", s)
		}
	}
	return nil
}

func (d *decoder) env(v val) map[string]string {
	entries, _ := d.mapping(v, nil)
	out := make(map[string]string, len(entries))
	for _, e := range entries {
		if err := checkEnvKey(e.key); err != nil {
			d.errorf(e.v.line, e.v.field, "%v", err)
			continue
		}
		if s, ok := d.str(e.v); ok {
			out[e.key] = s
		}
	}
	return out
}

func checkEnvKey(k string) error {
	if k == "" {
		return fmt.Errorf("empty variable name")
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		ok := c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_' || i > 0 && c >= '0' && c <= '9'
		if !ok {
			return fmt.Errorf("variable name %q must match [A-Za-z_][A-Za-z0-9_]*", k)
		}
	}
	// The daemon sets COCONUT_* (the AID, the socket); a manifest must not
	// be able to spoof them.
	if strings.HasPrefix(strings.ToUpper(k), "COCONUT_") {
		return fmt.Errorf("variable name %q: the COCONUT_ prefix is reserved", k)
	}
	return nil
}

// caps parses a list of capability strings; errors point at the item.
func (d *decoder) caps(v val) ([]capability.Cap, []val, bool) {
	ss, items, ok := d.strList(v)
	if !ok {
		return nil, nil, false
	}
	var out []capability.Cap
	for i, s := range ss {
		c, err := capability.Parse(s)
		if err != nil {
			d.errorf(items[i].line, items[i].field, "%v", err)
			ok = false
			continue
		}
		out = append(out, c)
	}
	return out, items, ok
}

func (d *decoder) withinCeiling(a AgentSpec, items []val) {
	for i, c := range a.Capabilities {
		if !policy.Within(a.Ceiling, c) {
			d.errorf(items[i].line, items[i].field, "%s is not within the agent's ceiling", c)
		}
	}
}
