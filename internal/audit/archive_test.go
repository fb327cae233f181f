package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/coconut-os/coconut/internal/testutil"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fillBatch appends n records rec(0..n-1) in batches of 500.
func fillBatch(t testing.TB, c *Chain, n int) []Record {
	t.Helper()
	var out []Record
	for i := 0; i < n; i += 500 {
		rs := make([]Record, 0, 500)
		for j := i; j < min(n, i+500); j++ {
			rs = append(rs, rec(j))
		}
		got, err := c.AppendBatch(context.Background(), rs)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, got...)
	}
	return out
}

func globN(t *testing.T, pattern string) int {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

func dirBytes(t *testing.T, dir, suffix string) int64 {
	t.Helper()
	var n int64
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), suffix) {
			fi, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			n += fi.Size()
		}
	}
	return n
}

// TestCompressSealed: a chain with CompressSealed keeps every sealed
// segment as *.seg.zst and only the active one plain; Verify, queries by
// the on-disk index and by scan, and Payloads read the compressed
// segments (several chunks each) and give what was appended.
func TestCompressSealed(t *testing.T) {
	dir := t.TempDir()
	chain, idx := filepath.Join(dir, "chain"), filepath.Join(dir, "index")
	var errs []error
	c := openT(t, chain, Options{SegmentBytes: 3 << 20, IndexDir: idx, CompressSealed: true, OnCompressError: func(err error) { errs = append(errs, err) }})
	want := fillBatch(t, c, 40000)
	c.WaitIndexed(10 * time.Second)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if len(errs) > 0 {
		t.Fatalf("compression failed: %v", errs)
	}
	if n := globN(t, filepath.Join(chain, "*.seg")); n != 1 {
		t.Fatalf("%d plain segments left, want only the active one", n)
	}
	nz := globN(t, filepath.Join(chain, "*.seg.zst"))
	if nz < 2 {
		t.Fatalf("%d compressed segments, want at least 2", nz)
	}
	m, err := ReadArchive(chain)
	if err != nil || len(m.Segments) != nz {
		t.Fatalf("manifest: %d entries, %v; %d files", len(m.Segments), err, nz)
	}
	var raw int64
	for _, a := range m.Segments {
		raw += a.RawBytes
		if a.RawBytes <= zstChunk {
			t.Fatalf("segment %s of %d bytes: one chunk, the test wants several", a.Name, a.RawBytes)
		}
	}
	if comp := dirBytes(t, chain, ".zst"); comp*2 > raw {
		t.Fatalf("compressed %d bytes of %d: less than half saved", comp, raw)
	}
	rep, err := Verify(chain)
	if err != nil || rep.Records != uint64(len(want)) || rep.Head != want[len(want)-1].Hash {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}

	// Reopened with the index kept, and again with it removed (rebuilt
	// from the compressed segments), and with no index (scan).
	for _, o := range []Options{{IndexDir: idx}, {IndexDir: filepath.Join(dir, "index2")}, {}} {
		c := openT(t, chain, o)
		if o.IndexDir != "" && !c.WaitIndexed(30*time.Second) {
			t.Fatal("index not caught up")
		}
		got, err := c.Query(Query{AID: ptr(uint64(101)), Limit: 10000})
		if err != nil {
			t.Fatal(err)
		}
		var exp []Record
		for _, r := range want {
			if r.AID == 101 {
				exp = append(exp, r)
			}
		}
		exp = exp[:10000]
		if len(got) != len(exp) || !reflect.DeepEqual(got[len(got)-1], exp[len(exp)-1]) || !reflect.DeepEqual(got[0], exp[0]) {
			t.Fatalf("query by aid (%+v): %d rows, want %d", o, len(got), len(exp))
		}
		n := 0
		if err := c.Payloads(0, uint64(len(want)), func(seq uint64, p []byte) error {
			n++
			if seq != uint64(n) {
				t.Fatalf("payload seq %d, want %d", seq, n)
			}
			return nil
		}); err != nil || n != len(want) {
			t.Fatalf("Payloads: %d, %v", n, err)
		}
		c.Close()
	}
}

