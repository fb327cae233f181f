package daemon

import (
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/coconut-os/coconut/internal/testutil"
)

func nlmsg(typ uint16, payload []byte, pad bool) []byte {
	l := nlmsgHdrLen + len(payload)
	b := make([]byte, l)
	binary.NativeEndian.PutUint32(b[0:], uint32(l))
	binary.NativeEndian.PutUint16(b[4:], typ)
	copy(b[nlmsgHdrLen:], payload)
	if pad {
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	return b
}

func status(enabled uint32) []byte {
	p := make([]byte, 40)
	binary.NativeEndian.PutUint32(p[4:], enabled)
	return p
}

func errMsg(code int32) []byte {
	p := make([]byte, 20)
	binary.NativeEndian.PutUint32(p, uint32(code))
	return p
}

func TestParseAuditStatus(t *testing.T) {
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	tests := []struct {
		name           string
		in             []byte
		enabled, found bool
		err            error
	}{
		{"enabled", nlmsg(auditGet, status(1), true), true, true, nil},
		{"disabled", nlmsg(auditGet, status(0), true), false, true, nil},
		{"ack then status", cat(nlmsg(unix.NLMSG_ERROR, errMsg(0), true), nlmsg(auditGet, status(1), true)), true, true, nil},
		{"ack only", nlmsg(unix.NLMSG_ERROR, errMsg(0), true), false, false, nil},
		{"unpadded status", nlmsg(auditGet, status(2)[:37], false), true, true, nil},
		{"kernel error", nlmsg(unix.NLMSG_ERROR, errMsg(-int32(unix.EPERM)), true), false, false, unix.EPERM},
		{"short header", []byte{1, 2, 3}, false, false, errAuditReply},
		{"length beyond", func() []byte { b := nlmsg(auditGet, status(1), true); binary.NativeEndian.PutUint32(b, 999); return b }(), false, false, errAuditReply},
		{"short status", nlmsg(auditGet, []byte{1, 2, 3}, true), false, false, errAuditReply},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enabled, found, err := parseAuditStatus(tt.in)
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if enabled != tt.enabled || found != tt.found {
				t.Errorf("enabled, found = %v, %v; want %v, %v", enabled, found, tt.enabled, tt.found)
			}
		})
	}
}

func FuzzParseAuditStatus(f *testing.F) {
	f.Add(nlmsg(auditGet, status(1), true))
	f.Add(nlmsg(unix.NLMSG_ERROR, errMsg(0), true))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		parseAuditStatus(b) // must not panic
	})
}

// TestKernelAuditEnabled asks the real kernel; on this project's machines
// audit is off, but either answer is fine: it must answer.
func TestKernelAuditEnabled(t *testing.T) {
	testutil.RequireRoot(t, "AUDIT_GET needs CAP_AUDIT_CONTROL")
	on, err := kernelAuditEnabled()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel audit enabled: %v", on)
}
