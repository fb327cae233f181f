package setup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/coconut-os/coconut/internal/anchor"
	"github.com/coconut-os/coconut/internal/config"
)

// DemoUser is the workstation user when root runs init with no $SUDO_USER:
// an unprivileged account made for agents, as `make demo` uses.
const DemoUser = "coconut-demo"

// Answers are the five answers.
type Answers struct {
	Profile       string `json:"profile"`              // workstation or server
	User          string `json:"user"`                 // whose home agents work in, whose key signs
	Backend       string `json:"backend"`              // "sim" or an OpenAI-compatible base URL
	KeyFile       string `json:"key_file,omitempty"`   // the backend's API key file, if any
	Anchor        string `json:"anchor"`               // tpm or fss
	Notifications bool   `json:"notifications"`        // desktop notifications of denies
	TPMSocket     string `json:"tpm_socket,omitempty"` // an swtpm data socket instead of /dev/tpmrm0 (--tpm-socket)
	notifySet     bool   // Notifications came from the old file or a flag, not the profile
}

// Defaults are the answers a user who presses Enter five times gets: the
// existing configuration's where there is one (so a re-run changes
// nothing), else workstation, $SUDO_USER, the simulator, the TPM if
// /dev/tpmrm0 exists, notifications on for a workstation.
func Defaults(old *config.Config) Answers {
	a := Answers{Profile: "workstation", Backend: "sim", User: os.Getenv("SUDO_USER")}
	if a.User == "" || a.User == "root" {
		a.User = DemoUser
	}
	if old == nil {
		return a
	}
	if old.Setup.Profile != "" {
		a.Profile = old.Setup.Profile
	}
	if old.User != "" {
		a.User = old.User
	}
	if old.Broker.UpstreamURL != "" {
		a.Backend, a.KeyFile = old.Broker.UpstreamURL, old.Broker.UpstreamKeyFile
	}
	if old.Setup.Anchor != "" {
		a.Anchor = old.Setup.Anchor
	}
	a.TPMSocket = old.TPMSocket
	if old.Setup.Notifications != nil {
		a.Notifications, a.notifySet = *old.Setup.Notifications, true
	}
	return a
}

func hasTPM() bool { _, err := os.Stat(anchor.DeviceTPM); return err == nil }

// tpmAvailable: coconutd anchors in a TPM whenever one is configured or
// /dev/tpmrm0 exists (never silently in seals instead).
func (a *Answers) tpmAvailable() bool { return a.TPMSocket != "" || hasTPM() }

// question is one of the five: a key (the flag's name), a line that
// explains it, the default shown, and how an answer is taken.
type question struct {
	key     string
	explain string
	def     func(a *Answers) string
	set     func(a *Answers, s string) error
}