// TestCompressCrashBetween: a crash after the manifest lists a segment but
// before its plain copy is removed leaves both; readers use the plain one,
// and the next pass removes it.
func TestCompressCrashBetween(t *testing.T) {
	chain := t.TempDir()
	c := openT(t, chain, Options{SegmentBytes: 64 << 10})
	want := fillBatch(t, c, 3000)
	c.Close()
	plain := segPaths(t, chain)
	keep, err := os.ReadFile(plain[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CompressSealed(chain); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(plain[0], keep, 0o600); err != nil { // as if not yet removed
		t.Fatal(err)
	}
	if rep, err := Verify(chain); err != nil || rep.Records != uint64(len(want)) {
		t.Fatalf("Verify with both copies = %+v, %v", rep, err)
	}
	c = openT(t, chain, Options{SegmentBytes: 64 << 10, CompressSealed: true})
	fillBatch(t, c, 10)
	c.Close()
	if _, err := os.Stat(plain[0]); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("plain copy of a listed segment still there: %v", err)
	}
	if _, err := Verify(chain); err != nil {
		t.Fatal(err)
	}
}

// TestArchive: Archive moves the sealed segments older than the date to
// another directory, compressing plain ones first; verify, queries and a
// running chain follow; a missing or damaged archive is named, not
// skipped.
func TestArchive(t *testing.T) {
	dir := t.TempDir()
	chain, idx, arch := filepath.Join(dir, "chain"), filepath.Join(dir, "index"), filepath.Join(dir, "archive")
	c := openT(t, chain, Options{SegmentBytes: 64 << 10, IndexDir: idx})
	want := fillBatch(t, c, 4000) // rec(i) is t0+i s
	c.WaitIndexed(10 * time.Second)

	// Rows before t0+2000s: only the segments whose last row is older move.
	cut := t0.Add(2000 * time.Second)
	rep, err := Archive(chain, cut, arch)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Moved) == 0 || rep.Compressed != len(rep.Moved) {
		t.Fatalf("report %+v", rep)
	}
	for _, a := range rep.Moved {
		if !a.LastTime.Before(cut) || a.Dir != arch {
			t.Fatalf("moved %+v", a)
		}
	}
	if n := globN(t, filepath.Join(arch, "*.seg.zst")); n != len(rep.Moved) {
		t.Fatalf("%d files in the archive, %d moved", n, len(rep.Moved))
	}
	// The running chain reads through the manifest (its segment list still
	// says plain).
	got, err := c.Query(Query{AID: ptr(uint64(100)), Limit: 5})
	if err != nil || len(got) != 5 || !reflect.DeepEqual(got[0], want[0]) {
		t.Fatalf("query on the running chain: %d rows, %v", len(got), err)
	}
	fillBatch(t, c, 10)
	c.Close()
	if rep, err := Verify(chain); err != nil || rep.Records != uint64(len(want)+10) {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	// Everything, again: the rest moves, what is there stays.
	rep2, err := Archive(chain, t0.Add(24*time.Hour), arch)
	if err != nil || len(rep2.Moved) == 0 {
		t.Fatalf("second archive: %+v, %v", rep2, err)
	}
	if n := globN(t, filepath.Join(chain, "*.seg")); n != 1 {
		t.Fatalf("%d plain segments, want the active one", n)
	}

	// The archive directory gone: Verify names the archive and the rows.
	moved := arch + ".away"
	if err := os.Rename(arch, moved); err != nil {
		t.Fatal(err)
	}
	vr, err := Verify(chain)
	if !errors.Is(err, ErrArchiveMissing) || vr.FirstBad != 1 || !strings.Contains(err.Error(), arch) {
		t.Fatalf("Verify without the archive = %+v, %v", vr, err)
	}
	if err := os.Rename(moved, arch); err != nil {
		t.Fatal(err)
	}

	// One byte of an archived file changed: its sum no longer matches.
	m, _ := ReadArchive(chain)
	p := m.Segments[1].path(chain)
	b, _ := os.ReadFile(p)
	b[len(b)/2] ^= 1
	os.WriteFile(p, b, 0o600)
	vr, err = Verify(chain)
	if !errors.Is(err, ErrArchiveDamaged) || vr.FirstBad != m.Segments[1].First {
		t.Fatalf("Verify with a damaged archive = %+v, %v", vr, err)
	}
}

// TestArchiveTidiesCrashLeftovers: what a crash at each step of a
// compression or a move leaves is removed by the next pass, and only where
// another copy of the same rows stays; a compressed file that is the only
// copy of its rows is never touched.
func TestArchiveTidiesCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	chain, arch := filepath.Join(dir, "chain"), filepath.Join(dir, "archive")
	c := openT(t, chain, Options{SegmentBytes: 64 << 10})
	fillBatch(t, c, 4000)
	c.Close()
	firsts, err := sealedPlain(chain)
	if err != nil || len(firsts) < 3 {
		t.Fatalf("sealed segments %v, %v", firsts, err)
	}
	// A crash after the rename, before the manifest: an unlisted .zst
	// beside its plain segment; and a compression's temporary file.
	a0, err := compressSegment(chain, firsts[0])
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(chain, segName(firsts[1])+zstExt+".tmp")
	os.WriteFile(tmp, []byte("half"), 0o600)
	m, _ := ReadArchive(chain)
	if err := tidy(chain, m); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(chain, a0.Name), tmp} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left after tidy: %v", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(chain, segName(firsts[0]))); err != nil {
		t.Fatalf("the plain segment went: %v", err)
	}

	// A crash of a move after the manifest, before the old file went: the
	// chain directory keeps a copy of what the archive now holds.
	if _, err := Archive(chain, t0.Add(24*time.Hour), arch); err != nil {
		t.Fatal(err)
	}
	m, _ = ReadArchive(chain)
	if len(m.Segments) != len(firsts) {
		t.Fatalf("manifest lists %d segments, want %d", len(m.Segments), len(firsts))
	}
	copyBack := func(a ArchivedSegment) string {
		b, err := os.ReadFile(a.path(chain))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(chain, a.Name)
		os.WriteFile(p, b, 0o600)
		return p
	}
	stale := copyBack(m.Segments[1])
	// The only good copy of some rows: the archived file is damaged, the
	// one in the chain directory is not. Never removed.
	only := copyBack(m.Segments[0])
	b, _ := os.ReadFile(m.Segments[0].path(chain))
	b[len(b)/2] ^= 1
	os.WriteFile(m.Segments[0].path(chain), b, 0o600)
	archTmp := filepath.Join(arch, m.Segments[2].Name+".tmp")
	os.WriteFile(archTmp, []byte("half"), 0o600)

	if _, err := Archive(chain, t0.Add(24*time.Hour), arch); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{stale, archTmp} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left after the next archive: %v", p, err)
		}
	}
	if _, err := os.Stat(only); err != nil {
		t.Errorf("a copy whose archived twin is damaged was removed: %v", err)
	}
}

