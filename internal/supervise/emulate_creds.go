package supervise

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// agentCreds are what the kernel checks a file operation against: the
// calling thread's filesystem ids, its supplementary groups and its
// effective capabilities (none for a real agent: the trampoline drops them
// all, bounding set included).
type agentCreds struct {
	fsuid, fsgid uint32
	groups       []uint32
	capEff       uint64
	// fixed: the thread can never change these (no capability in any
	// set, no_new_privs, all four uids equal, all four gids equal; and the
	// filter refuses new user namespaces, the one way to capabilities
	// left), which is what every agent's thread is after the trampoline.
	fixed bool
}

// credsOf reads the credentials of thread tid from /proc/TID/status. It is
// read while the notification is pending (the caller checks ID_VALID
// afterwards), so they are the caller's, not a reused tid's.
func credsOf(tid int) (agentCreds, unix.Errno) {
	f, err := os.Open("/proc/" + strconv.Itoa(tid) + "/status")
	if err != nil {
		return agentCreds{}, unix.ESRCH
	}
	defer f.Close()
	var c agentCreds
	var seen int
	sameIDs, noCaps, nnp := true, true, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(val)
		switch key {
		case "Uid", "Gid":
			// real, effective, saved, filesystem
			if len(fields) != 4 {
				return agentCreds{}, unix.ESRCH
			}
			sameIDs = sameIDs && fields[0] == fields[1] && fields[1] == fields[2] && fields[2] == fields[3]
			id, err := strconv.ParseUint(fields[3], 10, 32)
			if err != nil {
				return agentCreds{}, unix.ESRCH
			}
			if key == "Uid" {
				c.fsuid = uint32(id)
			} else {
				c.fsgid = uint32(id)
			}
			seen++
		case "Groups":
			for _, g := range fields {
				id, err := strconv.ParseUint(g, 10, 32)
				if err != nil {
					return agentCreds{}, unix.ESRCH
				}
				c.groups = append(c.groups, uint32(id))
			}
			seen++
		case "CapEff":
			if len(fields) != 1 {
				return agentCreds{}, unix.ESRCH
			}
			v, err := strconv.ParseUint(fields[0], 16, 64)
			if err != nil {
				return agentCreds{}, unix.ESRCH
			}
			c.capEff = v
			noCaps = noCaps && v == 0
			seen++
		case "CapInh", "CapPrm", "CapAmb":
			noCaps = noCaps && len(fields) == 1 && strings.Trim(fields[0], "0") == ""
		case "NoNewPrivs":
			nnp = val != "" && strings.TrimSpace(val) == "1"
		}
	}
	if seen != 4 {
		return agentCreds{}, unix.ESRCH
	}
	c.fixed = sameIDs && noCaps && nnp
	return c, 0
}

// credCache keeps the credentials of threads that can never change them
// (agentCreds.fixed): reading /proc/TID/status costs ≈ 20 µs here, more
// than the call it serves. Each entry holds a pidfd of the thread it was
// read from, so a tid reused by a new thread is never taken for the old.
type credCache struct {
	m map[int]cachedCreds
}

type cachedCreds struct {
	pidfd int
	creds agentCreds
}

const maxCachedCreds = 64

// pidfdThread is PIDFD_THREAD (Linux 6.9): a pidfd for one thread.
const pidfdThread = unix.O_EXCL

func (cc *credCache) get(tid int) (agentCreds, unix.Errno) {
	if e, ok := cc.m[tid]; ok {
		// Signal 0 checks only that the thread is alive: the same one,
		// as no two live threads share a tid.
		if _, _, err := unix.RawSyscall6(unix.SYS_PIDFD_SEND_SIGNAL, uintptr(e.pidfd), 0, 0, 0, 0, 0); err == 0 {
			return e.creds, 0
		}
		unix.Close(e.pidfd)
		delete(cc.m, tid)
	}
	// The pidfd first: the creds are then read from the thread it names
	// or, if the tid was reused in between, from a newer one that is not
	// cached under the old one's pidfd.
	pidfd, perr := unix.PidfdOpen(tid, pidfdThread)
	c, e := credsOf(tid)
	if e != 0 || perr != nil || !c.fixed {
		if perr == nil {
			unix.Close(pidfd)
		}
		return c, e
	}
	if cc.m == nil || len(cc.m) >= maxCachedCreds {
		cc.closeAll()
		cc.m = map[int]cachedCreds{}
	}
	cc.m[tid] = cachedCreds{pidfd, c}
	return c, 0
}