var questions = []question{
	{"profile", "workstation: one person, Center and notifications on; server: many users or tenants, no desktop, Center off, per-user token budgets",
		func(a *Answers) string { return a.Profile },
		func(a *Answers, s string) error {
			if s != "workstation" && s != "server" {
				return fmt.Errorf("profile %q: answer workstation or server", s)
			}
			a.Profile = s
			return nil
		}},
	{"user", "the workstation user: agents root spawns run as them, in their home, and their key (~/.config/coconut/) signs manifests",
		func(a *Answers) string { return a.User },
		func(a *Answers, s string) error {
			if s == "root" {
				return errors.New("user root: agents must not run as root; name an unprivileged user")
			}
			if s == "" || strings.ContainsAny(s, "/: \t") {
				return fmt.Errorf("user %q: not a user name", s)
			}
			a.User = s
			return nil
		}},
	{"backend", "inference: sim (the embedded simulator) or an OpenAI-compatible base URL such as http://127.0.0.1:8000/v1, checked with GET /v1/models",
		func(a *Answers) string { return a.Backend },
		func(a *Answers, s string) error {
			if s != "sim" {
				u, err := url.Parse(s)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
					return fmt.Errorf("backend %q: answer sim or http(s)://host[:port]/v1 (no credentials in the URL: give --backend-key-file)", s)
				}
			}
			a.Backend = s
			if s == "sim" {
				a.KeyFile = ""
			}
			return nil
		}},
	{"anchor", "where audit checkpoints are anchored: tpm (the NV index of /dev/tpmrm0) or fss (forward-secure seals; you keep the verification seed off this host)",
		func(a *Answers) string {
			switch {
			case a.Anchor != "":
				return a.Anchor
			case a.tpmAvailable():
				return "tpm"
			}
			return "fss"
		},
		func(a *Answers, s string) error {
			switch {
			case s == "tpm" && !a.tpmAvailable():
				return fmt.Errorf("anchor tpm: there is no %s on this machine (or give --tpm-socket); answer fss", anchor.DeviceTPM)
			case s == "fss" && a.tpmAvailable():
				return fmt.Errorf("anchor fss: coconutd anchors in the TPM whenever one is configured or %s exists; answer tpm", anchor.DeviceTPM)
			case s != "tpm" && s != "fss":
				return fmt.Errorf("anchor %q: answer tpm or fss", s)
			}
			a.Anchor = s
			return nil
		}},
	{"notifications", "desktop notifications when an agent is refused (on or off)",
		func(a *Answers) string {
			if !a.notifySet {
				a.Notifications = a.Profile == "workstation"
			}
			return onOff(a.Notifications)
		},
		func(a *Answers, s string) error {
			switch s {
			case "on", "yes", "true":
				a.Notifications = true
			case "off", "no", "false":
				a.Notifications = false
			default:
				return fmt.Errorf("notifications %q: answer on or off", s)
			}
			a.notifySet = true
			return nil
		}},
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// Set answers the question named key (a flag given on the command line).
func (a *Answers) Set(key, value string) error {
	for _, q := range questions {
		if q.key == key {
			return q.set(a, value)
		}
	}
	return fmt.Errorf("no question %q", key)
}

// Finish settles what depends on other answers (notifications follow the
// profile unless chosen) and checks the set as a whole.
func (a *Answers) Finish() error {
	for _, q := range questions {
		if err := q.set(a, q.def(a)); err != nil {
			return err
		}
	}
	if a.KeyFile != "" && !filepath.IsAbs(a.KeyFile) {
		return fmt.Errorf("backend key file %q: must be an absolute path", a.KeyFile)
	}
	return nil
}

// Ask asks every question not in fixed, one line each on w, reading one
// answer a line from r; an empty line takes the default, a wrong answer
// is asked again (three times at most). The backend's key file is asked
// right after a URL.
func (a *Answers) Ask(r io.Reader, w io.Writer, fixed map[string]bool) error {
	in := bufio.NewReader(r)
	for i, q := range questions {
		if fixed[q.key] {
			continue
		}
		fmt.Fprintf(w, "\n%d/%d %s — %s\n", i+1, len(questions), q.key, q.explain)
		if err := askOne(in, w, q.key, q.def(a), func(s string) error { return q.set(a, s) }); err != nil {
			return err
		}
		if q.key == "backend" && a.Backend != "sim" && !fixed["backend-key-file"] {
			fmt.Fprintln(w, "    the backend's API key: an absolute path to a file holding it, or none")
			def := a.KeyFile
			if def == "" {
				def = "none"
			}
			if err := askOne(in, w, "key file", def, func(s string) error {
				if s == "none" {
					a.KeyFile = ""
					return nil
				}
				if !filepath.IsAbs(s) {
					return fmt.Errorf("key file %q: give an absolute path, or none", s)
				}
				a.KeyFile = s
				return nil
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

func askOne(in *bufio.Reader, w io.Writer, label, def string, set func(string) error) error {
	for try := 0; ; try++ {
		fmt.Fprintf(w, "    %s [%s]: ", label, def)
		line, err := in.ReadString('\n')
		if err != nil && (line == "" || !errors.Is(err, io.EOF)) {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("%s: no answer on standard input (give --yes for the defaults, or flags)", label)
			}
			return err
		}
		s := strings.TrimSpace(line)
		if s == "" {
			s = def
		}
		serr := set(s)
		if serr == nil {
			return nil
		}
		fmt.Fprintln(w, "    "+serr.Error())
		if try == 2 {
			return serr
		}
	}
}
