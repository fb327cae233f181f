package setup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/coconut-os/coconut/internal/config"
)

// Step statuses.
const (
	Created     = "created"
	Unchanged   = "unchanged"
	Changed     = "changed"
	Ready       = "ready"
	Started     = "started"
	WouldCreate = "would create"
	WouldChange = "would change"
	Failed      = "failed"
)

// Step is one thing init did, or would do.
type Step struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail"`
}

func failed(name string, err error) Step {
	return Step{Name: name, Status: Failed, Detail: err.Error()}
}

// Options are one run of init.
type Options struct {
	Answers     Answers
	Config      string // the file to write
	Paths       Paths  // state dir and socket when not the defaults
	StateDir    string // resolved
	Socket      string // resolved
	Example     string // the dream team's shipped manifest
	Coconutd    string // the daemon binary (default: beside coconut, else $PATH)
	Reconfigure bool   // apply a changed configuration
	NoStart     bool   // leave coconutd alone
}

// Report is what init did: --json prints it whole.
type Report struct {
	Config     string   `json:"config"`
	Answers    Answers  `json:"answers"`
	Steps      []Step   `json:"steps"`
	Pending    bool     `json:"pending"` // something would change: run again with --reconfigure
	ConfigDiff []string `json:"config_diff,omitempty"`
	FSSSeed    string   `json:"fss_seed,omitempty"` // shown once: keep it off this host
	DaemonPID  int      `json:"daemon_pid,omitempty"`
	Next       []string `json:"next"`
}

