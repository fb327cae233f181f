package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"
)

// Roles an agent can play.
const (
	rolePlanner    = "planner"
	roleResearcher = "researcher"
	roleCoder      = "coder"
	roleReviewer   = "reviewer"
)

// config is everything the agent was told, from flags and the environment.
type config struct {
	Role       string
	Project    string // absolute or as given, ~ expanded
	Notes      string // this agent's notes directory
	Home       string // $HOME, for ~ and the ssh probe
	Duration   time.Duration
	Interval   time.Duration
	InferEvery int // inference every N intervals
	ProbeSSH   bool

	// Identity set by coconutd; all optional.
	AID   string
	Name  string
	Class string

	// Inference; both empty means no inference.
	BaseURL      string
	BrokerSocket string
	APIKey       string
	Model        string
}

// parseConfig reads the command line (without the program name) and the
// environment through getenv, so tests need not touch the process's own.
func parseConfig(args []string, getenv func(string) string) (config, error) {
	var c config
	fs := flag.NewFlagSet("dream-agent", flag.ContinueOnError)
	// flag prints its own messages on error; main prints ours instead.
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.Role, "role", "", "planner|researcher|coder|reviewer (required)")
	fs.StringVar(&c.Project, "project", "~/projects/dream-team", "project directory")
	fs.StringVar(&c.Notes, "notes", "", "notes directory (default PROJECT/notes/ROLE)")
	fs.DurationVar(&c.Duration, "duration", 10*time.Minute, "how long to work; 0 = until signalled")
	fs.DurationVar(&c.Interval, "interval", 3*time.Second, "time between work steps")
	fs.IntVar(&c.InferEvery, "infer-every", 5, "call inference every N intervals")
	fs.BoolVar(&c.ProbeSSH, "probe-ssh", false, "try to read ~/.ssh/id_ed25519 at start and every 10 intervals")
	if err := fs.Parse(args); err != nil {
		return config{}, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	switch c.Role {
	case rolePlanner, roleResearcher, roleCoder, roleReviewer:
	case "":
		return config{}, fmt.Errorf("%w: --role is required (planner|researcher|coder|reviewer)", errUsage)
	default:
		return config{}, fmt.Errorf("%w: unknown role %q (planner|researcher|coder|reviewer)", errUsage, c.Role)
	}
	if c.Interval <= 0 {
		return config{}, fmt.Errorf("%w: --interval must be positive, got %v", errUsage, c.Interval)
	}
	if c.Duration < 0 {
		return config{}, fmt.Errorf("%w: --duration must not be negative, got %v", errUsage, c.Duration)
	}
	if c.InferEvery <= 0 {
		return config{}, fmt.Errorf("%w: --infer-every must be positive, got %d", errUsage, c.InferEvery)
	}

	c.Home = getenv("HOME")
	var err error
	if c.Project, err = expandHome(c.Project, c.Home); err != nil {
		return config{}, fmt.Errorf("%w: --project: %v", errUsage, err)
	}
	if c.Project == "" {
		return config{}, fmt.Errorf("%w: --project must not be empty", errUsage)
	}
	if c.Notes == "" {
		c.Notes = filepath.Join(c.Project, "notes", c.Role)
	} else if c.Notes, err = expandHome(c.Notes, c.Home); err != nil {
		return config{}, fmt.Errorf("%w: --notes: %v", errUsage, err)
	}
	if c.ProbeSSH && c.Home == "" {
		return config{}, fmt.Errorf("%w: --probe-ssh needs $HOME", errUsage)
	}

	c.AID = getenv("COCONUT_AID")
	c.Name = getenv("COCONUT_AGENT_NAME")
	c.Class = getenv("COCONUT_AGENT_CLASS")
	c.BaseURL = strings.TrimRight(getenv("OPENAI_BASE_URL"), "/")
	c.BrokerSocket = getenv("COCONUT_BROKER_SOCKET")
	c.APIKey = getenv("OPENAI_API_KEY")
	c.Model = getenv("COCONUT_MODEL")
	if c.Model == "" {
		c.Model = "sim"
	}
	return c, nil
}

// expandHome replaces a leading "~" or "~/" with home. "~user" is refused
// rather than guessed at.
func expandHome(p, home string) (string, error) {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		if strings.HasPrefix(p, "~") {
			return "", fmt.Errorf("%q: only ~ and ~/ are expanded", p)
		}
		return filepath.Clean(p), nil
	}
	if home == "" {
		return "", fmt.Errorf("%q: $HOME is not set", p)
	}
	return filepath.Join(home, strings.TrimPrefix(p, "~")), nil
}

// tag names this agent in file names, so replicas of one role sharing a
// notes directory do not overwrite each other's files.
func (c config) tag() string {
	for _, s := range []string{c.Name, c.AID} {
		if t := sanitize(s); t != "" {
			return t
		}
	}
	return c.Role
}

// sanitize keeps the characters safe in a file name; anything else (a "/" or
// ".." from a hostile environment) is dropped so the tag cannot leave the
// notes directory.
func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		}
		if b.Len() >= 64 {
			break
		}
	}
	return b.String()
}
