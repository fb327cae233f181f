package manifest

import (
	"errors"
	"strings"
	"testing"

	"github.com/coconut-os/coconut/internal/capability"
)

const valid = `apiVersion: coconut/v1
kind: Workload
metadata:
  name: team
  description: a test team
agents:
  - name: planner
    command: [/usr/bin/python3, /opt/agents/plan.py, --fast]
    script: /opt/agents/plan.py
    env: {MODE: fast, http_proxy: ""}
    workdir: ~/projects/x
    user: alice
    capabilities:
      - fs.read:~/projects/x/**
      - net.connect:127.0.0.1:8080
    ceiling:
      - fs.read:~/**
      - net.connect:127.0.0.0/8:*
    quota: {cpuWeight: 200, cpuMax: "50000 100000", memoryMax: 512Mi, memoryHigh: 400Mi, pids: 64, ioWeight: 50, tokens: 1000}
    memory: {hbm: 2Gi, ram: 1048576, ssd: 1Ti}
    audit: {reads: all, connect: none}
  - name: worker
    class: drone
    replicas: 3
    command:
      - /usr/local/bin/worker
`

func TestParseValid(t *testing.T) {
	m, err := Parse("team.yaml", []byte(valid))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if m.APIVersion != APIVersion || m.Kind != Kind || m.Metadata.Name != "team" || m.Metadata.Description != "a test team" || m.File != "team.yaml" {
		t.Fatalf("header = %+v", m)
	}
	if len(m.Agents) != 2 {
		t.Fatalf("agents = %d", len(m.Agents))
	}
	p := m.Agents[0]
	checks := []struct {
		name string
		ok   bool
	}{
		{"class defaults to name", p.Class == "planner"},
		{"replicas defaults to 1", p.Replicas == 1},
		{"command", len(p.Command) == 3 && p.Command[2] == "--fast"},
		{"script", p.Script == "/opt/agents/plan.py"},
		{"env", len(p.Env) == 2 && p.Env["MODE"] == "fast" && p.Env["http_proxy"] == ""},
		{"workdir", p.Workdir == "~/projects/x"},
		{"user", p.User == "alice"},
		{"capabilities", len(p.Capabilities) == 2 && p.Capabilities[1] == capability.Cap{Domain: "net", Verb: "connect", Scope: "127.0.0.1:8080"}},
		{"ceiling", len(p.Ceiling) == 2},
		{"quota", p.Quota == Quota{CPUWeight: 200, CPUMax: "50000 100000", MemoryMax: 512 << 20, MemoryHigh: 400 << 20, Pids: 64, IOWeight: 50, Tokens: 1000}},
		{"memory", p.Memory == MemoryTiers{HBM: 2 << 30, RAM: 1 << 20, SSD: 1 << 40}},
		{"audit with defaults", p.Audit == AuditPolicy{Reads: "all", Writes: "all", Exec: "all", Connect: "none"}},
		{"line and index", p.Line == 7 && p.Index == 0},
		{"second class", m.Agents[1].Class == "drone" && m.Agents[1].Replicas == 3},
		{"default audit", m.Agents[1].Audit == AuditPolicy{Reads: "first", Writes: "all", Exec: "all", Connect: "all"}},
		{"no ceiling is nil", m.Agents[1].Ceiling == nil},
		{"second index", m.Agents[1].Index == 1 && m.Agents[1].Line == 22},
		{"supervised by default", p.Enforcement == EnforceSupervised && m.Agents[1].Enforcement == EnforceSupervised},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !c.ok {
				t.Fatalf("%+v", m.Agents)
			}
		})
	}
}

func TestEnforcementStatic(t *testing.T) {
	m, err := Parse("m.yaml", []byte(agent(cmd, "capabilities: [fs.read:/tmp/**]", "enforcement: static")))
	if err != nil {
		t.Fatal(err)
	}
	if m.Agents[0].Enforcement != EnforceStatic {
		t.Fatalf("enforcement %q", m.Agents[0].Enforcement)
	}
}

