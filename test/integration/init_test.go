package integration

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/notify"
	"github.com/coconut-os/coconut/internal/testutil/swtpm"
)

const initUser = "coconut-it-init"

type initReport struct {
	Steps      []struct{ Name, Status, Detail string }
	Pending    bool     `json:"pending"`
	ConfigDiff []string `json:"config_diff"`
	FSSSeed    string   `json:"fss_seed"`
	DaemonPID  int      `json:"daemon_pid"`
}

func (r initReport) status(name string) string {
	for _, s := range r.Steps {
		if s.Name == name {
			return s.Status
		}
	}
	return ""
}

// initEnv is a machine that `coconut init` sets up inside a temporary
// directory: its config, state dir and socket there, a workstation user
// of its own, the daemon init started stopped at the end.
type initEnv struct {
	*env
	cfg, example string
	acct         *user.User
	uid          int
	pid          int
}

func newInitEnv(t *testing.T) *initEnv {
	t.Helper()
	if _, err := user.Lookup(initUser); err != nil {
		if out, err := exec.Command("useradd", "--create-home", "--user-group", "--shell", "/bin/sh", initUser).CombinedOutput(); err != nil {
			t.Fatalf("useradd: %v %s", err, out)
		}
	}
	u, _ := user.Lookup(initUser)
	uid, _ := strconv.Atoi(u.Uid)
	// A fresh home each run: init's work there is what is checked.
	for _, d := range []string{".config", "projects", ".ssh"} {
		os.RemoveAll(filepath.Join(u.HomeDir, d))
	}
	dir, err := os.MkdirTemp("", "coconut-init-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	e := &env{t: t, dir: dir, state: filepath.Join(dir, "state"), sock: filepath.Join(dir, "sock"), logPath: filepath.Join(dir, "state", "coconutd.log")}
	t.Cleanup(e.cleanup)
	ie := &initEnv{env: e, cfg: filepath.Join(dir, "etc", "coconut.toml"), example: filepath.Join(dir, "dream-team.yaml"), acct: u, uid: uid}
	if err := os.WriteFile(ie.example, []byte(dreamTeam(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ie.stopDaemon) // before e.cleanup
	return ie
}

// stopDaemon stops the daemon init started, if it did.
func (ie *initEnv) stopDaemon() {
	if ie.pid == 0 {
		return
	}
	syscall.Kill(ie.pid, syscall.SIGTERM)
	for i := 0; i < 100 && syscall.Kill(ie.pid, 0) == nil; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	ie.pid = 0
}

// init runs coconut init with the test's paths; stdin feeds its questions.
func (ie *initEnv) init(stdin string, args ...string) (initReport, string, int) {
	ie.t.Helper()
	args = append([]string{"init", "--json", "--config", ie.cfg, "--state-dir", ie.state, "--socket", ie.sock, "--example", ie.example}, args...)
	cmd := exec.Command(filepath.Join(bins, "coconut"), args...)
	cmd.Env = append(os.Environ(), "SUDO_USER="+initUser)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		ie.t.Fatal(err)
	}
	var r initReport
	if out.Len() > 0 {
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			ie.t.Fatalf("init --json: %v\n%s", err, out.String())
		}
	}
	if r.DaemonPID != 0 {
		ie.pid = r.DaemonPID
		ie.cgroupRoot() // cached for cleanup, which runs once the daemon stopped
	}
	return r, errb.String(), code
}

// asUser runs coconut as the workstation user, in their home.
func (ie *initEnv) asUser(args ...string) (string, string, int) {
	cmd := exec.Command(filepath.Join(bins, "coconut"), args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + ie.acct.HomeDir, "COCONUT_SOCKET=" + ie.sock, "NO_COLOR=1"}
	cmd.Dir = ie.acct.HomeDir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(ie.uid), Gid: uint32(ie.uid)}}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

