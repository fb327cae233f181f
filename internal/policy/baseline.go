package policy

// Baseline is what every agent may use beside its bundle: path prefixes,
// each the path itself and everything under it.
type Baseline struct{ Read, Write, Exec []string }

// System is the baseline of every agent: what every program needs to
// start on a Linux system. The dynamic loader (Landlock checks EXECUTE on
// the ELF interpreter the kernel opens), shared libraries, locale and
// name-service files, the harmless devices and procfs (Landlock's ptrace
// scoping still hides other domains' /proc/PID internals). It is recorded
// in every attestation.
var System = Baseline{
	Read: []string{"/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/lib32", "/usr/share/zoneinfo", "/usr/share/locale",
		"/etc/ld.so.cache", "/etc/localtime", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/hosts",
		"/etc/resolv.conf", "/etc/ssl/certs", "/etc/ssl/openssl.cnf", "/dev/tty", "/dev/zero", "/dev/urandom", "/dev/random", "/proc",
		// Language runtimes size themselves from these at start (Go reads
		// the huge page size and its cgroup's CPU limit); they are
		// world-readable on the host and say nothing of other users' data.
		"/sys/kernel/mm/transparent_hugepage", "/sys/fs/cgroup", "/sys/devices/system/cpu"},
	// /dev/tty: shells open it at start; an agent has no controlling
	// terminal (its own session), so the open fails with ENXIO anyway,
	// and refusing it would only fill the chain with denies.
	Write: []string{"/dev/null", "/dev/tty"},
	// The ELF interpreter. Only the Landlock floor uses these as exec
	// rights (the kernel opens the interpreter inside every dynamic
	// execve, where the supervisor never sees it); Decide treats them as
	// reads, so an agent's own execve is decided on its bundle alone.
	Exec: []string{"/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"},
}

// Strings lists b as capability strings, for attestations.
func (b Baseline) Strings() []string {
	var out []string
	for _, p := range b.Read {
		out = append(out, "fs.read:"+p)
	}
	for _, p := range b.Write {
		out = append(out, "fs.write:"+p)
	}
	for _, p := range b.Exec {
		out = append(out, "fs.exec:"+p)
	}
	return out
}

// under reports whether path is one of prefixes or lies below one.
func under(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if path == p || (len(path) > len(p) && path[:len(p)] == p && path[len(p)] == '/') {
			return true
		}
	}
	return false
}
