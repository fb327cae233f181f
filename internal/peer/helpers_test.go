package peer

import "encoding/binary"

func nativePut16(b []byte, v uint16) { binary.NativeEndian.PutUint16(b, v) }
func nativePut32(b []byte, v uint32) { binary.NativeEndian.PutUint32(b, v) }
func nativePut64(b []byte, v uint64) { binary.NativeEndian.PutUint64(b, v) }
