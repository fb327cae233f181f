package enforce

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/launch"
)

// baseline is what every program needs to start on a Linux system and is
// allowed to every agent beside its bundle: the dynamic loader (Landlock
// checks EXECUTE on the ELF interpreter the kernel opens), shared
// libraries, locale and name-service files, the harmless devices and
// procfs (Landlock's ptrace scoping still hides other domains' /proc/PID
// internals). It is recorded in every attestation.
var baseline = struct{ read, write, exec []string }{
	read: []string{"/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/lib32", "/usr/share/zoneinfo", "/usr/share/locale",
		"/etc/ld.so.cache", "/etc/localtime", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/hosts",
		"/etc/resolv.conf", "/etc/ssl/certs", "/etc/ssl/openssl.cnf", "/dev/tty", "/dev/zero", "/dev/urandom", "/dev/random", "/proc",
		// Language runtimes size themselves from these at start (Go reads
		// the huge page size and its cgroup's CPU limit); they are
		// world-readable on the host and say nothing of other users' data.
		"/sys/kernel/mm/transparent_hugepage", "/sys/fs/cgroup", "/sys/devices/system/cpu"},
	// /dev/tty: shells open it at start; an agent has no controlling
	// terminal (its own session), so the open fails with ENXIO anyway,
	// and refusing it would only fill the chain with denies.
	write: []string{"/dev/null", "/dev/tty"},
	exec:  []string{"/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"},
}

// Baseline lists the baseline as capability strings, for attestations.
func Baseline() []string {
	var out []string
	for _, p := range baseline.read {
		out = append(out, "fs.read:"+p)
	}
	for _, p := range baseline.write {
		out = append(out, "fs.write:"+p)
	}
	for _, p := range baseline.exec {
		out = append(out, "fs.exec:"+p)
	}
	return out
}

// Floor turns a ceiling into the Landlock floor. Landlock attaches rules
// to existing inodes and knows neither globs nor addresses, so each fs
// scope becomes its longest glob-free directory prefix (or the file it
// names), and paths that do not exist yet are left out (a write scope must
// exist at spawn).
func Floor(ceiling []capability.Cap) *launch.Floor {
	f := &launch.Floor{}
	add := func(dst *[]string, p string) {
		if _, err := os.Stat(p); err == nil {
			*dst = append(*dst, p)
		}
	}
	for _, p := range baseline.read {
		add(&f.Read, p)
	}
	for _, p := range baseline.write {
		add(&f.Write, p)
	}
	for _, p := range baseline.exec {
		add(&f.Exec, p)
	}
	// TCP stays with cgroup BPF: Landlock's connect/bind hook runs before
	// the cgroup hook and would answer EACCES, unaudited, where the guard
	// answers ECAPABILITY with a kernel sequence number and revokes at
	// once. (launch.Floor can still handle TCP ports, for a Landlock-only
	// mode.)
	for _, c := range ceiling {
		switch c.Name() {
		case "fs.read":
			add(&f.Read, globFree(c.Scope))
		case "fs.write":
			add(&f.Write, globFree(c.Scope))
		case "fs.exec":
			add(&f.Exec, globFree(c.Scope))
		}
	}
	return f
}

// globFree returns the longest prefix of an fs scope without glob
// characters, cut at a path component.
func globFree(scope string) string {
	parts := strings.Split(scope, "/")
	for i, p := range parts {
		if strings.ContainsAny(p, "*") {
			out := strings.Join(parts[:i], "/")
			if out == "" {
				return "/"
			}
			return out
		}
	}
	return filepath.Clean(scope)
}
