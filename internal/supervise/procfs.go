package supervise

import (
	"strconv"
	"strings"
)

// procfs shows every process of the machine under /proc/PID: command
// lines, status, limits, cgroups, mount tables. Landlock's ptrace scoping
// already hides the parts behind a ptrace check (mem, environ, fd, maps…),
// not the world-readable ones. The supervisor refuses opens of anything
// under /proc/PID/ (and /proc/PID itself) for a PID outside the agent
// (sameAgent): the caller's own processes and threads stay visible,
// /proc/self included, and so do files of procfs's root (/proc/meminfo,
// /proc/cpuinfo). What remains visible is in docs/security.md ("What an
// agent can still see").

// procPID returns the PID of a /proc/PID path, or 0.
func procPID(path string) int {
	rest, ok := strings.CutPrefix(path, "/proc/")
	if !ok {
		return 0
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest = rest[:i]
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n <= 0 || rest[0] == '+' || rest[0] == '0' {
		return 0
	}
	return n
}

// procVisible reports whether the calling agent may open obj: false only
// for another process's /proc/PID entries.
func (s *Server) procVisible(obj object) bool {
	pid := procPID(obj.path)
	if pid == 0 {
		return true
	}
	in, e := sameAgent(s.caller, pid)
	return e == 0 && in
}
