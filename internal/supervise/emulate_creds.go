package supervise

import (
	"bufio"
	"os"
	"runtime"
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
			seen++
		}
	}
	if seen != 4 {
		return agentCreds{}, unix.ESRCH
	}
	return c, 0
}

// credThread is one OS thread that performs calls as agents do. It is
// locked to its goroutine for its whole life and never unlocked, so no
// other goroutine ever runs with the credentials it takes; when it stops,
// the Go runtime ends the thread. Credentials are set with raw per-thread
// system calls: the syscall package's Setgroups, Setuid… change every
// thread of the process.
type credThread struct {
	req chan credJob
}

type credJob struct {
	creds agentCreds
	do    func() unix.Errno
	done  chan unix.Errno
}

func startCredThread() *credThread {
	t := &credThread{req: make(chan credJob)}
	ready := make(chan struct{})
	go t.loop(ready)
	<-ready
	return t
}

// run performs do on the thread with creds and returns its errno; a
// failure to take the credentials refuses the call (ECAPABILITY): never
// act with the supervisor's own.
func (t *credThread) run(c agentCreds, do func() unix.Errno) unix.Errno {
	done := make(chan unix.Errno, 1)
	t.req <- credJob{c, do, done}
	return <-done
}

// stop ends the thread. No run may be in progress or follow.
func (t *credThread) stop() { close(t.req) }

func (t *credThread) loop(ready chan struct{}) {
	runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
	perm, ok := capPermitted()
	close(ready)
	for j := range t.req {
		if !ok {
			j.done <- ECapability
			continue
		}
		if e := become(j.creds, perm); e != 0 {
			j.done <- ECapability
			continue
		}
		j.done <- safely(j.do)
	}
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
// credentials and effective capabilities, and checks that it has them.
func become(c agentCreds, perm uint64) unix.Errno {
	d, e := capget()
	if e != 0 {
		return e
	}
	inh := [2]uint32{d[0].inheritable, d[1].inheritable}
	// The previous call left the effective set lowered: raise it so the
	// ids below may be set to anything.
	if e := capset(capWords(perm, perm, inh)); e != 0 {
		return e
	}
	var gp uintptr
	if len(c.groups) > 0 {
		gp = uintptr(unsafe.Pointer(&c.groups[0]))
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(c.groups)), gp, 0); e != 0 {
		return e
	}
	// setfsuid and setfsgid report no error, only the previous id: ask
	// again with an invalid id (-1), which changes nothing, to check.
	const query = ^uintptr(0)
	unix.RawSyscall(unix.SYS_SETFSGID, uintptr(c.fsgid), 0, 0)
	if g, _, _ := unix.RawSyscall(unix.SYS_SETFSGID, query, 0, 0); uint32(g) != c.fsgid {
		return unix.EPERM
	}
	unix.RawSyscall(unix.SYS_SETFSUID, uintptr(c.fsuid), 0, 0)
	if u, _, _ := unix.RawSyscall(unix.SYS_SETFSUID, query, 0, 0); uint32(u) != c.fsuid {
		return unix.EPERM
	}
	want := c.capEff & perm
	if e := capset(capWords(want, perm, inh)); e != 0 {
		return e
	}
	if d, e := capget(); e != 0 || uint64(d[0].effective)|uint64(d[1].effective)<<32 != want {
		return unix.EPERM
	}
	return 0
}
