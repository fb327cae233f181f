package supervise

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// maxLinks is the kernel's MAXSYMLINKS: more symlinks in one walk is ELOOP.
const maxLinks = 40

// procRootIno is the inode number of procfs's root directory.
const procRootIno = 1

// walkOpts says how the kernel will resolve one path argument.
type walkOpts struct {
	follow bool // follow a trailing symlink
	create bool // the last component may not exist yet
	empty  bool // an empty path means the dirfd itself (AT_EMPTY_PATH)
	inRoot bool // openat2 RESOLVE_IN_ROOT: the dirfd is the root
}

// object is what a path argument resolved to.
type object struct {
	path   string // real absolute path; "" if the object has none
	exists bool
	dev    uint64
	ino    uint64
	mode   uint32
	links  uint64
	uid    uint32
	anon   bool // a pipe, socket or anonymous inode: not a file of the model
	// name is the kernel's name for an object without a path ("/memfd:x
	// (deleted)", "anon_inode:[eventfd]"): for the audit row only, never
	// for a decision.
	name string
}

// resolver resolves the path arguments of one call made by thread tid.
type resolver struct {
	tid      int
	proc     string // "/proc/TID"
	root     int    // O_PATH descriptor of the agent's root directory
	rootOurs bool   // the agent's root is this process's root
	// opened is the agent's dirfd (or cwd) opened beforehand (preopen),
	// for a walk made with the agent's credentials: reaching into
	// /proc/TID is the supervisor's business, not the agent's (a
	// non-dumpable agent could not), the walk from there is the agent's.
	opened      int
	openedDirfd int32
	openedDir   bool
}

func newResolver(tid int, root agentRoot) *resolver {
	return &resolver{tid: tid, proc: "/proc/" + strconv.Itoa(tid), root: root.fd, rootOurs: root.ours, opened: -1}
}

// agentRoot is the agent's root directory, opened once per agent: chroot,
// pivot_root, setns and new mount namespaces are refused by the filter, so
// no task of the agent can ever have another root.
type agentRoot struct {
	fd   int
	ours bool
}

func openAgentRoot(tid int) (agentRoot, unix.Errno) {
	fd, e := openPath(unix.AT_FDCWD, "/proc/"+strconv.Itoa(tid)+"/root", unix.O_DIRECTORY)
	if e != 0 {
		return agentRoot{fd: -1}, e
	}
	var a, b unix.Stat_t
	ours := unix.Fstat(fd, &a) == nil && unix.Stat("/", &b) == nil && a.Dev == b.Dev && a.Ino == b.Ino
	return agentRoot{fd: fd, ours: ours}, 0
}

func openPath(dirfd int, name string, flags int) (int, unix.Errno) {
	for {
		fd, err := unix.Openat(dirfd, name, flags|unix.O_PATH|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, errnoOf(err)
		}
		return fd, 0
	}
}

func errnoOf(err error) unix.Errno {
	if e, ok := err.(unix.Errno); ok {
		return e
	}
	return unix.EINVAL
}

// resolve finds the object the kernel would reach for the agent's call
// (dirfd, path). It opens files with O_PATH only: nothing is read or
// changed, and no open, lock or device side effect happens.
func (r *resolver) resolve(dirfd int32, path string, o walkOpts) (object, unix.Errno) {
	obj, fd, e := r.resolveFD(dirfd, path, o)
	if fd >= 0 {
		unix.Close(fd)
	}
	return obj, e
}