// TestInit: the five questions answered on stdin, everything made with
// the right owners and modes, coconutd started (PID 1 is not systemd
// here, so init starts it itself and says so), and a second run changes
// nothing; a run with other answers says what it would change and
// changes nothing.
func TestInit(t *testing.T) {
	ie := newInitEnv(t)
	// profile, user, backend, anchor, notifications: Enter takes each default.
	r, errs, code := ie.init("workstation\n\n\n\n\n")
	if code != 0 {
		t.Fatalf("init: exit %d: %s", code, errs)
	}
	for _, q := range []string{"1/5 profile", "2/5 user", "3/5 backend", "4/5 anchor", "5/5 notifications", "[" + initUser + "]"} {
		if !strings.Contains(errs, q) {
			t.Errorf("questions lack %q:\n%s", q, errs)
		}
	}
	for name, want := range map[string]string{"config": "created", "host key": "created", "audit anchor": "created",
		"signing key": "created", "trust": "created", "projects": "created", "manifest": "created", "coconutd": "started"} {
		if got := r.status(name); got != want {
			t.Errorf("step %s: %q, want %q (%+v)", name, got, want, r.Steps)
		}
	}
	for _, s := range r.Steps {
		if s.Name == "coconutd" && !strings.Contains(s.Detail, "PID 1 is not systemd") && !strings.Contains(s.Detail, "not the systemd unit's") {
			t.Errorf("coconutd step does not say why init started it: %q", s.Detail)
		}
	}
	if len(r.FSSSeed) != 64 {
		t.Errorf("FSS seed %q", r.FSSSeed)
	}
	cfg, err := os.ReadFile(ie.cfg)
	if err != nil || !strings.Contains(string(cfg), "user = \""+initUser+"\"") || !strings.Contains(string(cfg), "# ") || !strings.Contains(string(cfg), `profile = "workstation"`) {
		t.Fatalf("config: %v\n%s", err, cfg)
	}
	key := filepath.Join(ie.acct.HomeDir, ".config/coconut", initUser+".key")
	for p, mode := range map[string]os.FileMode{key: 0o600, filepath.Dir(key): 0o700, filepath.Join(ie.acct.HomeDir, "projects/dream-team/notes/coder"): 0o755,
		filepath.Join(ie.acct.HomeDir, ".config/coconut/manifests/dream-team.yaml.sig"): 0o644} {
		st, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if st.Mode().Perm() != mode || int(st.Sys().(*syscall.Stat_t).Uid) != ie.uid {
			t.Errorf("%s: mode %v uid %d, want %v uid %d", p, st.Mode().Perm(), st.Sys().(*syscall.Stat_t).Uid, mode, ie.uid)
		}
	}
	if out := ie.must("trust", "ls", "--json"); !strings.Contains(out, `"added_by": `+strconv.Itoa(ie.uid)) {
		t.Errorf("trust ls: the user's key is not trusted for uid %d:\n%s", ie.uid, out)
	}

	// A workstation's daemon serves the Center by default (issue 14):
	// the user gets a login link.
	if out, errs, code := ie.asUser("center", "--no-open"); code != 0 || !strings.HasPrefix(strings.TrimSpace(out), "http://127.0.0.1:") {
		t.Errorf("coconut center on a workstation: exit %d %q %s", code, out, errs)
	}

	// Again, same answers (--yes starts from the file): nothing changes.
	r2, errs, code := ie.init("", "--yes")
	if code != 0 || r2.Pending || r2.FSSSeed != "" {
		t.Fatalf("second init: exit %d pending %v seed %q: %s", code, r2.Pending, r2.FSSSeed, errs)
	}
	for _, s := range r2.Steps {
		if s.Status != "unchanged" && s.Status != "ready" {
			t.Errorf("second init changed %s: %s %s", s.Name, s.Status, s.Detail)
		}
	}
	if r2.DaemonPID != r.DaemonPID {
		t.Errorf("second init: daemon pid %d, was %d", r2.DaemonPID, r.DaemonPID)
	}
	// Other answers: it says what it would change and changes nothing.
	r3, errs, code := ie.init("", "--yes", "--profile", "server")
	if code != 0 || !r3.Pending || !strings.Contains(strings.Join(r3.ConfigDiff, " "), `+profile = "server"`) {
		t.Fatalf("init --profile server: exit %d %+v: %s", code, r3, errs)
	}
	if now, _ := os.ReadFile(ie.cfg); !bytes.Equal(now, cfg) {
		t.Errorf("init without --reconfigure changed the config:\n%s", now)
	}
	// Bad usage is exit 2 with a precise reason.
	if _, errs, code := ie.init("", "--yes", "--user", "root"); code != 2 || !strings.Contains(errs, "must not run as root") {
		t.Errorf("--user root: exit %d %q", code, errs)
	}
}

