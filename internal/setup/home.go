package setup

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path"
	"strconv"

	"github.com/coconut-os/coconut/internal/sign"
)

// account is the workstation user as init needs it.
type account struct {
	name     string
	uid, gid int
	home     string
}

func lookupUser(name string, create, dry bool) (account, Step, error) {
	u, err := user.Lookup(name)
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) && create {
		if dry {
			return account{name: name, uid: -1, gid: -1, home: "/home/" + name}, Step{Name: "user", Status: WouldCreate, Detail: name + " (unprivileged, for agents)"}, nil
		}
		if out, err := exec.Command("useradd", "--create-home", "--user-group", "--shell", "/bin/sh", "--comment", "Coconut agents", name).CombinedOutput(); err != nil {
			return account{}, Step{}, fmt.Errorf("useradd %s: %v: %s", name, err, bytes.TrimSpace(out))
		}
		if u, err = user.Lookup(name); err != nil {
			return account{}, Step{}, err
		}
		a, err := toAccount(u)
		return a, Step{Name: "user", Status: Created, Detail: fmt.Sprintf("%s (uid %d, home %s)", name, a.uid, a.home)}, err
	}
	if err != nil {
		return account{}, Step{}, fmt.Errorf("user %q: %w (create it, or answer another user)", name, err)
	}
	a, err := toAccount(u)
	return a, Step{Name: "user", Status: Unchanged, Detail: fmt.Sprintf("%s (uid %d, home %s)", name, a.uid, a.home)}, err
}

func toAccount(u *user.User) (account, error) {
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return account{}, fmt.Errorf("user %s: uid %q gid %q", u.Username, u.Uid, u.Gid)
	}
	if uid == 0 {
		return account{}, fmt.Errorf("user %s has uid 0: agents must not run as root", u.Username)
	}
	if u.HomeDir == "" || u.HomeDir == "/" {
		return account{}, fmt.Errorf("user %s has no home directory", u.Username)
	}
	return account{name: u.Username, uid: uid, gid: gid, home: u.HomeDir}, nil
}

// home does the user's part as root, but through an os.Root opened on the
// user's home: a symlink the user planted cannot send a write outside it.
// Everything made there is owned by the user.
type home struct {
	acct account
	root *os.Root
	dry  bool
}

func openHome(a account, dry bool) (*home, error) {
	if a.uid < 0 { // dry run for a user not made yet
		return &home{acct: a, dry: true}, nil
	}
	r, err := os.OpenRoot(a.home)
	if err != nil {
		return nil, fmt.Errorf("home of %s: %w", a.name, err)
	}
	return &home{acct: a, root: r, dry: dry}, nil
}

func (h *home) Close() {
	if h.root != nil {
		h.root.Close()
	}
}

func (h *home) abs(rel string) string { return path.Join(h.acct.home, rel) }

func (h *home) exists(rel string) bool {
	if h.root == nil {
		return false
	}
	_, err := h.root.Lstat(rel)
	return err == nil
}

// mkdirs makes each directory of rels (parents first) that is missing,
// owned by the user, and returns the ones it made (or would make).
func (h *home) mkdirs(mode fs.FileMode, rels ...string) ([]string, error) {
	var made []string
	for _, rel := range rels {
		if h.exists(rel) {
			continue
		}
		made = append(made, h.abs(rel))
		if h.dry {
			continue
		}
		if err := h.root.Mkdir(rel, mode); err != nil {
			return made, err
		}
		if err := h.root.Lchown(rel, h.acct.uid, h.acct.gid); err != nil {
			return made, err
		}
	}
	return made, nil
}

// writeNew writes a file that must not exist yet, owned by the user.
func (h *home) writeNew(rel string, data []byte, mode fs.FileMode) error {
	f, err := h.root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Chown(h.acct.uid, h.acct.gid)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		h.root.Remove(rel)
	}
	return err
}

// replace writes rel whole (a temporary file renamed over it).
func (h *home) replace(rel string, data []byte, mode fs.FileMode) error {
	tmp := rel + ".coconut-init"
	h.root.Remove(tmp)
	if err := h.writeNew(tmp, data, mode); err != nil {
		return err
	}
	return h.root.Rename(tmp, rel)
}

func (h *home) read(rel string) ([]byte, error) {
	if h.root == nil {
		return nil, fs.ErrNotExist
	}
	return h.root.ReadFile(rel)
}

// keyRel is where the user's signing key is, relative to their home.
func keyRel(user string) string { return ".config/coconut/" + user }

