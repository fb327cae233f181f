package vmtest

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Entry is one initramfs file: a directory (Data nil, Dir true), a
// symlink (Link set) or a regular file.
type Entry struct {
	Mode uint32 // permission bits
	Dir  bool
	Link string
	Data []byte
}

// WriteCPIO writes entries as a newc archive (what the kernel unpacks as
// an initramfs), in path order so parents come first.
func WriteCPIO(w io.Writer, entries map[string]Entry) error {
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)
	ino := uint32(1)
	for _, n := range names {
		e := entries[n]
		mode, data := e.Mode|0o100000, e.Data
		switch {
		case e.Dir:
			mode = e.Mode | 0o040000
		case e.Link != "":
			mode, data = 0o120777, []byte(e.Link)
		}
		if err := record(w, ino, mode, strings.TrimPrefix(n, "/"), data); err != nil {
			return err
		}
		ino++
	}
	return record(w, 0, 0, "TRAILER!!!", nil)
}

func record(w io.Writer, ino, mode uint32, name string, data []byte) error {
	nlink := 1
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	buf := append([]byte(hdr), name...)
	buf = append(buf, 0)
	buf = pad(buf)
	buf = append(buf, data...)
	buf = pad(buf)
	_, err := w.Write(buf)
	return err
}

func pad(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// File reads a host file into an entry.
func File(path string, mode uint32) (Entry, error) {
	b, err := os.ReadFile(path)
	return Entry{Mode: mode, Data: b}, err
}