func TestInstances(t *testing.T) {
	m, err := Parse("team.yaml", []byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	inst := m.Instances()
	want := []string{"planner", "worker-1", "worker-2", "worker-3"}
	if len(inst) != len(want) {
		t.Fatalf("instances = %d, want %d", len(inst), len(want))
	}
	for i, w := range want {
		if inst[i].Name != w {
			t.Errorf("instance %d = %q, want %q", i, inst[i].Name, w)
		}
	}
	if inst[0].Replica != 1 || inst[3].Replica != 3 || inst[3].Spec != &m.Agents[1] {
		t.Fatalf("replica numbering or spec pointer wrong: %+v", inst)
	}
}

func TestLine(t *testing.T) {
	m, err := Parse("team.yaml", []byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		field string
		want  int
	}{
		{"apiVersion", 1},
		{"metadata.name", 4},
		{"agents", 6},
		{"agents[0]", 7},
		{"agents[0].command[0]", 8},
		{"agents[0].env.MODE", 10},
		{"agents[0].capabilities[1]", 15},
		{"agents[0].quota.memoryMax", 19},
		{"agents[1].command", 25},
		{"agents[1].command[0]", 26},
		{"agents[5].command[0]", 0},
		{"nope", 0},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			if got := m.Line(tt.field); got != tt.want {
				t.Fatalf("Line(%q) = %d, want %d", tt.field, got, tt.want)
			}
		})
	}
}

// agent wraps agent lines (indented four spaces) into a manifest; the first
// agent line is line 7.
func agent(lines ...string) string {
	return "apiVersion: coconut/v1\nkind: Workload\nmetadata:\n  name: t\nagents:\n  - name: a\n" +
		"    " + strings.Join(lines, "\n    ") + "\n"
}