// userKey makes the user's signing key pair (~/.config/coconut/USER.key,
// 0600, and .pub), or loads the one there. It returns the public key, and
// the private key when it was made or could be read.
func (h *home) userKey() (ed25519.PublicKey, ed25519.PrivateKey, Step, error) {
	prefix := keyRel(h.acct.name)
	if _, err := h.mkdirs(0o700, ".config", ".config/coconut"); err != nil {
		return nil, nil, Step{}, err
	}
	if h.exists(prefix + ".pub") {
		b, err := h.read(prefix + ".pub")
		if err != nil {
			return nil, nil, Step{}, err
		}
		pub, err := sign.ParsePublicKey(b)
		if err != nil {
			return nil, nil, Step{}, fmt.Errorf("%s.pub: %w", h.abs(prefix), err)
		}
		priv, _ := sign.LoadPrivateKey(h.abs(prefix + ".key")) // only needed to re-sign
		return pub, priv, Step{Name: "signing key", Status: Unchanged, Detail: fmt.Sprintf("%s.key (%s)", h.abs(prefix), sign.KeyID(pub))}, nil
	}
	if h.dry {
		return nil, nil, Step{Name: "signing key", Status: WouldCreate, Detail: h.abs(prefix) + ".key (0600, owned by " + h.acct.name + ")"}, nil
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, Step{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, Step{}, err
	}
	if err := h.writeNew(prefix+".key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, nil, Step{}, fmt.Errorf("signing key: %w", err)
	}
	if err := h.writeNew(prefix+".pub", sign.MarshalPublicKey(pub), 0o644); err != nil {
		h.root.Remove(prefix + ".key")
		return nil, nil, Step{}, fmt.Errorf("signing key: %w", err)
	}
	return pub, priv, Step{Name: "signing key", Status: Created, Detail: fmt.Sprintf("%s.key (%s, 0600, owned by %s)", h.abs(prefix), sign.KeyID(pub), h.acct.name)}, nil
}

// Project directories of the dream team: write scopes must exist at spawn
// (the Landlock floor attaches to inodes).
var projectDirs = []string{"projects", "projects/dream-team", "projects/dream-team/notes",
	"projects/dream-team/notes/planner", "projects/dream-team/notes/researcher",
	"projects/dream-team/notes/coder", "projects/dream-team/notes/reviewer"}

const projectReadme = `# The dream team's project

Coconut's example workload (coconut agent spawn dream-team) works here: every
agent may read this directory and write only its own notes/ subdirectory.
`

// projects prepares the dream team's directories. For the demo account
// (no real person) it also leaves the fake SSH key the nosy reviewer
// tries to read, as make demo does; a real user's ~/.ssh is not touched.
func (h *home) projects() (Step, error) {
	made, err := h.mkdirs(0o755, projectDirs...)
	if err != nil {
		return Step{}, err
	}
	if !h.exists("projects/dream-team/README.md") {
		made = append(made, h.abs("projects/dream-team/README.md"))
		if !h.dry {
			if err := h.writeNew("projects/dream-team/README.md", []byte(projectReadme), 0o644); err != nil {
				return Step{}, err
			}
		}
	}
	if h.acct.name == DemoUser {
		m, err := h.mkdirs(0o700, ".ssh")
		if err != nil {
			return Step{}, err
		}
		made = append(made, m...)
		if !h.exists(".ssh/id_ed25519") {
			made = append(made, h.abs(".ssh/id_ed25519")+" (a fake key for the nosy reviewer to try)")
			if !h.dry {
				if err := h.writeNew(".ssh/id_ed25519", []byte("demo key, not a real one\n"), 0o600); err != nil {
					return Step{}, err
				}
			}
		}
	}
	if len(made) == 0 {
		return Step{Name: "projects", Status: Unchanged, Detail: h.abs("projects/dream-team")}, nil
	}
	st := Created
	if h.dry {
		st = WouldCreate
	}
	detail := made[0]
	if len(made) > 1 {
		detail = fmt.Sprintf("%s and %d more under %s", made[0], len(made)-1, h.acct.home)
	}
	return Step{Name: "projects", Status: st, Detail: detail}, nil
}

// manifestRel is where the user's signed copy of the dream team goes:
// `coconut agent spawn dream-team` run by the user finds it there.
const manifestRel = ".config/coconut/manifests/dream-team.yaml"

// manifest copies the shipped example and signs it with the user's key.
// A copy already there with a valid signature by that key is left alone;
// one that differs from the example is replaced only when reconfigure.
func (h *home) manifest(example []byte, pub ed25519.PublicKey, priv ed25519.PrivateKey, reconfigure bool) (Step, error) {
	if _, err := h.mkdirs(0o700, ".config", ".config/coconut"); err != nil {
		return Step{}, err
	}
	if _, err := h.mkdirs(0o755, ".config/coconut/manifests"); err != nil {
		return Step{}, err
	}
	cur, err := h.read(manifestRel)
	sig, serr := h.read(manifestRel + ".sig")
	signed := err == nil && serr == nil && pub != nil && verifies(cur, sig, pub)
	abs := h.abs(manifestRel)
	switch {
	case signed && bytes.Equal(cur, example):
		return Step{Name: "manifest", Status: Unchanged, Detail: abs + " (signed)"}, nil
	case err == nil && !bytes.Equal(cur, example) && !reconfigure:
		return Step{Name: "manifest", Status: WouldChange, Detail: abs + " differs from the shipped example (--reconfigure replaces it)"}, nil
	case h.dry:
		return Step{Name: "manifest", Status: WouldCreate, Detail: abs + " and its .sig"}, nil
	case priv == nil:
		return Step{}, fmt.Errorf("manifest: cannot read %s.key to sign %s", h.abs(keyRel(h.acct.name)), abs)
	}
	s, err := sign.SignManifest(priv, "dream-team.yaml", example)
	if err != nil {
		return Step{}, err
	}
	if err := h.replace(manifestRel, example, 0o644); err != nil {
		return Step{}, err
	}
	if err := h.replace(manifestRel+".sig", s, 0o644); err != nil {
		return Step{}, err
	}
	return Step{Name: "manifest", Status: Created, Detail: abs + " signed with " + sign.KeyID(pub)}, nil
}

func verifies(manifest, sig []byte, pub ed25519.PublicKey) bool {
	_, err := sign.VerifyManifestWithKey(manifest, sig, pub)
	return err == nil
}