// resolveFD is resolve that also returns an O_PATH descriptor of the
// object decided on, which the caller must close: a call the supervisor
// performs itself acts on exactly that object (emulate.go), whatever the
// agent's memory or the path's names say by then. fd is -1 when there is
// nothing to return: an error, or a name that does not exist yet.
func (r *resolver) resolveFD(dirfd int32, path string, o walkOpts) (obj object, fd int, e unix.Errno) {
	fd = -1
	defer func() {
		if e != 0 && fd >= 0 {
			unix.Close(fd)
			fd = -1
		}
	}()
	if path == "" {
		if !o.empty {
			return object{}, -1, unix.ENOENT
		}
		if fd, e = r.openDirfd(dirfd, false); e != 0 {
			return object{}, -1, e
		}
		obj, e = describe(fd)
		return obj, fd, e
	}
	root := r.root
	// An absolute path starts at the agent's root, which is kept open for
	// the agent's life: it is used as it is, with no descriptor to make
	// and close (two system calls of the hot path).
	base := root
	if path[0] != '/' || o.inRoot {
		if base, e = r.openDirfd(dirfd, true); e != 0 {
			return object{}, -1, e
		}
		defer unix.Close(base)
	}
	if o.inRoot {
		root = base
	}
	// Fast path: a path without any symlink resolves the same for everyone;
	// the kernel walks it in one call. Any symlink (ELOOP) or other miss
	// takes the slow walk, which follows links in the agent's view.
	how := unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_SYMLINKS}
	if !o.follow {
		how.Flags |= unix.O_NOFOLLOW
	}
	if path[0] == '/' || o.inRoot {
		how.Resolve |= unix.RESOLVE_IN_ROOT
	}
	if f, err := unix.Openat2(base, path, &how); err == nil {
		fd = f
		if path[0] == '/' && r.rootOurs && !o.inRoot {
			// No symlink was crossed, so the cleaned text is the path the
			// kernel walked: spare the /proc/self/fd lookup.
			obj, e = describeAs(fd, filepath.Clean(path))
			return obj, fd, e
		}
		obj, e = describe(fd)
		return obj, fd, e
	}
	fd, missing, e := r.walk(root, base, path, o)
	if e != 0 {
		return object{}, -1, e
	}
	if obj, e = describe(fd); e != 0 || missing == "" {
		return obj, fd, e
	}
	unix.Close(fd)
	fd = -1
	if obj.path == "" || obj.mode&unix.S_IFMT != unix.S_IFDIR {
		return object{}, -1, unix.ENOENT
	}
	return object{path: joinPath(obj.path, missing)}, -1, 0
}

func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// openDirfd opens the agent's dirfd (or cwd for AT_FDCWD) as seen from here.
func (r *resolver) openDirfd(dirfd int32, dir bool) (int, unix.Errno) {
	if r.opened >= 0 && dirfd == r.openedDirfd && dir == r.openedDir {
		fd, err := unix.FcntlInt(uintptr(r.opened), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return -1, errnoOf(err)
		}
		return fd, 0
	}
	var p string
	switch {
	case dirfd == unix.AT_FDCWD:
		p = r.proc + "/cwd"
	case dirfd < 0:
		return -1, unix.EBADF
	default:
		p = r.proc + "/fd/" + strconv.Itoa(int(dirfd))
	}
	flags := 0
	if dir {
		flags = unix.O_DIRECTORY
	}
	fd, e := openPath(unix.AT_FDCWD, p, flags)
	if e == unix.ENOENT && dirfd != unix.AT_FDCWD {
		e = unix.EBADF // no such descriptor in the agent
	}
	return fd, e
}

// preopen opens the dirfd (or cwd) that resolving (dirfd, path) will
// start from, if any, for openDirfd to hand out; closeOpened closes it.
func (r *resolver) preopen(dirfd int32, path string, o walkOpts) unix.Errno {
	if path != "" && path[0] == '/' && !o.inRoot {
		return 0 // from the agent's root, already open
	}
	fd, e := r.openDirfd(dirfd, path != "")
	if e != 0 {
		return e
	}
	r.opened, r.openedDirfd, r.openedDir = fd, dirfd, path != ""
	return 0
}

func (r *resolver) closeOpened() {
	if r.opened >= 0 {
		unix.Close(r.opened)
		r.opened = -1
	}
}

