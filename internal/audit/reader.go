package audit

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Frame is one record as stored. Payload is the record's canonical bytes;
// it is only valid until the next call to Next.
type Frame struct {
	Offset  int64
	Payload []byte
	Head    [HeadSize]byte
}

// Reader iterates the frames of one segment file. It checks the header and
// each frame's length and CRC, not the records or their linkage: that is
// the caller's (Verify's, Open's) job, so it can be reused by tools that
// only need framing.
type Reader struct {
	br  *bufio.Reader
	hdr SegmentHeader
	off int64
	buf []byte
	err error
}

// NewReader reads and checks the segment header from r.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var hb [HeaderSize]byte
	if n, err := io.ReadFull(br, hb[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: %d bytes", ErrBadHeader, n)
		}
		return nil, fmt.Errorf("read segment header: %w", err)
	}
	hdr, err := parseHeader(hb[:])
	if err != nil {
		return nil, err
	}
	return &Reader{br: br, hdr: hdr, off: HeaderSize}, nil
}

// Header returns the segment header.
func (r *Reader) Header() SegmentHeader { return r.hdr }

// Offset returns the offset of the next frame: after a clean io.EOF, the
// size of the good part of the segment.
func (r *Reader) Offset() int64 { return r.off }

// Next returns the next frame, io.EOF at a clean end of the segment, or a
// *FrameError (wrapping ErrTornFrame, ErrFrameLength or ErrFrameCRC). Errors
// are sticky.
func (r *Reader) Next() (Frame, error) {
	if r.err != nil {
		return Frame{}, r.err
	}
	f, err := r.next()
	if err != nil {
		r.err = err
	}
	return f, err
}

func (r *Reader) next() (Frame, error) {
	var lb [4]byte
	n, err := io.ReadFull(r.br, lb[:])
	if n == 0 && errors.Is(err, io.EOF) {
		return Frame{}, io.EOF
	}
	if err != nil {
		return Frame{}, r.fault(0, err)
	}
	l := binary.LittleEndian.Uint32(lb[:])
	if l == 0 || l > MaxPayload {
		return Frame{}, &FrameError{Offset: r.off, Len: l, Err: ErrFrameLength}
	}
	need := int(l) + HeadSize + 4
	if cap(r.buf) < 4+need {
		r.buf = make([]byte, 4+need)
	}
	buf := r.buf[:4+need]
	copy(buf, lb[:])
	if _, err := io.ReadFull(r.br, buf[4:]); err != nil {
		return Frame{}, r.fault(l, err)
	}
	body := buf[:4+int(l)+HeadSize]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(buf[len(body):]) {
		return Frame{}, &FrameError{Offset: r.off, Len: l, Err: ErrFrameCRC}
	}
	f := Frame{Offset: r.off, Payload: buf[4 : 4+l], Head: [HeadSize]byte(buf[4+l : len(body)])}
	r.off += int64(len(buf))
	return f, nil
}

// fault turns a short read into ErrTornFrame and keeps I/O errors as they are.
func (r *Reader) fault(l uint32, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &FrameError{Offset: r.off, Len: l, Err: ErrTornFrame}
	}
	return &FrameError{Offset: r.off, Len: l, Err: fmt.Errorf("read: %w", err)}
}
