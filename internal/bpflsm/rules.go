package bpflsm

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/policy"
)

// Rights in a rule (bpf/include/lsm.h).
const (
	RightRead  = 1
	RightWrite = 2
	RightExec  = 4
	// RightMapExec: map the file as code (mmap/mprotect PROT_EXEC).
	// RightExec implies it; the baseline's Libraries and Exec have it.
	RightMapExec = 8
)

// PathMax is the most path bytes a rule key holds, NUL included.
const PathMax = 252

// ErrInexpressible: an fs scope the LPM trie cannot hold. The agent is
// refused at spawn (or the grant refused), never given a wider rule.
var ErrInexpressible = errors.New("not expressible by the bpf-lsm rules")

// Baseline is what every agent may use beside its bundle: path prefixes
// (each the path itself and everything under it), as enforce's baseline.
// Programs are files the agent may exec (and read) beside its bundle: the
// trampoline and the measured program a spawn execs.
// Libraries are readable directories whose files may be mapped as code
// (the system's shared libraries).
type Baseline struct{ Read, Write, Exec, Programs, Libraries []string }

// Policy is what the programs hold for one agent.
type Policy struct {
	Files []Rule
	Unix  []string // allowed Unix socket addresses, kernel form (NUL + name for abstract)
}

// Rule is one trie entry: Key is a directory prefix ending in '/' or a
// file path ending in NUL.
type Rule struct {
	Key    string
	Rights uint32
}

// Compile turns an agent's fs capabilities (~ already expanded) and the
// baseline into trie entries. Scopes map exactly: "/a/b" is the file rule
// /a/b, "/a/b/**" the file rule /a/b and the directory rule /a/b/, "/**"
// the directory rule /. A '*' anywhere else has no byte-prefix form and is
// refused with ErrInexpressible, as is a rule longer than PathMax.
// fs.exec grants exec and read; the baseline's exec entries (the ELF
// interpreter, opened by the kernel during exec) are read rules: exec by
// the agent itself is decided on its bundle alone, as in the portable
// backend. The rights of every directory rule are folded into the longer
// rules under it, so the longest match alone decides.
//
// net.connect:unix: capabilities become the Unix socket allowlist
// (policy.UnixSockets, exact); other net capabilities are the network
// guard's. The trie is exact where it compiles (TestConformanceCompile
// runs the policy's table against Decide below); a glob it cannot hold
// refuses the bundle, so nothing is left for another layer to decide.
func Compile(caps []capability.Cap, base Baseline) (Policy, error) {
	files, err := compileFiles(caps, base)
	if err != nil {
		return Policy{}, err
	}
	p := Policy{Files: files}
	socks, err := policy.UnixSockets(caps)
	var re *policy.RuleError
	if errors.As(err, &re) {
		return Policy{}, fmt.Errorf("%s: %w: not a Unix socket address of at most %d bytes", re.Cap, ErrInexpressible, unixPathMax)
	}
	for _, addr := range socks {
		if len(addr) > unixPathMax {
			return Policy{}, fmt.Errorf("net.connect:unix:%s: %w: not a Unix socket address of at most %d bytes",
				strings.Replace(addr, "\x00", "@", 1), ErrInexpressible, unixPathMax)
		}
		p.Unix = append(p.Unix, addr)
	}
	sort.Strings(p.Unix)
	return p, nil
}

// unixPathMax is sun_path's size.
const unixPathMax = 108

func compileFiles(caps []capability.Cap, base Baseline) ([]Rule, error) {
	acc := map[string]uint32{}
	for _, p := range base.Read {
		if err := addPrefix(acc, p, RightRead); err != nil {
			return nil, err
		}
	}
	for _, p := range base.Write {
		if err := addPrefix(acc, p, RightWrite); err != nil {
			return nil, err
		}
	}
	for _, p := range base.Exec {
		if err := addPrefix(acc, p, RightRead|RightMapExec); err != nil {
			return nil, err
		}
	}
	for _, p := range base.Libraries {
		if err := addPrefix(acc, p, RightRead|RightMapExec); err != nil {
			return nil, err
		}
	}
	for _, p := range base.Programs {
		if err := put(acc, p+"\x00", RightExec|RightRead|RightMapExec); err != nil {
			return nil, err
		}
	}
	for _, c := range caps {
		if c.Domain != "fs" {
			continue
		}
		var r uint32
		switch c.Verb {
		case "read":
			r = RightRead
		case "write":
			r = RightWrite
		case "exec":
			r = RightExec | RightRead | RightMapExec
		default:
			return nil, fmt.Errorf("%s: %w: unknown fs verb", c, ErrInexpressible)
		}
		if err := addScope(acc, c.Scope, r); err != nil {
			return nil, fmt.Errorf("%s: %w", c, err)
		}
	}
	return fold(acc), nil
}

func addScope(acc map[string]uint32, scope string, r uint32) error {
	if !strings.HasPrefix(scope, "/") {
		return fmt.Errorf("%w: scope %q is not absolute (~ not expanded?)", ErrInexpressible, scope)
	}
	switch {
	case scope == "/**":
		return put(acc, "/", r)
	case strings.HasSuffix(scope, "/**"):
		dir := strings.TrimSuffix(scope, "/**")
		if strings.Contains(dir, "*") {
			return fmt.Errorf("%w: a glob inside a component (%s) has no path-prefix form", ErrInexpressible, scope)
		}
		return addPrefix(acc, dir, r)
	case strings.Contains(scope, "*"):
		return fmt.Errorf("%w: a glob inside a component (%s) has no path-prefix form", ErrInexpressible, scope)
	}
	return put(acc, scope+"\x00", r)
}

// addPrefix adds p itself and everything under it.
func addPrefix(acc map[string]uint32, p string, r uint32) error {
	if p == "/" {
		return put(acc, "/", r)
	}
	if err := put(acc, p+"\x00", r); err != nil {
		return err
	}
	return put(acc, p+"/", r)
}

func put(acc map[string]uint32, key string, r uint32) error {
	if len(key) > PathMax {
		return fmt.Errorf("%w: %d bytes, more than the %d a rule key holds", ErrInexpressible, len(key), PathMax)
	}
	acc[key] |= r
	return nil
}

// fold gives each rule the rights of every directory rule that is a prefix
// of it, in key order (deterministic for tests and maps).
func fold(acc map[string]uint32) []Rule {
	keys := make([]string, 0, len(acc))
	for k := range acc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]Rule, 0, len(keys))
	for _, k := range keys {
		r := acc[k]
		for d, dr := range acc {
			if len(d) < len(k) && strings.HasSuffix(d, "/") && strings.HasPrefix(k, d) {
				r |= dr
			}
		}
		out = append(out, Rule{Key: k, Rights: r})
	}
	return out
}

// Decide is the kernel's decision for an absolute path, computed on the
// compiled rules the way the trie does (longest byte prefix of path+NUL):
// for tests and doctor, never for enforcement.
func Decide(rules []Rule, path string) uint32 {
	k := path + "\x00"
	best, rights := -1, uint32(0)
	for _, r := range rules {
		if strings.HasPrefix(k, r.Key) && len(r.Key) > best {
			best, rights = len(r.Key), r.Rights
		}
	}
	return rights
}