func (cc *credCache) closeAll() {
	for tid, e := range cc.m {
		unix.Close(e.pidfd)
		delete(cc.m, tid)
	}
}

// asAgent runs do on the calling goroutine's OS thread, locked to it
// for the time, with the caller's credentials, then gives the thread its
// own back. Credentials are set with raw per-thread system calls: the
// syscall package's Setgroups, Setuid… change every thread of the
// process. If the thread's own credentials cannot be restored and checked,
// it stays locked and err is set: the goroutine must then end, and the Go
// runtime ends the thread with it, so no other code ever runs with an
// agent's credentials. (Nor does a new thread inherit them: the runtime
// never clones a thread from one locked by LockOSThread, it asks its
// template thread.)
func asAgent(c agentCreds, do func() unix.Errno) (result unix.Errno, err error) {
	runtime.LockOSThread()
	own, e := ownCreds()
	if e != 0 {
		runtime.UnlockOSThread() // nothing was changed
		return ECapability, nil
	}
	result = ECapability // never act with the supervisor's own credentials
	if become(c, own) == 0 {
		result = safely(do)
	}
	if e := restore(own); e != 0 {
		return ECapability, fmt.Errorf("restore the supervisor's credentials after an emulated call: %w", e)
	}
	runtime.UnlockOSThread()
	return result, nil
}

// safely runs do; a panic refuses the call instead of ending the daemon.
func safely(do func() unix.Errno) (e unix.Errno) {
	defer func() {
		if recover() != nil {
			e = ECapability
		}
	}()
	return do()
}

// threadCreds are a thread's own credentials, to give back.
type threadCreds struct {
	fsuid, fsgid uint32
	groups       []uint32
	caps         [2]capData
	perm         uint64
}

// query asks setfsuid/setfsgid for the current id: they report no error,
// only the previous id, and an invalid id (-1) changes nothing.
const query = ^uintptr(0)

func ownCreds() (threadCreds, unix.Errno) {
	var t threadCreds
	var e unix.Errno
	if t.caps, e = capget(); e != 0 {
		return t, e
	}
	t.perm = uint64(t.caps[0].permitted) | uint64(t.caps[1].permitted)<<32
	u, _, _ := unix.RawSyscall(unix.SYS_SETFSUID, query, 0, 0)
	g, _, _ := unix.RawSyscall(unix.SYS_SETFSGID, query, 0, 0)
	t.fsuid, t.fsgid = uint32(u), uint32(g)
	if t.groups, e = getgroups(); e != 0 {
		return t, e
	}
	return t, 0
}

func getgroups() ([]uint32, unix.Errno) {
	n, _, e := unix.RawSyscall(unix.SYS_GETGROUPS, 0, 0, 0)
	if e != 0 {
		return nil, e
	}
	g := make([]uint32, n)
	if n == 0 {
		return g, 0
	}
	m, _, e := unix.RawSyscall(unix.SYS_GETGROUPS, n, uintptr(unsafe.Pointer(&g[0])), 0)
	if e != 0 {
		return nil, e
	}
	return g[:m], 0
}

func setgroups(g []uint32) unix.Errno {
	var p uintptr
	if len(g) > 0 {
		p = uintptr(unsafe.Pointer(&g[0]))
	}
	_, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(g)), p, 0)
	return e
}

