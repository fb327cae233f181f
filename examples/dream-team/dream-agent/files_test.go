package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCountText(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want textStats
	}{
		{name: "empty", in: "", want: textStats{}},
		{name: "one line", in: "hello world\n", want: textStats{Bytes: 12, Lines: 1, Words: 2}},
		{name: "no final newline", in: "a b\nc", want: textStats{Bytes: 5, Lines: 1, Words: 3}},
		{name: "runs of space", in: "  a \t\t b \r\n\n", want: textStats{Bytes: 12, Lines: 2, Words: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := countText(strings.NewReader(tt.in))
			if err != nil || got != tt.want {
				t.Errorf("countText = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
	t.Run("capped", func(t *testing.T) {
		got, err := countText(bytes.NewReader(make([]byte, maxRead+100)))
		if err != nil || got.Bytes != maxRead {
			t.Errorf("countText of a big file = %+v, %v; want %d bytes", got, err, maxRead)
		}
	})
}

func FuzzCountText(f *testing.F) {
	f.Add([]byte("hello world\n"))
	f.Add([]byte{0, '\n', 0xff, ' '})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := countText(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if s.Bytes != len(b) || s.Lines != bytes.Count(b, []byte{'\n'}) || s.Words > s.Bytes {
			t.Fatalf("stats %+v for %d bytes", s, len(b))
		}
		// Words are split on ASCII space only, as wc does in the C locale.
		ascii := func(r rune) bool { return strings.ContainsRune(" \n\t\r\v\f", r) }
		if want := len(bytes.FieldsFunc(b, ascii)); s.Words != want {
			t.Fatalf("words = %d, want %d", s.Words, want)
		}
	})
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "plan.md")
	for _, content := range []string{"first\n", "second\n"} {
		if err := writeFileAtomic(p, []byte(content)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != content {
			t.Fatalf("read back %q, %v; want %q", got, err, content)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temporary file left behind: %v", ents)
	}
	if err := writeFileAtomic(filepath.Join(dir, "missing", "x"), nil); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}
