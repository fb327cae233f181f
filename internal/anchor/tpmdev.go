package anchor

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
)

// DeviceTPM is the kernel's resource-managed TPM device.
const DeviceTPM = "/dev/tpmrm0"

// DialTPM opens the TPM: swtpm's unix data socket when socket is set,
// DeviceTPM otherwise.
func DialTPM(socket string) (transport.TPMCloser, error) {
	if socket != "" {
		c, err := net.Dial("unix", socket)
		if err != nil {
			return nil, fmt.Errorf("%w: dial %s: %w", ErrNoTPM, socket, err)
		}
		return transport.FromReadWriteCloser(c), nil
	}
	if _, err := os.Stat(DeviceTPM); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoTPM, err)
	}
	t, err := linuxtpm.Open(DeviceTPM)
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %w", ErrNoTPM, DeviceTPM, err)
	}
	return t, nil
}

// nvExtend sends TPM2_NV_Extend with an empty password session on the
// index itself (TPMA_NV_AUTHWRITE). go-tpm v0.9 has the command code but
// no command type, so the command is marshalled here (Part 3, 31.9).
func nvExtend(t transport.TPM, index tpm2.TPMHandle, data []byte) error {
	if len(data) > 1024 {
		return fmt.Errorf("%w: nv extend of %d bytes", ErrTPM, len(data))
	}
	const (
		stSessions = 0x8002
		rsPW       = 0x40000009
	)
	b := binary.BigEndian.AppendUint16(nil, stSessions)
	b = binary.BigEndian.AppendUint32(b, 0) // size, set below
	b = binary.BigEndian.AppendUint32(b, uint32(tpm2.TPMCCNVExtend))
	b = binary.BigEndian.AppendUint32(b, uint32(index)) // authHandle
	b = binary.BigEndian.AppendUint32(b, uint32(index)) // nvIndex
	// Authorization area: one password session with an empty password.
	b = binary.BigEndian.AppendUint32(b, 4+2+1+2)
	b = binary.BigEndian.AppendUint32(b, rsPW)
	b = binary.BigEndian.AppendUint16(b, 0) // nonce
	b = append(b, 1)                        // continueSession
	b = binary.BigEndian.AppendUint16(b, 0) // hmac (password): empty
	b = binary.BigEndian.AppendUint16(b, uint16(len(data)))
	b = append(b, data...)
	binary.BigEndian.PutUint32(b[2:], uint32(len(b)))
	rsp, err := t.Send(b)
	if err != nil {
		return fmt.Errorf("%w: nv extend: %w", ErrTPM, err)
	}
	if len(rsp) < 10 {
		return fmt.Errorf("%w: nv extend: short response (%d bytes)", ErrTPM, len(rsp))
	}
	if rc := tpm2.TPMRC(binary.BigEndian.Uint32(rsp[6:])); rc != tpm2.TPMRCSuccess {
		return fmt.Errorf("%w: nv extend: %w", ErrTPM, rc)
	}
	return nil
}