// TestInitHeroFlow is the README's main path from an installed system:
// coconut init --yes, the user spawns the dream team, 31 agents with
// distinct AIDs, the nosy reviewer's ~/.ssh read refused with
// ECAPABILITY and audited with the supervisor's sequence number, the
// desktop notification naming the agent and the object delivered to the
// user's session bus (a real dbus-daemon with a recording notification
// server, as in TestNotifyDeny), and the chain (with its forward-secure
// seals) verifies offline.
func TestInitHeroFlow(t *testing.T) {
	ie := newInitEnv(t)
	start := time.Now()
	r, errs, code := ie.init("", "--yes")
	if code != 0 {
		t.Fatalf("init: exit %d: %s", code, errs)
	}
	initDone := time.Since(start)
	// The nosy reviewer reads ~/.ssh/id_ed25519; init leaves a real
	// user's ~/.ssh alone, so the test plays the user's key.
	ssh := filepath.Join(ie.acct.HomeDir, ".ssh")
	os.MkdirAll(ssh, 0o700)
	os.WriteFile(filepath.Join(ssh, "id_ed25519"), []byte("not a real key\n"), 0o600)
	os.Chown(ssh, ie.uid, ie.uid)
	os.Chown(filepath.Join(ssh, "id_ed25519"), ie.uid, ie.uid)

	// The user's desktop session: a private bus, a notification server,
	// and `coconut notify` following the daemon as the user.
	ie.demoHome = ie.acct.HomeDir
	bus := sessionBus(t, ie.dir)
	rec := newRecorder(t, bus)
	stateHome := filepath.Join(ie.dir, "xdg-state")
	os.MkdirAll(stateHome, 0o700)
	os.Chown(stateHome, ie.uid, ie.uid)
	np := ie.startNotify(t, uint32(ie.uid), bus, stateHome, "/bin/true")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(stateHome, "coconut", "notify.json")); err == nil {
			time.Sleep(200 * time.Millisecond) // the subscription follows the state file
			break
		}
		if time.Now().After(deadline) || np.cmd.ProcessState != nil {
			t.Fatalf("coconut notify did not start: %s", np.output())
		}
	}

	spawnAt := time.Now()
	out, errs, code := ie.asUser("agent", "spawn", "dream-team")
	if code != 0 {
		t.Fatalf("spawn dream-team as %s: exit %d: %s", initUser, code, errs)
	}
	aids := strings.Fields(out)
	seen := map[string]bool{}
	for _, a := range aids {
		seen[a] = true
	}
	if len(aids) != 31 || len(seen) != 31 {
		t.Fatalf("want 31 distinct AIDs, got %q", out)
	}
	nosy := aids[len(aids)-1] // the manifest lists the nosy reviewer last
	var deny struct {
		Seq    uint64            `json:"seq"`
		Type   string            `json:"type"`
		Object string            `json:"object"`
		Errno  int               `json:"errno"`
		KSeq   uint64            `json:"kseq"`
		Detail map[string]string `json:"detail"`
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		q, _, _ := ie.cli("audit", "query", "--json", "--aid", nosy, "--type", "cap.deny")
		if line := strings.SplitN(strings.TrimSpace(q), "\n", 2)[0]; line != "" {
			if err := json.Unmarshal([]byte(line), &deny); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no deny row for the nosy reviewer within 20 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	toDeny := time.Since(start)
	if !strings.HasSuffix(deny.Object, "/.ssh/id_ed25519") || deny.Errno != 134 || deny.KSeq == 0 || deny.Detail["source"] != "supervisor" {
		t.Errorf("nosy reviewer's deny row: %+v", deny)
	}
	nosyAID, _ := strconv.ParseUint(nosy, 10, 64)
	n := rec.wait(t, 20*time.Second, "for the nosy reviewer's deny", func(n notify.Posted) bool { return n.AID == nosyAID })
	toNotify := time.Since(start)
	if !strings.Contains(n.Summary, "nosy-reviewer") || !strings.Contains(n.Summary, nosy) || !strings.Contains(n.Body, "~/.ssh/id_ed25519") || !strings.Contains(n.Body, "ECAPABILITY") {
		t.Errorf("notification summary %q body %q: want the agent and the denied object", n.Summary, n.Body)
	}
	if !n.HasHints || n.Seq != deny.Seq {
		t.Errorf("notification for row %d (hints %v), the deny row is %d", n.Seq, n.HasHints, deny.Seq)
	}
	logs := ie.must("agent", "logs", nosy)
	if !strings.Contains(logs, "denied errno=134") {
		t.Errorf("nosy reviewer's log:\n%s", logs)
	}
	if out, errs, code := ie.cli("audit", "verify", "--state-dir", ie.state, "--seal-key", r.FSSSeed); code != 0 {
		t.Errorf("audit verify: exit %d\n%s%s", code, out, errs)
	}
	t.Logf("init --yes %v; spawn → deny %v; start → deny %v; start → notification %v (row seq %d, supervisor seq %d)",
		initDone.Round(time.Millisecond), (toDeny - spawnAt.Sub(start)).Round(time.Millisecond), toDeny.Round(time.Millisecond), toNotify.Round(time.Millisecond), deny.Seq, deny.KSeq)
	for _, a := range aids {
		ie.cli("agent", "kill", a)
	}
}

// TestInitBackendChecked: an OpenAI-compatible backend is saved only
// after a real GET /v1/models answered with a model list.
func TestInitBackendChecked(t *testing.T) {
	ie := newInitEnv(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/models" || r.Header.Get("Authorization") != "Bearer k3y" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{"object":"list","data":[{"id":"tiny-llm","object":"model"}]}`))
	}))
	defer srv.Close()
	key := filepath.Join(ie.dir, "upstream.key")
	os.WriteFile(key, []byte("k3y\n"), 0o600)

	// A wrong key: refused, nothing written.
	bad := filepath.Join(ie.dir, "bad.key")
	os.WriteFile(bad, []byte("nope\n"), 0o600)
	if _, errs, code := ie.init("", "--yes", "--no-start", "--backend", srv.URL+"/v1", "--backend-key-file", bad); code != 1 || !strings.Contains(errs, "401") {
		t.Fatalf("bad key: exit %d %q", code, errs)
	}
	if _, err := os.Stat(ie.cfg); !os.IsNotExist(err) {
		t.Fatalf("config written although the backend was refused: %v", err)
	}
	// Asked on stdin: the URL, then its key file.
	r, errs, code := ie.init("\n\n"+srv.URL+"/v1\n"+key+"\n\n\n", "--no-start")
	if code != 0 {
		t.Fatalf("init with a backend: exit %d %s", code, errs)
	}
	var detail string
	for _, s := range r.Steps {
		if s.Name == "backend" {
			detail = s.Detail
		}
	}
	if !strings.Contains(detail, "tiny-llm") {
		t.Errorf("backend step %q does not name the model it saw", detail)
	}
	cfg, _ := os.ReadFile(ie.cfg)
	if !strings.Contains(string(cfg), `upstream_url = "`+srv.URL+`/v1"`) || !strings.Contains(string(cfg), `upstream_key_file = "`+key+`"`) {
		t.Errorf("config:\n%s", cfg)
	}
}