// walk resolves path from base one component at a time, the way the kernel
// does for the agent. It returns an O_PATH descriptor of the object, or of
// its parent directory and the missing last name when o.create allows it.
func (r *resolver) walk(root, base int, path string, o walkOpts) (int, string, unix.Errno) {
	var rootSt unix.Stat_t
	if err := unix.Fstat(root, &rootSt); err != nil {
		return -1, "", errnoOf(err)
	}
	cur, err := unix.Dup(base)
	if err != nil {
		return -1, "", errnoOf(err)
	}
	if path[0] == '/' {
		unix.Close(cur)
		if cur, err = unix.Dup(root); err != nil {
			return -1, "", errnoOf(err)
		}
	}
	fail := func(e unix.Errno) (int, string, unix.Errno) {
		unix.Close(cur)
		return -1, "", e
	}
	comps := strings.Split(path, "/")
	links := 0
	for len(comps) > 0 {
		name := comps[0]
		comps = comps[1:]
		trailing := allEmpty(comps) // a trailing slash makes the kernel follow
		last := len(comps) == 0 || trailing
		if name == "" || name == "." {
			continue
		}
		if name == ".." {
			var st unix.Stat_t
			if err := unix.Fstat(cur, &st); err != nil {
				return fail(errnoOf(err))
			}
			if st.Dev == rootSt.Dev && st.Ino == rootSt.Ino {
				continue // ".." at the agent's root stays there
			}
			next, e := openPath(cur, "..", unix.O_DIRECTORY)
			if e != 0 {
				return fail(e)
			}
			unix.Close(cur)
			cur = next
			continue
		}
		next, e := openPath(cur, name, unix.O_NOFOLLOW)
		if e == unix.ENOENT && last && o.create {
			return cur, name, 0
		}
		if e != 0 {
			return fail(e)
		}
		var st unix.Stat_t
		if err := unix.Fstat(next, &st); err != nil {
			unix.Close(next)
			return fail(errnoOf(err))
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK && (!last || o.follow || trailing) {
			if links++; links > maxLinks {
				unix.Close(next)
				return fail(unix.ELOOP)
			}
			text, magic, e := r.linkText(cur, next, name)
			if magic {
				// A /proc/PID/... magic link: the kernel jumps to the
				// object itself, whatever its text says. Let it, for a
				// process of the agent only: this walk runs on a thread
				// with no Landlock domain, so nothing else would stop it
				// reaching through another process's fd, cwd or root.
				unix.Close(next)
				if e := r.magicOwnerIsAgent(cur); e != 0 {
					return fail(e)
				}
				next, e = openPath(cur, name, 0)
				if e != 0 {
					return fail(e)
				}
				unix.Close(cur)
				cur = next
				continue
			}
			unix.Close(next)
			if e != 0 {
				return fail(e)
			}
			if text == "" {
				return fail(unix.ENOENT)
			}
			if text[0] == '/' {
				unix.Close(cur)
				if cur, err = unix.Dup(root); err != nil {
					return -1, "", errnoOf(err)
				}
			}
			comps = append(strings.Split(text, "/"), comps...)
			continue
		}
		if !last && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			unix.Close(next)
			return fail(unix.ENOTDIR)
		}
		unix.Close(cur)
		cur = next
	}
	return cur, "", 0
}

func allEmpty(s []string) bool {
	for _, c := range s {
		if c != "" {
			return false
		}
	}
	return len(s) > 0
}

// linkText returns what a symlink points to in the agent's view. On procfs,
// "self" and "thread-self" in the root are rewritten to the calling task
// (read here they would name the supervisor), and every other link below
// the root is a magic link the caller must follow through the kernel.
func (r *resolver) linkText(dir, link int, name string) (string, bool, unix.Errno) {
	var fs unix.Statfs_t
	if err := unix.Fstatfs(dir, &fs); err != nil {
		return "", false, errnoOf(err)
	}
	if fs.Type == unix.PROC_SUPER_MAGIC {
		var st unix.Stat_t
		if err := unix.Fstat(dir, &st); err != nil {
			return "", false, errnoOf(err)
		}
		if st.Ino != procRootIno {
			return "", true, 0
		}
		switch name {
		case "self", "thread-self":
			tgid, err := tgidOf(r.tid)
			if err != nil {
				return "", false, unix.ESRCH
			}
			if name == "self" {
				return strconv.Itoa(tgid), false, 0
			}
			return strconv.Itoa(tgid) + "/task/" + strconv.Itoa(r.tid), false, 0
		}
	}
	buf := make([]byte, pathMax)
	n, err := unix.Readlinkat(link, "", buf)
	if err != nil {
		return "", false, errnoOf(err)
	}
	if n >= len(buf) {
		return "", false, unix.ENAMETOOLONG
	}
	return string(buf[:n]), false, 0
}

