package orphan

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/coconut-os/coconut/internal/atomicfile"
)

// RegistryDir is where owner records live.
const RegistryDir = "/run/coconut/owners"

// Owner is a daemon's claim on a subtree and its pins.
type Owner struct {
	Name     string `json:"name"`      // the subtree's directory name, coconut-NAME
	StateDir string `json:"state_dir"` // the daemon's state directory, absolute
	PID      int    `json:"pid"`
	Start    uint64 `json:"start"`  // the pid's start time (clock ticks after boot, /proc/PID/stat)
	Cgroup   string `json:"cgroup"` // the subtree in the unified hierarchy
	Pins     string `json:"pins"`   // the pin directory in bpffs
}

// Record writes the calling process's owner record for the subtree at
// cgroupRoot with pins in pinDir, replacing any earlier record of the
// same name (a restarted daemon takes over its predecessor's subtree).
func Record(registry, stateDir, cgroupRoot, pinDir string) error {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return fmt.Errorf("owner record: %w", err)
	}
	start, err := procStart(os.Getpid())
	if err != nil {
		return fmt.Errorf("owner record: %w", err)
	}
	o := Owner{Name: filepath.Base(cgroupRoot), StateDir: abs, PID: os.Getpid(), Start: start, Cgroup: cgroupRoot, Pins: pinDir}
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(registry, 0o755); err != nil {
		return fmt.Errorf("owner record: %w", err)
	}
	if err := atomicfile.Replace(recordPath(registry, o.Name), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("owner record: %w", err)
	}
	return nil
}

// Forget removes the owner record of subtree name; a missing one is fine.
func Forget(registry, name string) error {
	if err := os.Remove(recordPath(registry, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("forget owner record: %w", err)
	}
	return nil
}

func recordPath(registry, name string) string { return filepath.Join(registry, name+".json") }

// Owners reads every record in registry. A malformed record is an error:
// it is not taken for the absence of an owner.
func Owners(registry string) (map[string]Owner, error) {
	ents, err := os.ReadDir(registry)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]Owner{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read owner records: %w", err)
	}
	out := map[string]Owner{}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(name, ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(registry, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read owner record: %w", err)
		}
		o, err := ParseOwner(b)
		if err != nil || o.Name != name {
			return nil, fmt.Errorf("owner record %s: malformed", filepath.Join(registry, e.Name()))
		}
		out[name] = o
	}
	return out, nil
}

// ParseOwner decodes one record and checks that it names what it must.
func ParseOwner(b []byte) (Owner, error) {
	var o Owner
	if err := json.Unmarshal(b, &o); err != nil {
		return Owner{}, fmt.Errorf("owner record: %w", err)
	}
	if o.Name == "" || strings.ContainsAny(o.Name, "/\x00") || o.Name == "." || o.Name == ".." ||
		!filepath.IsAbs(o.StateDir) || o.PID <= 0 || o.Start == 0 {
		return Owner{}, errors.New("owner record: missing or invalid name, state_dir, pid or start")
	}
	return o, nil
}

// Alive reports whether the recorded daemon still runs: its pid exists
// and started when the record says (not a later process given the pid).
func (o Owner) Alive() bool {
	st, err := procStart(o.PID)
	return err == nil && st == o.Start
}

// StateDirExists reports whether the recorded state directory is there.
func (o Owner) StateDirExists() bool {
	_, err := os.Stat(o.StateDir)
	return err == nil || !errors.Is(err, fs.ErrNotExist)
}

// procStart returns field 22 of /proc/PID/stat, the start time. The
// command name (field 2) may hold spaces and parentheses: fields are
// counted after its last ')'.
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStart(string(b))
}

func parseStart(stat string) (uint64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("/proc/PID/stat: no command name")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); the start time is field 22.
	if len(f) < 20 {
		return 0, errors.New("/proc/PID/stat: too few fields")
	}
	v, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("/proc/PID/stat: start time %q", f[19])
	}
	return v, nil
}