// Run does every step, each once. When the configuration on disk differs
// from what the answers make and Reconfigure is false, nothing is
// changed: every step says what it would do instead.
func Run(ctx context.Context, o Options) (*Report, error) {
	r := &Report{Config: o.Config, Answers: o.Answers}
	add := func(s Step) error {
		r.Steps = append(r.Steps, s)
		if s.Status == WouldChange {
			r.Pending = true
		}
		if s.Status == Failed {
			return fmt.Errorf("%s: %s", s.Name, s.Detail)
		}
		return nil
	}
	a := o.Answers
	if a.Backend != "sim" {
		models, err := CheckBackend(ctx, a.Backend, a.KeyFile)
		if err != nil {
			return r, fmt.Errorf("inference backend not saved: %w", err)
		}
		add(Step{Name: "backend", Status: Ready, Detail: fmt.Sprintf("%s serves %s", a.Backend, strings.Join(first(models, 5), ", "))})
	} else {
		add(Step{Name: "backend", Status: Ready, Detail: "the embedded simulator"})
	}

	want := []byte(Render(a, o.Paths))
	old, err := os.ReadFile(o.Config)
	dry := false
	configChanged := false
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := writeConfig(o.Config, want); err != nil {
			return r, add(failed("config", err))
		}
		add(Step{Name: "config", Status: Created, Detail: o.Config})
	case err != nil:
		return r, add(failed("config", err))
	case bytes.Equal(old, want):
		add(Step{Name: "config", Status: Unchanged, Detail: o.Config})
	default:
		r.ConfigDiff = lineDiff(old, want)
		if !o.Reconfigure {
			dry = true
			add(Step{Name: "config", Status: WouldChange, Detail: o.Config + ": " + strings.Join(r.ConfigDiff, "; ") + " (run again with --reconfigure to apply)"})
			break
		}
		if err := writeConfig(o.Config, want); err != nil {
			return r, add(failed("config", err))
		}
		configChanged = true
		add(Step{Name: "config", Status: Changed, Detail: o.Config + ": " + strings.Join(r.ConfigDiff, "; ")})
	}

	if !dry {
		if err := os.MkdirAll(o.StateDir, 0o755); err != nil {
			return r, add(failed("state dir", err))
		}
	}
	if err := add(hostKey(o.StateDir, dry)); err != nil {
		return r, err
	}
	// A running daemon already holds its anchor (an swtpm serves one
	// client at a time): then there is nothing to provision.
	if d := runningDoctor(ctx, o.Socket); d != nil && d.Anchor == a.Anchor {
		add(Step{Name: "audit anchor", Status: Unchanged, Detail: fmt.Sprintf("%s, held by the running coconutd (pid %d)", a.Anchor, d.PID)})
	} else {
		st, seed := provisionAnchor(o.StateDir, a.Anchor, a.TPMSocket, dry)
		if err := add(st); err != nil {
			return r, err
		}
		r.FSSSeed = seed
	}

	acct, ust, err := lookupUser(a.User, a.User == DemoUser, dry)
	if err != nil {
		return r, add(failed("user", err))
	}
	add(ust)
	h, err := openHome(acct, dry)
	if err != nil {
		return r, add(failed("user", err))
	}
	defer h.Close()
	pub, priv, kst, err := h.userKey()
	if err != nil {
		return r, add(failed("signing key", err))
	}
	add(kst)
	if pub != nil {
		if err := add(trustUserKey(o.StateDir, pub, uint32(acct.uid), acct.name, dry)); err != nil {
			return r, err
		}
	} else {
		add(Step{Name: "trust", Status: WouldCreate, Detail: "trust the new key for " + acct.name + "'s spawns"})
	}
	pst, err := h.projects()
	if err != nil {
		return r, add(failed("projects", err))
	}
	add(pst)
	example, err := os.ReadFile(o.Example)
	if err != nil {
		return r, add(failed("manifest", fmt.Errorf("the shipped example: %w", err)))
	}
	mst, err := h.manifest(example, pub, priv, o.Reconfigure)
	if err != nil {
		return r, add(failed("manifest", err))
	}
	add(mst)

	if o.NoStart {
		add(Step{Name: "coconutd", Status: Unchanged, Detail: "not started (--no-start)"})
	} else {
		dst, pid := startDaemon(ctx, DaemonStart{Config: o.Config, StateDir: o.StateDir, Socket: o.Socket, Binary: o.Coconutd,
			Default: o.Paths == (Paths{}) && o.Config == config.DefaultPath, Restart: configChanged}, dry)
		r.DaemonPID = pid
		if err := add(dst); err != nil {
			return r, err
		}
	}
	sock := ""
	if o.Paths.Socket != "" {
		sock = " --socket " + o.Socket
	}
	r.Next = []string{
		fmt.Sprintf("runuser -u %s -- coconut%s agent spawn dream-team   # or, as %s: coconut agent spawn dream-team", acct.name, sock, acct.name),
		"coconut" + sock + " audit tail --type cap.deny   # the nosy reviewer's ~/.ssh read, refused",
		"coconut" + sock + " doctor",
	}
	return r, nil
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], "…")
	}
	return s
}

// writeConfig checks the text parses as a configuration, then writes it
// in place of the old file (a temporary file renamed over it).
func writeConfig(path string, text []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".coconut-init"
	if err := os.WriteFile(tmp, text, 0o644); err != nil {
		return err
	}
	if _, err := config.Load(tmp, true); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("the file init made does not load (a bug): %w", err)
	}
	return os.Rename(tmp, path)
}

// lineDiff lists the settings (not comments) that differ: "-old", "+new".
func lineDiff(old, want []byte) []string {
	settings := func(b []byte) []string {
		var out []string
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				out = append(out, l)
			}
		}
		return out
	}
	o, w := settings(old), settings(want)
	in := func(l string, set []string) bool {
		for _, s := range set {
			if s == l {
				return true
			}
		}
		return false
	}
	var d []string
	for _, l := range o {
		if !in(l, w) {
			d = append(d, "-"+l)
		}
	}
	for _, l := range w {
		if !in(l, o) {
			d = append(d, "+"+l)
		}
	}
	if len(d) == 0 {
		d = []string{"comments only"}
	}
	return d
}
