package bpflsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cilium/ebpf/ringbuf"
)

// Ops and reasons of an event (bpf/include/lsm.h).
const (
	OpOpen   = 1
	OpRead   = 2
	OpWrite  = 3
	OpExec   = 4
	OpPtrace = 5
	OpKill   = 6
	OpBPF    = 7
	OpMount  = 8
	// OpConnectUnix and OpSendmsgUnix: a Unix socket address outside the
	// agent's allowlist (Path holds it, '@' for an abstract name).
	OpConnectUnix = 9
	OpSendmsgUnix = 10
	// OpMmapExec: a file mapped as code without fs.exec.
	OpMmapExec = 11
	OpUserns   = 12
	// The path hooks: each needs fs.write on Path (rename and link name
	// the one of their two paths that was refused).
	OpUnlink      = 13
	OpRmdir       = 14
	OpMkdir       = 15
	OpMknod       = 16 // a new file: mknod, O_CREAT, a Unix socket's bind
	OpSymlink     = 17
	OpLink        = 18
	OpRename      = 19
	OpTruncate    = 20
	OpChmod       = 21
	OpChown       = 22
	OpSetxattr    = 23 // and POSIX ACLs
	OpRemovexattr = 24

	WhyNoRule      = 1
	WhyPathTooLong = 2
	WhyDPath       = 3
	WhyMapFull     = 4
	WhyOutside     = 5
	WhyNever       = 6
)

// Event is one deny.
type Event struct {
	Seq       uint64
	CgroupID  uint64
	PID       uint32
	TargetPID uint32
	Op        uint16
	Reason    uint16
	Want      uint32
	Path      string
}

var opNames = map[uint16]string{OpOpen: "open", OpRead: "read", OpWrite: "write", OpExec: "exec", OpPtrace: "ptrace",
	OpKill: "kill", OpBPF: "bpf", OpMount: "mount", OpConnectUnix: "connect", OpSendmsgUnix: "sendmsg", OpMmapExec: "mmap-exec", OpUserns: "userns",
	OpUnlink: "unlink", OpRmdir: "rmdir", OpMkdir: "mkdir", OpMknod: "create", OpSymlink: "symlink", OpLink: "link",
	OpRename: "rename", OpTruncate: "truncate", OpChmod: "chmod", OpChown: "chown", OpSetxattr: "setxattr",
	OpRemovexattr: "removexattr"}

var whyNames = map[uint16]string{WhyNoRule: "no rule", WhyPathTooLong: "path too long", WhyDPath: "path unreadable",
	WhyMapFull: "decision map full", WhyOutside: "target outside the agent", WhyNever: "never allowed to agents"}

// OpName names the hook that denied.
func (e Event) OpName() string { return opNames[e.Op] }

// Why names the reason.
func (e Event) Why() string { return whyNames[e.Reason] }

// Cap is the capability that would have allowed the operation.
func (e Event) Cap() string {
	switch e.Op {
	case OpUnlink, OpRmdir, OpMkdir, OpMknod, OpSymlink, OpLink, OpRename, OpTruncate, OpChmod, OpChown,
		OpSetxattr, OpRemovexattr:
		return "fs.write"
	case OpOpen, OpRead, OpWrite:
		if e.Want&RightWrite != 0 {
			return "fs.write"
		}
		return "fs.read"
	case OpExec, OpMmapExec:
		return "fs.exec"
	case OpPtrace:
		return "proc.ptrace"
	case OpKill:
		return "proc.signal"
	case OpBPF:
		return "sys.bpf"
	case OpMount:
		return "sys.mount"
	case OpUserns:
		return "sys.namespace"
	case OpConnectUnix, OpSendmsgUnix:
		return "net.connect"
	}
	return "unknown"
}

// Object describes what was asked: "open /etc/shadow", "kill pid 1".
func (e Event) Object() string {
	switch e.Op {
	case OpPtrace, OpKill:
		return fmt.Sprintf("%s pid %d", e.OpName(), e.TargetPID)
	case OpBPF, OpMount, OpUserns:
		return e.OpName()
	case OpConnectUnix, OpSendmsgUnix:
		return "unix " + e.Path // as the network guard's rows
	}
	s := e.OpName() + " " + e.Path
	if e.Reason != WhyNoRule {
		s += " (" + e.Why() + ")"
	}
	return s
}

// Events delivers denies until Close.
func (g *Guard) Events() <-chan Event { return g.events }

func (g *Guard) read() {
	defer close(g.events)
	if g.pending != nil {
		g.events <- *g.pending
	}
	for {
		rec, err := g.rd.Read()
		if err != nil {
			if errors.Is(err, ringbuf.ErrClosed) {
				return
			}
			continue
		}
		ev, err := decodeSample(rec.RawSample)
		if err != nil {
			continue
		}
		g.events <- ev
	}
}

// decodeSample is one ring buffer record as an Event.
func decodeSample(b []byte) (Event, error) {
	var raw lsmLsmEvent
	if err := binary.Read(bytes.NewReader(b), binary.LittleEndian, &raw); err != nil {
		return Event{}, err
	}
	return decode(raw), nil
}

func decode(raw lsmLsmEvent) Event {
	b := make([]byte, 0, len(raw.Path))
	for _, c := range raw.Path {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return Event{Seq: raw.Seq, CgroupID: raw.Cgroup, PID: raw.Pid, TargetPID: raw.TargetPid, Op: raw.Op, Reason: raw.Reason,
		Want: raw.Want, Path: string(b)}
}
