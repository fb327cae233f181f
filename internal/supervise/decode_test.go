package supervise

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

func howBytes(flags, mode, resolve uint64) []byte {
	b := make([]byte, 24)
	binary.LittleEndian.PutUint64(b, flags)
	binary.LittleEndian.PutUint64(b[8:], mode)
	binary.LittleEndian.PutUint64(b[16:], resolve)
	return b
}

func TestDecodeOpenHow(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		size uint64
		ok   bool
	}{
		{"plain", howBytes(unix.O_RDONLY, 0, 0), 24, true},
		{"in root", howBytes(unix.O_RDWR, 0, unix.RESOLVE_IN_ROOT|unix.RESOLVE_NO_SYMLINKS), 24, true},
		{"larger struct", howBytes(0, 0, 0), 32, true},
		{"too small", howBytes(0, 0, 0), 16, false},
		{"short buffer", make([]byte, 8), 24, false},
		{"unknown resolve", howBytes(0, 0, 0x80), 24, false},
		{"flags past 32 bits", howBytes(1<<40, 0, 0), 24, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeOpenHow(tt.b, tt.size)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func FuzzDecodeOpenHow(f *testing.F) {
	f.Add(howBytes(0, 0, 0), uint64(24))
	f.Add(howBytes(unix.O_CREAT, 0o644, unix.RESOLVE_IN_ROOT), uint64(24))
	f.Add([]byte{1, 2, 3}, uint64(3))
	f.Fuzz(func(t *testing.T, b []byte, size uint64) {
		h, err := decodeOpenHow(b, size)
		if err == nil && (h.Resolve&^knownResolve != 0 || size < openHowSize) {
			t.Fatalf("accepted %+v size %d", h, size)
		}
	})
}

func TestOpenOperand(t *testing.T) {
	tests := []struct {
		name   string
		flags  uint64
		access Access
		follow bool
		create bool
		pass   bool
	}{
		{"read", unix.O_RDONLY, Read, true, false, false},
		{"write", unix.O_WRONLY, Write, true, false, false},
		{"rdwr", unix.O_RDWR, Read | Write, true, false, false},
		{"accmode 3", 3, Read | Write, true, false, false},
		{"trunc", unix.O_RDONLY | unix.O_TRUNC, Read | Write, true, false, false},
		{"creat", unix.O_WRONLY | unix.O_CREAT, Write, true, true, false},
		{"creat excl", unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL, Write, false, true, false},
		{"nofollow", unix.O_RDONLY | unix.O_NOFOLLOW, Read, false, false, false},
		{"tmpfile", unix.O_WRONLY | unix.O_TMPFILE, Write, true, false, false},
		{"o_path", unix.O_PATH | unix.O_CREAT, 0, false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, pass := openOperand(unix.AT_FDCWD, 1, tt.flags)
			if pass != tt.pass {
				t.Fatalf("pass = %v", pass)
			}
			if pass {
				return
			}
			if op.access != tt.access || op.opts.follow != tt.follow || op.opts.create != tt.create {
				t.Errorf("got access %v follow %v create %v", op.access, op.opts.follow, op.opts.create)
			}
		})
	}
}

func TestCString(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
		ok   bool
	}{
		{"terminated", "abc\x00def", "abc", true},
		{"empty", "\x00", "", true},
		{"unterminated", "abc", "abc", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := cString([]byte(tt.in))
			if string(got) != tt.want || ok != tt.ok {
				t.Errorf("got %q %v", got, ok)
			}
		})
	}
}

func FuzzOperands(f *testing.F) {
	f.Add(int32(unix.SYS_OPENAT), uint64(0xffffff9c), uint64(1), uint64(unix.O_CREAT), uint64(0), uint64(0))
	f.Add(int32(unix.SYS_LINKAT), uint64(3), uint64(1), uint64(4), uint64(2), uint64(unix.AT_EMPTY_PATH))
	f.Add(int32(unix.SYS_OPENAT2), uint64(3), uint64(1), uint64(8), uint64(24), uint64(0))
	f.Fuzz(func(t *testing.T, nr int32, a0, a1, a2, a3, a4 uint64) {
		d := seccompData{Nr: nr, Arch: auditArchX8664, Args: [6]uint64{a0, a1, a2, a3, a4}}
		ops, pass, e := operands(&d, func(addr, size uint64) (openHow, unix.Errno) {
			h, err := decodeOpenHow(howBytes(a2, 0, a4), size)
			if err != nil {
				return openHow{}, unix.EINVAL
			}
			return h, 0
		})
		if e == 0 && !pass && len(ops) == 0 {
			t.Fatalf("nr %d: no operands, no pass, no error", nr)
		}
		for _, op := range ops {
			if op.access == 0 {
				t.Fatalf("nr %d: operand without access", nr)
			}
		}
	})
}