// magicOwnerIsAgent answers 0 when dir, a procfs directory holding a magic
// link (/proc/N, /proc/N/fd, /proc/N/task/T/fd…), belongs to a process N of
// the calling agent (sameAgent), and ECAPABILITY otherwise: for another
// process, and for anything whose owner cannot be told (fail closed).
func (r *resolver) magicOwnerIsAgent(dir int) unix.Errno {
	pidDir, e := procPIDDir(dir)
	if e != 0 {
		return ECapability
	}
	defer unix.Close(pidDir)
	pid, start, ok := readProcStat(pidDir)
	if !ok {
		return ECapability
	}
	// The number is the one of the agent's procfs; make sure it is the
	// same process in ours (same start time), so another pid namespace's
	// procfs cannot pass for one of the agent's processes.
	self, err := unix.Open("/proc/"+strconv.Itoa(pid), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return ECapability
	}
	ourPid, ourStart, ok := readProcStat(self)
	unix.Close(self)
	if !ok || ourPid != pid || ourStart != start {
		return ECapability
	}
	if in, e := sameAgent(r.tid, pid); e != 0 || !in {
		return ECapability
	}
	return 0
}

// procPIDDir climbs from dir, a directory of procfs, to the /proc/N
// directory above it (dir itself when it is one): at most /proc/N/task/T/fd.
func procPIDDir(dir int) (int, unix.Errno) {
	cur, err := unix.Dup(dir)
	if err != nil {
		return -1, errnoOf(err)
	}
	for range 4 {
		up, e := openPath(cur, "..", unix.O_DIRECTORY)
		if e != 0 {
			unix.Close(cur)
			return -1, e
		}
		var fs unix.Statfs_t
		var st unix.Stat_t
		if unix.Fstatfs(up, &fs) != nil || fs.Type != unix.PROC_SUPER_MAGIC || unix.Fstat(up, &st) != nil {
			unix.Close(up)
			unix.Close(cur)
			return -1, unix.EACCES // left procfs: a bind mount of part of it
		}
		if st.Ino == procRootIno {
			unix.Close(up)
			return cur, 0
		}
		unix.Close(cur)
		cur = up
	}
	unix.Close(cur)
	return -1, unix.EACCES
}

// readProcStat reads the pid and start time of the process whose /proc/N
// directory is dir.
func readProcStat(dir int) (pid int, start string, ok bool) {
	fd, err := unix.Openat(dir, "stat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, "", false
	}
	defer unix.Close(fd)
	var buf [1024]byte
	n, err := unix.Read(fd, buf[:])
	if err != nil || n <= 0 {
		return 0, "", false
	}
	s := string(buf[:n])
	// "pid (comm) state ppid …": comm may hold spaces and parentheses.
	open, close := strings.IndexByte(s, ' '), strings.LastIndexByte(s, ')')
	if open <= 0 || close < open {
		return 0, "", false
	}
	if pid, err = strconv.Atoi(s[:open]); err != nil {
		return 0, "", false
	}
	fields := strings.Fields(s[close+1:])
	const startField = 22 - 3 // starttime is field 22; fields starts at field 3
	if len(fields) <= startField {
		return 0, "", false
	}
	return pid, fields[startField], true
}

// tgidOf reads the thread group (process) id of a thread.
func tgidOf(tid int) (int, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(tid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Tgid:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, unix.ESRCH
}

// describeAs is describe for a descriptor whose path is known.
func describeAs(fd int, path string) (object, unix.Errno) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return object{}, errnoOf(err)
	}
	obj := object{exists: true, dev: st.Dev, ino: st.Ino, mode: st.Mode, links: st.Nlink, uid: st.Uid}
	if st.Nlink > 0 {
		obj.path = path
	}
	return obj, 0
}

// describe says what an O_PATH descriptor refers to, and its real path: the
// kernel's own name for it, read back through /proc/self/fd.
func describe(fd int) (object, unix.Errno) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return object{}, errnoOf(err)
	}
	obj := object{exists: true, dev: st.Dev, ino: st.Ino, mode: st.Mode, links: st.Nlink, uid: st.Uid}
	buf := make([]byte, pathMax+64)
	n, err := unix.Readlink("/proc/self/fd/"+strconv.Itoa(fd), buf)
	if err != nil {
		return object{}, errnoOf(err)
	}
	text := string(buf[:n])
	switch {
	case strings.HasPrefix(text, "/") && st.Nlink > 0 && n < pathMax:
		obj.path = text
		return obj, 0
	case strings.HasPrefix(text, "pipe:[") || strings.HasPrefix(text, "socket:[") || strings.HasPrefix(text, "anon_inode:"):
		obj.anon = true
	}
	// Anything else (a deleted file, a memfd, an nsfs object) has no path:
	// no capability can name it.
	obj.name = text
	return obj, 0
}
