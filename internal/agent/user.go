package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"os/user"
	"strconv"
	"sync"

	"github.com/coconut-os/coconut/api"
)

// users decides whom an agent runs as (resolve). It owns the users the
// config names for root's agents and the creation of the demo user, made
// once on first use.
type users struct {
	mu          sync.Mutex // orders the demo user's creation
	workstation string     // config: whom root's agents run as
	demo        string     // when root asks and no workstation user is set
	log         *slog.Logger
}

// identity is the Unix user an agent runs as.
type identity struct {
	Name     string
	UID, GID uint32
	Home     string
}

func lookupName(name string) (identity, error) {
	pw, err := user.Lookup(name)
	if err != nil {
		return identity{}, err
	}
	return fromUser(pw)
}

func lookupUID(uid uint32) (identity, error) {
	pw, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return identity{}, err
	}
	return fromUser(pw)
}

// userName is uid's user name, or the uid when the system knows none.
func userName(uid uint32) string {
	if id, err := lookupUID(uid); err == nil {
		return id.Name
	}
	return strconv.FormatUint(uint64(uid), 10)
}

func fromUser(u *user.User) (identity, error) {
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return identity{}, fmt.Errorf("user %s: uid %q", u.Username, u.Uid)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return identity{}, fmt.Errorf("user %s: gid %q", u.Username, u.Gid)
	}
	return identity{Name: u.Username, UID: uint32(uid), GID: uint32(gid), Home: u.HomeDir}, nil
}

// resolve decides whom an agent runs as:
//   - the manifest's user, when root asked or it is the caller themself;
//   - else the configured workstation user when root asked;
//   - else the demo user when root asked (created on first use);
//   - else the caller.
//
// An agent runs as root only when the manifest says so and root asked.
func (u *users) resolve(caller Caller, want string) (identity, error) {
	if want != "" {
		id, err := lookupName(want)
		if err != nil {
			return identity{}, api.Errorf(api.ErrInvalid, "user %q: %v", want, err)
		}
		if caller.UID != 0 && id.UID != caller.UID {
			return identity{}, api.Errorf(api.ErrDenied, "uid %d may only run agents as itself, not as %s", caller.UID, want)
		}
		return id, nil
	}
	if caller.UID != 0 {
		id, err := lookupUID(caller.UID)
		if err != nil {
			return identity{}, api.Errorf(api.ErrInvalid, "caller uid %d has no passwd entry: %v", caller.UID, err)
		}
		return id, nil
	}
	if u.workstation != "" {
		id, err := lookupName(u.workstation)
		if err != nil {
			return identity{}, api.Errorf(api.ErrInvalid, "configured workstation user %q: %v", u.workstation, err)
		}
		return id, nil
	}
	return u.demoUser()
}

// demoUser creates or reuses the unprivileged user root's agents run as
// when no workstation user is configured: never root by default.
func (u *users) demoUser() (identity, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	name := u.demo
	id, err := lookupName(name)
	if err == nil {
		if id.UID == 0 {
			return identity{}, fmt.Errorf("demo user %s has uid 0: refusing", name)
		}
		return id, nil
	}
	var unknown user.UnknownUserError
	if !errors.As(err, &unknown) {
		return identity{}, fmt.Errorf("look up demo user %s: %w", name, err)
	}
	out, err := exec.Command("useradd", "--create-home", "--user-group", "--shell", "/bin/sh",
		"--comment", "Coconut demo agents", name).CombinedOutput()
	if err != nil {
		return identity{}, fmt.Errorf("create demo user %s: %v: %s", name, err, out)
	}
	u.log.Info("created demo user", "user", name)
	return lookupName(name)
}