// TestArchiveRefusesChainDir: the archive must be another directory.
func TestArchiveRefusesChainDir(t *testing.T) {
	chain := t.TempDir()
	c := openT(t, chain, Options{SegmentBytes: 64 << 10})
	fillBatch(t, c, 1000)
	c.Close()
	if _, err := Archive(chain, time.Now(), chain); err == nil {
		t.Fatal("archive into the chain dir accepted")
	}
}

// TestArchiveRefusesOpenDir: an archive directory others could write, or
// whose path a non-sticky open parent lets them swap, is refused before
// anything moves; a sticky parent (like /tmp) and a private one are fine.
func TestArchiveRefusesOpenDir(t *testing.T) {
	chain := t.TempDir()
	c := openT(t, chain, Options{SegmentBytes: 64 << 10})
	fillBatch(t, c, 1000)
	c.Close()
	base := t.TempDir()
	mk := func(name string, mode os.FileMode) string {
		p := filepath.Join(base, name)
		if err := os.Mkdir(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	open := mk("open", 0o775)
	if _, err := Archive(chain, time.Now(), open); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Fatalf("group-writable archive dir: %v", err)
	}
	if _, err := Relink(chain, open); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Fatalf("relink to a group-writable dir: %v", err)
	}
	under := filepath.Join(mk("shared", 0o777), "archive")
	if _, err := Archive(chain, time.Now(), under); err == nil || !strings.Contains(err.Error(), "not sticky") {
		t.Fatalf("archive dir under a world-writable parent: %v", err)
	}
	if m, _ := ReadArchive(chain); len(m.Segments) != 0 {
		t.Fatalf("a refused archive compressed or moved segments: %+v", m.Segments)
	}
	sticky := filepath.Join(mk("sticky", os.ModeSticky|0o777), "archive")
	rep, err := Archive(chain, time.Now(), sticky)
	if err != nil || len(rep.Moved) == 0 {
		t.Fatalf("archive under a sticky parent: %+v, %v", rep, err)
	}
}