// restore gives the thread its own credentials back and checks them.
func restore(t threadCreds) unix.Errno {
	inh := [2]uint32{t.caps[0].inheritable, t.caps[1].inheritable}
	// Effective first (always allowed within the permitted set): the
	// ids below need CAP_SETUID and CAP_SETGID.
	if e := capset(capWords(t.perm, t.perm, inh)); e != 0 {
		return e
	}
	if e := setgroups(t.groups); e != 0 {
		return e
	}
	unix.RawSyscall(unix.SYS_SETFSGID, uintptr(t.fsgid), 0, 0)
	unix.RawSyscall(unix.SYS_SETFSUID, uintptr(t.fsuid), 0, 0)
	if e := capset(t.caps); e != 0 {
		return e
	}
	// Check everything: a thread that is not exactly as it was never runs
	// other code.
	u, _, _ := unix.RawSyscall(unix.SYS_SETFSUID, query, 0, 0)
	g, _, _ := unix.RawSyscall(unix.SYS_SETFSGID, query, 0, 0)
	caps, e := capget()
	groups, ge := getgroups()
	if e != 0 || ge != 0 || uint32(u) != t.fsuid || uint32(g) != t.fsgid || caps != t.caps || !slices.Equal(groups, t.groups) {
		return unix.EPERM
	}
	return 0
}

// Linux capability sets are two 32-bit words each (_LINUX_CAPABILITY_VERSION_3).
type capHeader struct {
	version uint32
	pid     int32
}

type capData struct {
	effective, permitted, inheritable uint32
}

func capget() ([2]capData, unix.Errno) {
	h := capHeader{version: unix.LINUX_CAPABILITY_VERSION_3}
	var d [2]capData
	_, _, e := unix.RawSyscall(unix.SYS_CAPGET, uintptr(unsafe.Pointer(&h)), uintptr(unsafe.Pointer(&d[0])), 0)
	return d, e
}

func capset(d [2]capData) unix.Errno {
	h := capHeader{version: unix.LINUX_CAPABILITY_VERSION_3}
	_, _, e := unix.RawSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&h)), uintptr(unsafe.Pointer(&d[0])), 0)
	return e
}

// capPermitted is this thread's permitted set, which stays whole: only
// the effective set is lowered for a call, and raised again for the next.
func capPermitted() (uint64, bool) {
	d, e := capget()
	if e != 0 {
		return 0, false
	}
	return uint64(d[0].permitted) | uint64(d[1].permitted)<<32, true
}

func capWords(eff, perm uint64, inh [2]uint32) [2]capData {
	return [2]capData{
		{uint32(eff), uint32(perm), inh[0]},
		{uint32(eff >> 32), uint32(perm >> 32), inh[1]},
	}
}

// become gives the calling (locked) thread the agent's filesystem
// credentials and effective capabilities. own is what the thread holds:
// its effective set is whole (CAP_SETUID and CAP_SETGID for the ids);
// restore checks everything afterwards.
func become(c agentCreds, own threadCreds) unix.Errno {
	if uint64(own.caps[0].effective)|uint64(own.caps[1].effective)<<32 != own.perm {
		return unix.EPERM
	}
	if e := setgroups(c.groups); e != 0 {
		return e
	}
	unix.RawSyscall(unix.SYS_SETFSGID, uintptr(c.fsgid), 0, 0)
	if g, _, _ := unix.RawSyscall(unix.SYS_SETFSGID, query, 0, 0); uint32(g) != c.fsgid {
		return unix.EPERM
	}
	unix.RawSyscall(unix.SYS_SETFSUID, uintptr(c.fsuid), 0, 0)
	if u, _, _ := unix.RawSyscall(unix.SYS_SETFSUID, query, 0, 0); uint32(u) != c.fsuid {
		return unix.EPERM
	}
	// Setting a non-zero fsuid already dropped the file capabilities
	// from the effective set; the caller's own set (none, for an agent)
	// is what remains.
	inh := [2]uint32{own.caps[0].inheritable, own.caps[1].inheritable}
	return capset(capWords(c.capEff&own.perm, own.perm, inh))
}
