package supervise

import (
	"encoding/binary"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

// runFilter interprets the subset of classic BPF the filter uses over a
// seccomp_data, so every verdict is checked without loading it.
func runFilter(prog []unix.SockFilter, d seccompData) (uint32, error) {
	var buf [64]byte
	binary.LittleEndian.PutUint32(buf[0:], uint32(d.Nr))
	binary.LittleEndian.PutUint32(buf[4:], d.Arch)
	binary.LittleEndian.PutUint64(buf[8:], d.IP)
	for i, a := range d.Args {
		binary.LittleEndian.PutUint64(buf[16+8*i:], a)
	}
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case ldAbsW:
			if in.K+4 > uint32(len(buf)) || in.K%4 != 0 {
				return 0, fmt.Errorf("pc %d: load at %d", pc, in.K)
			}
			acc = binary.LittleEndian.Uint32(buf[in.K:])
		case andK:
			acc &= in.K
		case jeqK, jgeK, jsetK:
			var ok bool
			switch in.Code {
			case jeqK:
				ok = acc == in.K
			case jgeK:
				ok = acc >= in.K
			default:
				ok = acc&in.K != 0
			}
			if ok {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case retK:
			return in.K, nil
		default:
			return 0, fmt.Errorf("pc %d: opcode %#x", pc, in.Code)
		}
	}
	return 0, fmt.Errorf("fell off the end")
}

func sys(nr int, args ...uint64) seccompData {
	d := seccompData{Nr: int32(nr), Arch: auditArchX8664}
	copy(d.Args[:], args)
	return d
}

func TestFilterVerdicts(t *testing.T) {
	prog := Program()
	if len(prog) > unix.BPF_MAXINSNS {
		t.Fatalf("program has %d instructions", len(prog))
	}
	tests := []struct {
		name string
		data seccompData
		want uint32
	}{
		{"read allowed", sys(unix.SYS_READ), retAllow},
		{"getpid allowed", sys(unix.SYS_GETPID), retAllow},
		{"openat notified", sys(unix.SYS_OPENAT), retNotify},
		{"open notified", sys(unix.SYS_OPEN), retNotify},
		{"openat2 notified", sys(unix.SYS_OPENAT2), retNotify},
		{"execve notified", sys(unix.SYS_EXECVE), retNotify},
		{"execveat notified", sys(unix.SYS_EXECVEAT), retNotify},
		{"renameat2 notified", sys(unix.SYS_RENAMEAT2), retNotify},
		{"linkat notified", sys(unix.SYS_LINKAT), retNotify},
		{"fchmodat2 notified", sys(unix.SYS_FCHMODAT2), retNotify},
		{"mount refused", sys(unix.SYS_MOUNT), retDeny},
		{"bpf refused", sys(unix.SYS_BPF), retDeny},
		{"finit_module refused", sys(unix.SYS_FINIT_MODULE), retDeny},
		{"kexec_file_load refused", sys(unix.SYS_KEXEC_FILE_LOAD), retDeny},
		{"ptrace refused", sys(unix.SYS_PTRACE, unix.PTRACE_ATTACH), retDeny},
		{"ptrace traceme refused", sys(unix.SYS_PTRACE, unix.PTRACE_TRACEME), retDeny},
		{"io_uring_setup refused", sys(unix.SYS_IO_URING_SETUP), retDeny},
		{"io_uring_enter refused", sys(unix.SYS_IO_URING_ENTER), retDeny},
		{"open_tree refused", sys(unix.SYS_OPEN_TREE), retDeny},
		{"setns refused", sys(unix.SYS_SETNS), retDeny},
		{"unshare newuser refused", sys(unix.SYS_UNSHARE, unix.CLONE_NEWUSER), retDeny},
		{"unshare newtime refused", sys(unix.SYS_UNSHARE, unix.CLONE_NEWTIME), retDeny},
		{"unshare files allowed", sys(unix.SYS_UNSHARE, unix.CLONE_FILES), retAllow},
		{"clone thread allowed", sys(unix.SYS_CLONE, unix.CLONE_VM|unix.CLONE_THREAD|unix.CLONE_SIGHAND), retAllow},
		{"clone fork allowed", sys(unix.SYS_CLONE, uint64(unix.SIGCHLD)), retAllow},
		{"clone newuser refused", sys(unix.SYS_CLONE, unix.CLONE_NEWUSER|uint64(unix.SIGCHLD)), retDeny},
		{"clone newnet high bits refused", sys(unix.SYS_CLONE, 0xffffffff00000000|unix.CLONE_NEWNET), retDeny},
		{"clone3 nosys", sys(unix.SYS_CLONE3), retNosys},
		{"socket inet stream allowed", sys(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC), retAllow},
		{"socket unix allowed", sys(unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_DGRAM), retAllow},
		{"socket inet raw refused", sys(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_RAW|unix.SOCK_NONBLOCK), retDeny},
		{"socket inet6 raw refused", sys(unix.SYS_SOCKET, unix.AF_INET6, unix.SOCK_RAW), retDeny},
		{"socket packet refused", sys(unix.SYS_SOCKET, unix.AF_PACKET, unix.SOCK_DGRAM), retDeny},
		{"socket inet sock_packet refused", sys(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_PACKET), retDeny},
		{"netlink route allowed", sys(unix.SYS_SOCKET, unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE), retAllow},
		{"netlink audit refused", sys(unix.SYS_SOCKET, unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_AUDIT), retDeny},
		{"netlink uevent refused", sys(unix.SYS_SOCKET, unix.AF_NETLINK, unix.SOCK_DGRAM, unix.NETLINK_KOBJECT_UEVENT), retDeny},
		{"personality query allowed", sys(unix.SYS_PERSONALITY, 0xffffffff), retAllow},
		{"personality linux allowed", sys(unix.SYS_PERSONALITY, 0), retAllow},
		{"personality no-aslr refused", sys(unix.SYS_PERSONALITY, 0x0040000 /* ADDR_NO_RANDOMIZE */), retDeny},
		{"x32 open nosys", sys(x32SyscallBit | unix.SYS_OPEN), retNosys},
		{"x32 read nosys", sys(x32SyscallBit | unix.SYS_READ), retNosys},
		{"i386 killed", seccompData{Nr: 5, Arch: 0x40000003}, retKill},
		{"unknown arch killed", seccompData{Nr: unix.SYS_READ, Arch: 0}, retKill},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runFilter(prog, tt.data)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("verdict %#x, want %#x", got, tt.want)
			}
		})
	}
}