func ptr[T any](v T) *T { return &v }

// FuzzParseArchive: any bytes give a manifest or ErrBadArchive, and a
// manifest that parses writes back as one that parses the same.
func FuzzParseArchive(f *testing.F) {
	f.Add([]byte(`{"segments":[]}`))
	f.Add([]byte(`{"segments":[{"first":1,"last":9,"name":"00000000000000000001.seg.zst","bytes":10,"raw_bytes":100,"blake3":"` + strings.Repeat("ab", 32) + `","prev_head":"` + strings.Repeat("00", 32) + `","head":"` + strings.Repeat("01", 32) + `","last_time":"2026-01-01T00:00:00Z"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseArchive(b)
		if err != nil {
			if !errors.Is(err, ErrBadArchive) {
				t.Fatalf("error %v is not ErrBadArchive", err)
			}
			return
		}
		dir := t.TempDir()
		if err := writeArchive(dir, m); err != nil {
			t.Fatalf("a parsed manifest does not write: %v", err)
		}
		if _, err := ReadArchive(dir); err != nil {
			t.Fatalf("a written manifest does not read: %v", err)
		}
	})
}

// FuzzZstTable: the chunk table parser and chunk reader refuse any bytes
// that are not a compressed segment with an error, never a panic or an
// allocation beyond the bounds; a real compressed segment is the seed.
func FuzzZstTable(f *testing.F) {
	var seg bytes.Buffer
	seg.Write(appendHeader(nil, SegmentHeader{FirstSeq: 1, PrevHead: Genesis}))
	seg.Write(bytes.Repeat([]byte("row "), 3000))
	var z bytes.Buffer
	if _, err := writeZst(&z, bytes.NewReader(seg.Bytes()), int64(seg.Len())); err != nil {
		f.Fatal(err)
	}
	f.Add(z.Bytes(), int64(seg.Len()))
	f.Add(z.Bytes()[:z.Len()-1], int64(seg.Len()))
	f.Fuzz(func(t *testing.T, b []byte, raw int64) {
		path := filepath.Join(t.TempDir(), segName(1)+zstExt)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		a := &ArchivedSegment{First: 1, Last: 1, Bytes: int64(len(b)), RawBytes: raw}
		zs, err := openZst(path, a)
		if err != nil {
			if !errors.Is(err, ErrArchiveDamaged) {
				t.Fatalf("error %v is not ErrArchiveDamaged", err)
			}
			return
		}
		defer zs.Close()
		buf := make([]byte, 4096)
		for off := int64(0); off < raw; off += int64(len(buf)) {
			if _, err := zs.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, ErrArchiveDamaged) {
				t.Fatalf("ReadAt %d: %v", off, err)
			}
		}
	})
}

// TestZstdCLIRestores: the compressed form is an ordinary zstd stream;
// the zstd tool restores the segment byte for byte (docs/audit-format.md).
func TestZstdCLIRestores(t *testing.T) {
	zstd := testutil.RequireCommand(t, "zstd", "apt-get install zstd")
	chain := t.TempDir()
	c := openT(t, chain, Options{SegmentBytes: 3 << 20})
	fillBatch(t, c, 20000)
	c.Close()
	plain := segPaths(t, chain)[0]
	want, err := os.ReadFile(plain)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CompressSealed(chain); err != nil {
		t.Fatal(err)
	}
	got, err := exec.Command(zstd, "-d", "-c", plain+zstExt).Output()
	if err != nil {
		t.Fatalf("zstd -d: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("zstd -d gives %d bytes, not the %d of the segment", len(got), len(want))
	}
}

// TestRelink: an archive found at another path is relinked only where its
// files carry the recorded sums.
func TestRelink(t *testing.T) {
	dir := t.TempDir()
	chain, arch, moved := filepath.Join(dir, "chain"), filepath.Join(dir, "a"), filepath.Join(dir, "b")
	c := openT(t, chain, Options{SegmentBytes: 64 << 10})
	want := fillBatch(t, c, 3000)
	c.Close()
	if _, err := Archive(chain, t0.Add(24*time.Hour), arch); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(arch, moved); err != nil {
		t.Fatal(err)
	}
	m, _ := ReadArchive(chain)
	p := filepath.Join(moved, m.Segments[0].Name)
	good, _ := os.ReadFile(p)
	bad := append([]byte(nil), good...)
	bad[10] ^= 1
	os.WriteFile(p, bad, 0o600)
	if _, err := Relink(chain, moved); !errors.Is(err, ErrArchiveDamaged) {
		t.Fatalf("relink to a damaged copy: %v", err)
	}
	os.WriteFile(p, good, 0o600)
	segs, err := Relink(chain, moved)
	if err != nil || len(segs) != len(m.Segments) {
		t.Fatalf("relink: %d of %d, %v", len(segs), len(m.Segments), err)
	}
	if rep, err := Verify(chain); err != nil || rep.Records != uint64(len(want)) {
		t.Fatalf("Verify after relink = %+v, %v", rep, err)
	}
}

// TestArchiveBesideWriter: appends with the background compressor on,
// `Archive` passes from elsewhere and indexed queries all run at once; no
// query misses a row it should see, no pass fails, and the chain verifies.
func TestArchiveBesideWriter(t *testing.T) {
	dir := t.TempDir()
	chain, arch := filepath.Join(dir, "chain"), filepath.Join(dir, "archive")
	var compErr error
	c := openT(t, chain, Options{SegmentBytes: 32 << 10, IndexDir: filepath.Join(dir, "index"), CompressSealed: true, OnCompressError: func(err error) { compErr = err }})
	done := make(chan struct{})
	errc := make(chan error, 2)
	go func() { // archiver
		for {
			select {
			case <-done:
				errc <- nil
				return
			default:
			}
			if _, err := Archive(chain, t0.Add(24*time.Hour), arch); err != nil {
				errc <- err
				return
			}
		}
	}()
	go func() { // querier: rows of aid 100 are every third from seq 1
		for {
			select {
			case <-done:
				errc <- nil
				return
			default:
			}
			seq, _ := c.Head()
			got, err := c.Query(Query{AID: ptr(uint64(100)), Limit: 10000})
			if err != nil {
				errc <- err
				return
			}
			if want := min(10000, int(seq+2)/3); len(got) < want {
				errc <- fmt.Errorf("query by aid at head %d: %d rows, want at least %d", seq, len(got), want)
				return
			}
		}
	}()
	want := fillBatch(t, c, 20000)
	close(done)
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil || compErr != nil {
		t.Fatalf("close: %v, compressor: %v", err, compErr)
	}
	if rep, err := Verify(chain); err != nil || rep.Records != uint64(len(want)) {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
}
