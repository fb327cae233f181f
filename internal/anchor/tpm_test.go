package anchor

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/checkpoint"
)

func cp(size uint64, b byte) checkpoint.Checkpoint {
	c := checkpoint.Checkpoint{Size: size}
	for i := range c.Root {
		c.Root[i] = b
	}
	return c
}

func TestTPMAnchorExtendsAndReopens(t *testing.T) {
	sock := startSWTPM(t)
	tpm := dialSWTPM(t, sock)
	dir := t.TempDir()
	now := time.Unix(1000, 0)
	cfg := TPMConfig{TPM: tpm, ChainDir: dir, MinInterval: time.Minute, now: func() time.Time { return now }}
	a, err := OpenTPM(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Record(cp(10, 1)); err != nil {
		t.Fatal(err)
	}
	// Within the interval: kept, not written.
	if err := a.Record(cp(20, 2)); err != nil {
		t.Fatal(err)
	}
	if got := a.Last().Size; got != 10 {
		t.Fatalf("rate bound: last anchored %d, want 10", got)
	}
	now = now.Add(2 * time.Minute)
	if err := a.Record(cp(30, 3)); err != nil {
		t.Fatal(err)
	}
	if got := a.Last().Size; got != 30 {
		t.Fatalf("last anchored %d, want 30", got)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	got, unanchored, err := ReadTPM(dir, tpm, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Size != 10 || got[1].Size != 30 || unanchored != nil {
		t.Fatalf("anchored %+v, unanchored %v", got, unanchored)
	}
	// Reopening reconciles with the index and keeps the rate bound.
	a, err = OpenTPM(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Record(cp(40, 4)); err != nil {
		t.Fatal(err)
	}
	if a.Last().Size != 30 {
		t.Fatalf("rate bound lost across reopen: last %d", a.Last().Size)
	}
	a.Close()
}

func TestTPMDetectsJournalRewrite(t *testing.T) {
	sock := startSWTPM(t)
	tpm := dialSWTPM(t, sock)
	dir := t.TempDir()
	now := time.Unix(1000, 0)
	cfg := TPMConfig{TPM: tpm, ChainDir: dir, MinInterval: time.Second, now: func() time.Time { return now }}
	a, err := OpenTPM(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 3; i++ {
		now = now.Add(time.Hour)
		if err := a.Record(cp(i*10, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	a.Close()
	path := filepath.Join(dir, JournalName)
	orig, _ := os.ReadFile(path)

	tests := []struct {
		name   string
		mutate func() []byte
	}{
		{"rewrite root of an entry", func() []byte {
			b := append([]byte(nil), orig...)
			e := decodeEntry(b[EntrySize : 2*EntrySize-4])
			e.Root[0] ^= 1
			copy(b[EntrySize:], e.record())
			return b
		}},
		{"drop two entries (rollback)", func() []byte { return orig[:EntrySize] }},
		{"empty journal", func() []byte { return nil }},
		{"recomputed consistent fake", func() []byte {
			var b []byte
			for i := uint64(1); i <= 3; i++ {
				b = append(b, Entry{Size: i * 10, Root: cp(0, 0xee).Root, Time: time.Unix(int64(i), 0)}.record()...)
			}
			return b
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(path, tt.mutate(), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, _, err := ReadTPM(dir, tpm, 0); !errors.Is(err, ErrMismatch) {
				t.Fatalf("ReadTPM: %v, want ErrMismatch", err)
			}
			if _, err := OpenTPM(cfg); !errors.Is(err, ErrMismatch) {
				t.Fatalf("OpenTPM: %v, want ErrMismatch", err)
			}
		})
	}
	// The original journal still matches.
	os.WriteFile(path, orig, 0o600)
	if _, _, err := ReadTPM(dir, tpm, 0); err != nil {
		t.Fatal(err)
	}
}

func TestTPMRepairsCrashBetweenJournalAndExtend(t *testing.T) {
	sock := startSWTPM(t)
	tpm := dialSWTPM(t, sock)
	dir := t.TempDir()
	cfg := TPMConfig{TPM: tpm, ChainDir: dir}
	a, err := OpenTPM(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Record(cp(5, 5)); err != nil {
		t.Fatal(err)
	}
	a.Close()
	// Journal one more entry without extending it: what a crash leaves.
	f, _ := os.OpenFile(filepath.Join(dir, JournalName), os.O_WRONLY|os.O_APPEND, 0)
	f.Write(Entry{Size: 9, Root: cp(0, 9).Root, Time: time.Now()}.record())
	f.Close()
	got, un, err := ReadTPM(dir, tpm, 0)
	if err != nil || len(got) != 1 || un == nil || un.Size != 9 {
		t.Fatalf("before repair: %v %v %v", got, un, err)
	}
	a, err = OpenTPM(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	got, un, err = ReadTPM(dir, tpm, 0)
	if err != nil || len(got) != 2 || un != nil {
		t.Fatalf("after repair: %v %v %v", got, un, err)
	}
}
