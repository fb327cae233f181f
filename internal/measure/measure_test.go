package measure

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMeasureSealsExactBytes(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "prog")
	content := []byte("#!/bin/sh\necho hi\n")
	if err := os.WriteFile(p, content, 0o755); err != nil {
		t.Fatal(err)
	}
	c := NewCache()
	m, err := c.Measure(p, true)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(content)
	if m.SHA256 != hex.EncodeToString(want[:]) || !m.Script || m.Size != int64(len(content)) {
		t.Fatalf("got %+v", m)
	}
	// Changing the file after measuring must not change what would run.
	if err := os.WriteFile(p, []byte("#!/bin/sh\nrm -rf /\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(io.NewSectionReader(m.File(), 0, 1<<20))
	if err != nil || string(got) != string(content) {
		t.Fatalf("sealed copy = %q, %v", got, err)
	}
	// And the copy itself cannot be written.
	if _, err := unix.Pwrite(int(m.File().Fd()), []byte("x"), 0); !errors.Is(err, unix.EPERM) {
		t.Fatalf("write to sealed memfd: %v, want EPERM", err)
	}
	c.Release(m)
	if c.Len() != 0 {
		t.Fatal("cache not emptied")
	}
}

func TestMeasureSharesByDigest(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.WriteFile(a, []byte("same"), 0o755)
	os.WriteFile(b, []byte("same"), 0o755)
	c := NewCache()
	ma, err := c.Measure(a, true)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := c.Measure(b, true)
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() != 1 || ma.File() != mb.File() {
		t.Fatalf("not shared: len %d", c.Len())
	}
	c.Release(ma)
	if c.Len() != 1 {
		t.Fatal("released while still used")
	}
	c.Release(mb)
	if c.Len() != 0 {
		t.Fatal("not released")
	}
}

func TestMeasureRefuses(t *testing.T) {
	dir := t.TempDir()
	noexec := filepath.Join(dir, "noexec")
	os.WriteFile(noexec, []byte("x"), 0o644)
	c := NewCache()
	tests := []struct {
		name string
		path string
		want error
	}{
		{"missing", filepath.Join(dir, "nope"), os.ErrNotExist},
		{"directory", dir, ErrNotRegular},
		{"not executable", noexec, ErrNotExecutable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.Measure(tt.path, true); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}