// TestFilterListsDisjoint: a call both notified and refused would silently
// take whichever comes first in the program.
func TestFilterListsDisjoint(t *testing.T) {
	seen := map[uint32]string{}
	for _, nr := range notified {
		if seen[nr] != "" {
			t.Errorf("syscall %d notified twice", nr)
		}
		seen[nr] = "notified"
		if syscallName(int32(nr)) == "syscall" {
			t.Errorf("notified syscall %d has no name", nr)
		}
	}
	for _, nr := range refused {
		if seen[nr] != "" {
			t.Errorf("syscall %d is both %s and refused", nr, seen[nr])
		}
		seen[nr] = "refused"
	}
}

// FuzzFilter: any input gets a defined verdict, x32 never passes, foreign
// architectures are always killed.
func FuzzFilter(f *testing.F) {
	f.Add(int32(unix.SYS_OPENAT), uint32(auditArchX8664), uint64(0), uint64(0), uint64(0))
	f.Add(int32(unix.SYS_SOCKET), uint32(auditArchX8664), uint64(unix.AF_NETLINK), uint64(unix.SOCK_RAW), uint64(9))
	f.Add(int32(x32SyscallBit|2), uint32(auditArchX8664), uint64(0), uint64(0), uint64(0))
	f.Add(int32(-1), uint32(0x40000003), uint64(1), uint64(2), uint64(3))
	prog := Program()
	f.Fuzz(func(t *testing.T, nr int32, arch uint32, a0, a1, a2 uint64) {
		got, err := runFilter(prog, seccompData{Nr: nr, Arch: arch, Args: [6]uint64{a0, a1, a2}})
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case arch != auditArchX8664:
			if got != retKill {
				t.Fatalf("arch %#x: verdict %#x", arch, got)
			}
		case uint32(nr) >= x32SyscallBit:
			if got != retNosys {
				t.Fatalf("nr %#x: verdict %#x", nr, got)
			}
		case got != retAllow && got != retDeny && got != retNotify && got != retNosys:
			t.Fatalf("verdict %#x", got)
		}
	})
}