// TestInitTPM: with a TPM (swtpm here), init takes the owner hierarchy
// (a random owner auth, its secret root-only in the state dir), defines
// the NV index with it, and coconutd anchors checkpoints in it; a second
// run recognises the owner auth as its own and leaves the index to the
// running daemon; a TPM whose owner auth someone else set is refused
// with the fix.
func TestInitTPM(t *testing.T) {
	sock := swtpm.Start(t) // first: stopped after the daemon init started
	ie := newInitEnv(t)
	r, errs, code := ie.init("", "--yes", "--tpm-socket", sock)
	if code != 0 || r.status("audit anchor") != "ready" || r.FSSSeed != "" {
		t.Fatalf("init with a TPM: exit %d %+v: %s", code, r.Steps, errs)
	}
	var d struct {
		Anchor string `json:"anchor"`
	}
	json.Unmarshal([]byte(ie.must("doctor", "--json")), &d)
	if d.Anchor != "tpm" {
		t.Fatalf("doctor anchor %q, want tpm", d.Anchor)
	}
	if cfg, _ := os.ReadFile(ie.cfg); !strings.Contains(string(cfg), `tpm_socket = "`+sock+`"`) || !strings.Contains(string(cfg), `anchor = "tpm"`) {
		t.Errorf("config:\n%s", cfg)
	}
	secret := filepath.Join(ie.state, "keys", "tpm-owner.auth")
	if st, err := os.Stat(secret); err != nil || st.Mode().Perm() != 0o600 || st.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Fatalf("owner auth secret %s: %v %v", secret, st, err)
	}
	r2, errs, code := ie.init("", "--yes")
	if code != 0 || r2.Pending || r2.status("audit anchor") != "unchanged" {
		t.Fatalf("second init: exit %d %+v: %s", code, r2.Steps, errs)
	}
	// Once the daemon let the TPM go, a re-run checks the owner auth is
	// still the one it keeps.
	ie.stopDaemon()
	r3, errs, code := ie.init("", "--yes", "--no-start")
	if code != 0 || r3.status("audit anchor") != "ready" {
		t.Fatalf("init on a stopped daemon: exit %d %+v: %s", code, r3.Steps, errs)
	}
	for _, s := range r3.Steps {
		if s.Name == "audit anchor" && !strings.Contains(s.Detail, "owner auth already coconut's") {
			t.Errorf("re-run did not recognise its owner auth: %q", s.Detail)
		}
	}
	// Someone else's owner auth (here: coconut's secret lost) is an
	// error naming the fix, never a silent skip.
	os.Rename(secret, secret+".lost")
	_, errs, code = ie.init("", "--yes", "--no-start")
	if code == 0 || !strings.Contains(errs, "not by coconut") || !strings.Contains(errs, "tpm2_changeauth -c owner") {
		t.Errorf("init with a foreign owner auth: exit %d: %s", code, errs)
	}
}