const cmd = "command: [/bin/true]"

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // "FILE:LINE: FIELD: msg" prefix or substring
	}{
		{"empty", "", "m.yaml: empty manifest"},
		{"only comment", "# nothing\n", "m.yaml: empty manifest"},
		{"too large", strings.Repeat("#", MaxSize+1), "larger than the 1048576 byte limit"},
		{"malformed yaml", "apiVersion: coconut/v1\nkind: [Workload\n", "m.yaml:2: invalid YAML: did not find expected ',' or ']'"},
		{"unclosed quote", "a: 1\nb: 2\nc: \"abc\n", "m.yaml:3: invalid YAML: found unexpected end of stream"},
		{"tab indent", "a: 1\n\tb: 2\n", "m.yaml:2: invalid YAML"},
		{"missing key", "a:\n  b: 1\n c: 2\n", "m.yaml:3: invalid YAML: did not find expected key"},
		{"bad indentation", "a: b\n  c: d\n", "m.yaml:2: invalid YAML"},
		{"two documents", valid + "---\napiVersion: coconut/v1\n", "m.yaml:27: more than one YAML document"},
		{"root not mapping", "- a\n", "m.yaml:1: must be a mapping, got a list"},
		{"alias", "apiVersion: &v coconut/v1\nkind: *v\n", "m.yaml:2: YAML aliases (*v) are not allowed"},
		{"merge key", "apiVersion: coconut/v1\n<<: {kind: Workload}\n", "m.yaml:2: keys must be strings"},
		{"unknown top field", "apiVersion: coconut/v1\nkinds: Workload\n", "m.yaml:2: kinds: unknown field"},
		{"duplicate top key", "apiVersion: coconut/v1\napiVersion: coconut/v1\n", "m.yaml:2: apiVersion: duplicate key (first on line 1)"},
		{"wrong apiVersion", strings.Replace(valid, "coconut/v1", "coconut/v2", 1), `m.yaml:1: apiVersion: must be "coconut/v1", got "coconut/v2"`},
		{"wrong kind", strings.Replace(valid, "kind: Workload", "kind: Job", 1), `m.yaml:2: kind: must be "Workload"`},
		{"kind not string", strings.Replace(valid, "kind: Workload", "kind: 7", 1), "m.yaml:2: kind: must be a string, got an integer (quote it)"},
		{"missing apiVersion", strings.Replace(valid, "apiVersion: coconut/v1\n", "", 1), "m.yaml:1: apiVersion: required"},
		{"missing agents", "apiVersion: coconut/v1\nkind: Workload\nmetadata: {name: t}\n", "m.yaml:1: agents: required"},
		{"missing metadata name", strings.Replace(valid, "  name: team\n", "", 1), "m.yaml:3: metadata.name: required"},
		{"bad metadata name", strings.Replace(valid, "name: team", "name: Team", 1), `m.yaml:4: metadata.name: "Team": only lowercase`},
		{"metadata name dash", strings.Replace(valid, "name: team", "name: team-", 1), "must not start or end with '-'"},
		{"metadata name long", strings.Replace(valid, "name: team", "name: "+strings.Repeat("a", 64), 1), "m.yaml:4: metadata.name: must be 1 to 63 characters"},
		{"unknown metadata field", strings.Replace(valid, "  description:", "  labels:", 1), "m.yaml:5: metadata.labels: unknown field"},
		{"agents empty", "apiVersion: coconut/v1\nkind: Workload\nmetadata: {name: t}\nagents: []\n", "m.yaml:4: agents: must list at least one agent"},
		{"agents not list", "apiVersion: coconut/v1\nkind: Workload\nmetadata: {name: t}\nagents: {a: 1}\n", "m.yaml:4: agents: must be a list, got a mapping"},
		{"agent not mapping", "apiVersion: coconut/v1\nkind: Workload\nmetadata: {name: t}\nagents: [x]\n", "m.yaml:4: agents[0]: must be a mapping, got a string"},
		{"agent missing command", agent("replicas: 2"), "m.yaml:6: agents[0].command: required"},
		{"agent missing name", "apiVersion: coconut/v1\nkind: Workload\nmetadata: {name: t}\nagents:\n  - command: [/bin/true]\n", "m.yaml:5: agents[0].name: required"},
		{"agent unknown field", agent(cmd, "image: ubuntu"), "m.yaml:8: agents[0].image: unknown field"},
		{"agent duplicate key", agent(cmd, "command: [/bin/false]"), "m.yaml:8: agents[0].command: duplicate key (first on line 7)"},
		{"replicas zero", agent(cmd, "replicas: 0"), "m.yaml:8: agents[0].replicas: must be between 1 and 1000, got 0"},
		{"replicas too many", agent(cmd, "replicas: 1001"), "m.yaml:8: agents[0].replicas: must be between 1 and 1000, got 1001"},
		{"replicas string", agent(cmd, `replicas: "3"`), "m.yaml:8: agents[0].replicas: must be an integer, got a string"},
		{"replicas float", agent(cmd, "replicas: 1.5"), "m.yaml:8: agents[0].replicas: must be an integer, got a number"},
		{"enforcement unknown", agent(cmd, "enforcement: landlock"), `m.yaml:8: agents[0].enforcement: must be supervised or static, got "landlock"`},
		{"enforcement not string", agent(cmd, "enforcement: [static]"), "m.yaml:8: agents[0].enforcement: must be a string, got a list"},
		{"static with ceiling", agent(cmd, "capabilities: [fs.read:/tmp/**]", "ceiling: [fs.read:/**]", "enforcement: static"), "m.yaml:10: agents[0].enforcement: static enforcement cannot have a ceiling"},
		{"replicas huge", agent(cmd, "replicas: 99999999999999999999"), "m.yaml:8: agents[0].replicas: "},
		{"total instances", agent(cmd, "replicas: 600") + "  - name: b\n    replicas: 500\n    " + cmd + "\n", "m.yaml:10: agents[1].replicas: total instances 1100 exceeds 1000"},
		{"duplicate agent", agent(cmd) + "  - name: a\n    " + cmd + "\n", `m.yaml:8: agents[1].name: duplicate agent name "a" (also agents[0])`},
		{"instance clash", agent(cmd, "replicas: 2") + "  - name: a-2\n    " + cmd + "\n", `m.yaml:9: agents[1].name: instance name "a-2" clashes with agents[0]`},
		{"instance name too long", strings.Replace(agent(cmd, "replicas: 10"), "name: a", "name: "+strings.Repeat("a", 61), 1), "m.yaml:6: agents[0].name: instance names"},
		{"bad class", agent(cmd, "class: Big"), `m.yaml:8: agents[0].class: "Big"`},
		{"command empty", agent("command: []"), "m.yaml:7: agents[0].command: must not be empty"},
		{"command not list", agent("command: /bin/true"), "m.yaml:7: agents[0].command: must be a list, got a string"},
		{"command relative", agent("command: [bin/true]"), `m.yaml:7: agents[0].command[0]: must be an absolute, clean path`},
		{"command dotdot", agent("command: [/usr/../bin/sh]"), "m.yaml:7: agents[0].command[0]: must be an absolute, clean path"},
		{"command arg int", agent("command:", "  - /bin/sleep", "  - 5"), "m.yaml:9: agents[0].command[1]: must be a string, got an integer (quote it)"},
		{"command NUL", agent(`command: ["/bin/a\0b"]`), "m.yaml:7: agents[0].command[0]: must not contain NUL"},
		{"script not in command", agent(cmd, "script: /opt/x.py"), `m.yaml:8: agents[0].script: "/opt/x.py" must appear as an argument`},
		{"script relative", agent("command: [/usr/bin/python3, x.py]", "script: x.py"), "m.yaml:8: agents[0].script: must be an absolute, clean path"},
		{"script is argv0 only", agent(cmd, "script: /bin/true"), "must appear as an argument"},
		{"env reserved", agent(cmd, "env: {COCONUT_AID: '1'}"), `m.yaml:8: agents[0].env.COCONUT_AID: variable name "COCONUT_AID": the COCONUT_ prefix is reserved`},
		{"env reserved lowercase", agent(cmd, "env: {coconut_socket: x}"), "prefix is reserved"},
		{"env bad key", agent(cmd, "env: {1X: a}"), `agents[0].env.1X: variable name "1X" must match`},
		{"env value int", agent(cmd, "env:", "  DEBUG: 1"), "m.yaml:9: agents[0].env.DEBUG: must be a string, got an integer (quote it)"},
		{"env duplicate", agent(cmd, "env:", "  A: x", "  A: y"), "m.yaml:10: agents[0].env.A: duplicate key (first on line 9)"},
		{"env not mapping", agent(cmd, "env: [A=b]"), "m.yaml:8: agents[0].env: must be a mapping, got a list"},
		{"workdir relative", agent(cmd, "workdir: projects"), "m.yaml:8: agents[0].workdir: must be an absolute or ~/ path"},
		{"workdir dotdot", agent(cmd, "workdir: ~/a/../b"), "m.yaml:8: agents[0].workdir:"},
		{"workdir trailing slash", agent(cmd, "workdir: /srv/"), "m.yaml:8: agents[0].workdir:"},
		{"workdir tilde user", agent(cmd, "workdir: ~bob/x"), "m.yaml:8: agents[0].workdir:"},
		{"user bad", agent(cmd, "user: Alice"), `m.yaml:8: agents[0].user: user name "Alice" must match`},
		{"user null", agent(cmd, "user:"), "m.yaml:8: agents[0].user: must be a string, got nothing (null)"},
		{"capability bad", agent(cmd, "capabilities:", "  - fs.read:~/x/**", "  - fs.read:foo"), "m.yaml:10: agents[0].capabilities[1]: fs.read:foo: scope must be an absolute path or start with ~/"},
		{"capability unknown", agent(cmd, "capabilities: [disk.wipe:/]"), `m.yaml:8: agents[0].capabilities[0]: disk.wipe:/: unknown domain "disk"`},
		{"capability not string", agent(cmd, "capabilities: [{fs.read: /x}]"), "m.yaml:8: agents[0].capabilities[0]: must be a string, got a mapping"},
		{"outside ceiling", agent(cmd, "capabilities:", "  - fs.read:/etc/**", "ceiling: [fs.read:~/**]"), "m.yaml:9: agents[0].capabilities[0]: fs.read:/etc/** is not within the agent's ceiling"},
		{"empty ceiling", agent(cmd, "capabilities: [x.a.b]", "ceiling: []"), "m.yaml:8: agents[0].capabilities[0]: x.a.b is not within"},
		{"bad ceiling", agent(cmd, "ceiling: [fs.read:rel]"), "m.yaml:8: agents[0].ceiling[0]: fs.read:rel: scope must be"},
		{"quota unknown", agent(cmd, "quota: {cpu: 1}"), "m.yaml:8: agents[0].quota.cpu: unknown field"},
		{"cpuWeight zero", agent(cmd, "quota: {cpuWeight: 0}"), "m.yaml:8: agents[0].quota.cpuWeight: must be between 1 and 10000, got 0"},
		{"ioWeight big", agent(cmd, "quota: {ioWeight: 10001}"), "agents[0].quota.ioWeight: must be between 1 and 10000"},
		{"pids zero", agent(cmd, "quota:", "  pids: 0"), "m.yaml:9: agents[0].quota.pids: must be between 1"},
		{"cpuMax one field", agent(cmd, `quota: {cpuMax: "50000"}`), `agents[0].quota.cpuMax: must be "QUOTA PERIOD"`},
		{"cpuMax bad quota", agent(cmd, `quota: {cpuMax: "lots 100000"}`), "quota must be max or an integer"},
		{"cpuMax bad period", agent(cmd, `quota: {cpuMax: "max 10"}`), "period must be an integer from 1000 to 1000000"},
		{"cpuMax int", agent(cmd, "quota: {cpuMax: 50000}"), "agents[0].quota.cpuMax: must be a string, got an integer"},
		{"memoryMax suffix", agent(cmd, "quota: {memoryMax: 512MB}"), `agents[0].quota.memoryMax: size must be bytes or a number with Ki, Mi, Gi or Ti, got "512MB"`},
		{"memoryMax zero", agent(cmd, "quota: {memoryMax: 0}"), "agents[0].quota.memoryMax: must be between 1"},
		{"memoryMax overflow", agent(cmd, "quota: {memoryMax: 99999999999Ti}"), "too large"},
		{"memoryMax negative", agent(cmd, "quota: {memoryMax: -5Mi}"), "size must be bytes"},
		{"memoryHigh above max", agent(cmd, "quota:", "  memoryMax: 1Mi", "  memoryHigh: 2Mi"), "m.yaml:10: agents[0].quota.memoryHigh: 2097152 bytes is above memoryMax"},
		{"tokens zero", agent(cmd, "quota: {tokens: 0}"), "agents[0].quota.tokens: must be between 1"},
		{"memory unknown tier", agent(cmd, "memory: {vram: 1Gi}"), "m.yaml:8: agents[0].memory.vram: unknown field"},
		{"memory bad size", agent(cmd, "memory: {hbm: lots}"), "agents[0].memory.hbm: size must be"},
		{"audit bad level", agent(cmd, "audit: {reads: some}"), `m.yaml:8: agents[0].audit.reads: must be one of all, first, none, got "some"`},
		{"audit unknown", agent(cmd, "audit: {deletes: all}"), "agents[0].audit.deletes: unknown field"},
		{"custom tag", agent(cmd, "user: !secret alice"), "agents[0].user: must be a string, got a value tagged !secret"},
		{"binary tag", agent(cmd, "user: !!binary YWxpY2U="), "agents[0].user: must be a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse("m.yaml", []byte(tt.in))
			if err == nil {
				t.Fatalf("accepted: %+v", m)
			}
			if m != nil {
				t.Fatal("returned a manifest with an error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not match ErrInvalid", err)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not a *Error", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error:\n%v\nwant it to contain:\n%s", err, tt.want)
			}
		})
	}
}

func TestErrorsSortedAndJoined(t *testing.T) {
	in := agent("replicas: 0", "command: [rel]", "user: BAD")
	_, err := Parse("m.yaml", []byte(in))
	if err == nil {
		t.Fatal("accepted")
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{"m.yaml:7: agents[0].replicas:", "m.yaml:8: agents[0].command[0]:", "m.yaml:9: agents[0].user:"}
	if len(lines) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("error %d = %q, want prefix %q", i, lines[i], w)
		}
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		name string
		e    *Error
		want string
	}{
		{"full", Errorf("dream-team.yaml", 14, "agents[2].replicas", "must be between 1 and 1000, got %d", 0), "dream-team.yaml:14: agents[2].replicas: must be between 1 and 1000, got 0"},
		{"no line", Errorf("f.yaml", 0, "", "empty manifest"), "f.yaml: empty manifest"},
		{"no file", Errorf("", 3, "kind", "required"), ":3: kind: required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.e.Error(); got != tt.want {
				t.Fatalf("Error() = %q, want %q", got, tt.want)
			}
			if !errors.Is(tt.e, ErrInvalid) {
				t.Fatal("not ErrInvalid")
			}
		})
	}
}
