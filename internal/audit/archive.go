package audit

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/zeebo/blake3"
	"golang.org/x/sys/unix"

	"github.com/coconut-os/coconut/internal/atomicfile"
)

// ArchiveName is the manifest, in the chain directory, of the sealed
// segments kept compressed, in the chain directory or moved to an archive
// directory. Readers find those segments through it.
const ArchiveName = "ARCHIVE.json"

// archiveLockName is flocked by whoever changes the manifest or the files
// it lists (the daemon's compressor, `coconut audit archive`), so the two
// never interleave; readers take no lock (see openSegment).
const archiveLockName = "ARCHIVE.lock"

const zstExt = ".zst"

// ArchiveManifest lists the segments no longer held as plain *.seg files
// in the chain directory, in seq order.
type ArchiveManifest struct {
	Segments []ArchivedSegment `json:"segments"`
	// Pruned, when set, is the deleted prefix of the chain (delete.go):
	// the entries of Segments up to Pruned.Last are marked Deleted.
	Pruned *PrunedPrefix `json:"pruned,omitempty"`
}

// ArchivedSegment is one sealed segment kept compressed (segfile.go).
type ArchivedSegment struct {
	First    uint64    `json:"first"`
	Last     uint64    `json:"last"`
	Name     string    `json:"name"`          // the segment's name + ".zst"
	Dir      string    `json:"dir,omitempty"` // absolute; empty: the chain directory
	Bytes    int64     `json:"bytes"`         // compressed
	RawBytes int64     `json:"raw_bytes"`     // the segment as written
	Sum      string    `json:"blake3"`        // of the compressed file, hex
	PrevHead string    `json:"prev_head"`     // chain head before First, hex
	Head     string    `json:"head"`          // chain head after Last, hex
	LastTime time.Time `json:"last_time"`     // time of the row Last
	// Deleted, when set, says the file is gone by the user's order; the
	// entry stays so the seq range, heads and sum stay on record.
	Deleted *Deletion `json:"deleted,omitempty"`
}

func (a *ArchivedSegment) path(chainDir string) string {
	if a.Dir == "" {
		return filepath.Join(chainDir, a.Name)
	}
	return filepath.Join(a.Dir, a.Name)
}

// ReadArchive reads the chain directory's archive manifest; the zero
// manifest when there is none.
func ReadArchive(chainDir string) (ArchiveManifest, error) {
	b, err := os.ReadFile(filepath.Join(chainDir, ArchiveName))
	if errors.Is(err, fs.ErrNotExist) {
		return ArchiveManifest{}, nil
	}
	if err != nil {
		return ArchiveManifest{}, fmt.Errorf("read archive manifest: %w", err)
	}
	return ParseArchive(b)
}

// ParseArchive decodes and checks an archive manifest: known fields only,
// segment names matching their first seq, ranges in order and not
// overlapping, clean absolute directories, well-formed heads and sums.
func ParseArchive(b []byte) (ArchiveManifest, error) {
	var m ArchiveManifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return ArchiveManifest{}, fmt.Errorf("%w: %v", ErrBadArchive, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return ArchiveManifest{}, fmt.Errorf("%w: data after the manifest", ErrBadArchive)
	}
	bad := func(format string, args ...any) (ArchiveManifest, error) {
		return ArchiveManifest{}, fmt.Errorf("%w: %s", ErrBadArchive, fmt.Sprintf(format, args...))
	}
	for i, s := range m.Segments {
		switch {
		case s.First == 0 || s.Last < s.First:
			return bad("segment %d: seq range %d..%d", i+1, s.First, s.Last)
		case s.Name != segName(s.First)+zstExt:
			return bad("segment %d: name %q does not match first seq %d", i+1, s.Name, s.First)
		case s.Dir != "" && (!filepath.IsAbs(s.Dir) || filepath.Clean(s.Dir) != s.Dir):
			return bad("segment %d: dir %q is not a clean absolute path", i+1, s.Dir)
		case s.Bytes <= 0 || s.RawBytes < HeaderSize || s.RawBytes > MaxSegmentRaw:
			return bad("segment %d: sizes %d/%d", i+1, s.Bytes, s.RawBytes)
		case !isHexLen(s.Sum, 32) || !isHexLen(s.PrevHead, HeadSize) || !isHexLen(s.Head, HeadSize):
			return bad("segment %d: sum or heads not hex", i+1)
		case i > 0 && s.First <= m.Segments[i-1].Last:
			return bad("segment %d: seq %d overlaps the one before", i+1, s.First)
		}
	}
	if err := checkPruned(m); err != nil {
		return ArchiveManifest{}, err
	}
	return m, nil
}

func isHexLen(s string, n int) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == n
}

func writeArchive(chainDir string, m ArchiveManifest) error {
	sort.Slice(m.Segments, func(i, j int) bool { return m.Segments[i].First < m.Segments[j].First })
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if _, err := ParseArchive(b); err != nil {
		return fmt.Errorf("write archive manifest: %w", err) // never store what readers would refuse
	}
	return atomicfile.Write(filepath.Join(chainDir, ArchiveName), append(b, '\n'), 0o600)
}

// lockArchive takes the manifest lock of chainDir, waiting for it.
func lockArchive(chainDir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(chainDir, archiveLockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open archive lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock archive manifest: %w", err)
	}
	return f, nil
}

// sealedTail reads a sealed plain segment through: it must end cleanly
// (no torn frame), and its last row gives the manifest entry's last seq,
// head and time. The rows' links are Verify's to check, not this.
func sealedTail(path string) (ArchivedSegment, error) {
	f, err := os.Open(path)
	if err != nil {
		return ArchivedSegment{}, fmt.Errorf("open segment: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ArchivedSegment{}, fmt.Errorf("stat segment: %w", err)
	}
	rd, err := NewReader(io.LimitReader(f, st.Size()))
	if err != nil {
		return ArchivedSegment{}, err
	}
	hdr := rd.Header()
	a := ArchivedSegment{First: hdr.FirstSeq, RawBytes: st.Size(), PrevHead: hexHead(hdr.PrevHead), Head: hexHead(hdr.PrevHead)}
	var last []byte
	for {
		fr, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return ArchivedSegment{}, err
		}
		last = append(last[:0], fr.Payload...)
		a.Head = hexHead(fr.Head)
	}
	if rd.Offset() != st.Size() || last == nil {
		return ArchivedSegment{}, fmt.Errorf("segment %s: not a sealed segment (%d of %d bytes are whole rows)", filepath.Base(path), rd.Offset(), st.Size())
	}
	r, err := parseRecordView(last, true)
	if err != nil {
		return ArchivedSegment{}, fmt.Errorf("segment %s: last row: %w", filepath.Base(path), err)
	}
	a.Last, a.LastTime = r.Seq, r.Time
	return a, nil
}

// compressSegment writes the compressed form of the sealed plain segment
// first beside it and checks it reads back byte for byte. The caller holds
// the manifest lock, then lists the result and removes the plain file.
func compressSegment(chainDir string, first uint64) (ArchivedSegment, error) {
	plain := filepath.Join(chainDir, segName(first))
	a, err := sealedTail(plain)
	if err != nil {
		return a, err
	}
	if a.First != first {
		return a, fmt.Errorf("%w: segment %s holds first seq %d", ErrBadHeader, segName(first), a.First)
	}
	a.Name = segName(first) + zstExt
	src, err := os.Open(plain)
	if err != nil {
		return a, fmt.Errorf("open segment: %w", err)
	}
	defer src.Close()
	tmp := filepath.Join(chainDir, a.Name+".tmp")
	dst, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return a, fmt.Errorf("create compressed segment: %w", err)
	}
	defer os.Remove(tmp) // after the rename: nothing there
	h := blake3.New()
	a.Bytes, err = writeZst(io.MultiWriter(dst, h), src, a.RawBytes)
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return a, fmt.Errorf("write compressed segment: %w", err)
	}
	a.Sum = hex.EncodeToString(h.Sum(nil))
	if err := sameContent(tmp, &a, src); err != nil {
		return a, err
	}
	if err := os.Rename(tmp, filepath.Join(chainDir, a.Name)); err != nil {
		return a, fmt.Errorf("install compressed segment: %w", err)
	}
	return a, syncDir(chainDir)
}

// sameContent checks the compressed file at path decompresses to what
// plain holds.
func sameContent(path string, a *ArchivedSegment, plain io.ReaderAt) error {
	z, err := openZst(path, a)
	if err != nil {
		return err
	}
	defer z.Close()
	x, y := make([]byte, zstChunk), make([]byte, zstChunk)
	for off := int64(0); off < a.RawBytes; off += zstChunk {
		k := min(zstChunk, a.RawBytes-off)
		if _, err := z.ReadAt(x[:k], off); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if _, err := plain.ReadAt(y[:k], off); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read segment: %w", err)
		}
		if !bytes.Equal(x[:k], y[:k]) {
			return fmt.Errorf("%w: %s does not read back as %s at offset %d", ErrArchiveDamaged, path, segName(a.First), off)
		}
	}
	return nil
}

// sealedPlain returns the plain segments of chainDir other than the last
// (the one being appended to): those to compress, and those the manifest
// lists already (a crash before their removal; compressOne removes them).
func sealedPlain(chainDir string) ([]uint64, error) {
	segs, err := listPlain(chainDir)
	if err != nil {
		return nil, err
	}
	var out []uint64
	for i := 0; i < len(segs)-1; i++ {
		out = append(out, segs[i].first)
	}
	return out, nil
}

// compressOne compresses the sealed plain segment first, lists it in the
// manifest and removes the plain file; if the manifest lists it already
// (a crash between the two), only the removal is left. The caller holds
// the manifest lock.
func compressOne(chainDir string, first uint64) (a ArchivedSegment, compressed bool, err error) {
	m, err := ReadArchive(chainDir)
	if err != nil {
		return a, false, err
	}
	for _, a := range m.Segments {
		if a.First == first {
			return a, false, removePlain(chainDir, first)
		}
	}
	if a, err = compressSegment(chainDir, first); err != nil {
		return a, false, err
	}
	m.Segments = append(m.Segments, a)
	if err := writeArchive(chainDir, m); err != nil {
		return a, false, err
	}
	return a, true, removePlain(chainDir, first)
}

func removePlain(chainDir string, first uint64) error {
	err := os.Remove(filepath.Join(chainDir, segName(first)))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove compressed segment's plain copy: %w", err)
	}
	return syncDir(chainDir)
}

// tidy removes what a crash of compressOne, Archive or copyChecked can
// leave behind, each only where a listed or plain copy of the same rows
// stays: temporary files of a compression or copy (never referenced); a
// compressed file the manifest does not list beside its plain segment
// (the crash came before the manifest: the plain file is the one read,
// and a later compression makes the file anew); and a compressed file left
// in the chain directory by a move whose manifest already points at the
// archive, when its sum is the listed one. Anything else is left alone:
// nothing is deleted that is the only copy of its rows. The caller holds
// the manifest lock.
func tidy(chainDir string, m ArchiveManifest, dirs ...string) error {
	plain := map[string]bool{}
	segs, err := listPlain(chainDir)
	if err != nil {
		return err
	}
	for _, sg := range segs {
		plain[sg.name+zstExt] = true
	}
	listed := map[string]*ArchivedSegment{}
	for i := range m.Segments {
		listed[m.Segments[i].Name] = &m.Segments[i]
	}
	remove := func(p string) error {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove leftover %s: %w", p, err)
		}
		return nil
	}
	for _, d := range append([]string{chainDir}, dirs...) {
		tmps, _ := filepath.Glob(filepath.Join(d, "*"+segExt+zstExt+".tmp"))
		for _, p := range tmps {
			if err := remove(p); err != nil {
				return err
			}
		}
	}
	// A deleted segment's file left in the chain directory by a crash
	// after the manifest was written: the user's deletion, recorded (row
	// and manifest), finishes. Only there: a copy in an archive directory
	// is the delete command's to finish (FinishDelete, on its re-run), and
	// one a user put back there later (a backup) is not removed by a
	// background pass.
	var gone []string
	for i := range m.Segments {
		if a := &m.Segments[i]; a.Deleted != nil {
			gone = append(gone, filepath.Join(chainDir, segName(a.First)), filepath.Join(chainDir, a.Name))
		}
	}
	if len(gone) > 0 {
		if err := removeDeleted(chainDir, gone); err != nil {
			return err
		}
	}
	zsts, _ := filepath.Glob(filepath.Join(chainDir, "*"+segExt+zstExt))
	for _, p := range zsts {
		name := filepath.Base(p)
		a := listed[name]
		switch {
		case a != nil && a.Deleted != nil:
			continue // removed above
		case a == nil && plain[name]:
			if err := remove(p); err != nil {
				return err
			}
		case a != nil && a.Dir != "" && checkArchivedSum(p, a) == nil && checkArchivedSum(a.path(chainDir), a) == nil:
			if err := remove(p); err != nil {
				return err
			}
		}
	}
	return syncDir(chainDir)
}

// CompressSealed compresses every sealed plain segment of the chain in
// chainDir (every one but the last) and returns the entries made. Safe
// beside a running writer: the segment being appended to is never the
// one touched, and readers fall back to the manifest (see openSegment).
func CompressSealed(chainDir string) ([]ArchivedSegment, error) {
	lock, err := lockArchive(chainDir)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if m, err := ReadArchive(chainDir); err != nil {
		return nil, err
	} else if err := tidy(chainDir, m); err != nil {
		return nil, err
	}
	firsts, err := sealedPlain(chainDir)
	if err != nil {
		return nil, err
	}
	var out []ArchivedSegment
	for _, first := range firsts {
		a, _, err := compressOne(chainDir, first)
		if err != nil {
			return out, err
		}
		out = append(out, a)
	}
	return out, nil
}

// ArchiveReport is what Archive did.
type ArchiveReport struct {
	To         string            `json:"to"`
	Before     time.Time         `json:"before"`
	Compressed int               `json:"compressed"` // plain sealed segments compressed first
	Moved      []ArchivedSegment `json:"moved"`
	Bytes      int64             `json:"bytes"` // compressed bytes moved
	Rows       uint64            `json:"rows"`  // rows in the moved segments
}

// Archive moves the sealed segments of chainDir whose last row is older
// than before to the directory to, compressing those still plain first.
// Nothing is deleted: each file is copied, fsynced and checked against its
// sum, the manifest is made to point at the copy, and only then is the
// old file removed. Readers (queries, proofs, verify) follow the manifest.
func Archive(chainDir string, before time.Time, to string) (ArchiveReport, error) {
	rep := ArchiveReport{Before: before}
	to, err := filepath.Abs(to)
	if err != nil {
		return rep, err
	}
	rep.To = to
	cd, err := filepath.Abs(chainDir)
	if err != nil {
		return rep, err
	}
	if to == filepath.Clean(cd) {
		return rep, fmt.Errorf("archive directory %s is the chain directory", to)
	}
	if err := os.MkdirAll(to, 0o700); err != nil {
		return rep, fmt.Errorf("create archive directory: %w", err)
	}
	if err := checkArchiveDir(to); err != nil {
		return rep, err
	}
	lock, err := lockArchive(chainDir)
	if err != nil {
		return rep, err
	}
	defer lock.Close()
	if m, err := ReadArchive(chainDir); err != nil {
		return rep, err
	} else if err := tidy(chainDir, m, to); err != nil {
		return rep, err
	}
	firsts, err := sealedPlain(chainDir)
	if err != nil {
		return rep, err
	}
	for _, first := range firsts {
		a, err := sealedTail(filepath.Join(chainDir, segName(first)))
		if err != nil {
			return rep, err
		}
		if !a.LastTime.Before(before) {
			break // later segments hold later rows
		}
		_, compressed, err := compressOne(chainDir, first)
		if err != nil {
			return rep, err
		}
		if compressed {
			rep.Compressed++
		}
	}
	m, err := ReadArchive(chainDir)
	if err != nil {
		return rep, err
	}
	for i := range m.Segments {
		a := &m.Segments[i]
		if !a.LastTime.Before(before) || a.Dir == to {
			continue
		}
		old := a.path(chainDir)
		if err := copyChecked(old, filepath.Join(to, a.Name), a); err != nil {
			return rep, err
		}
		a.Dir = to
		if err := writeArchive(chainDir, m); err != nil {
			return rep, err
		}
		if err := os.Remove(old); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return rep, fmt.Errorf("remove %s after archiving it: %w", old, err)
		}
		if err := syncDir(filepath.Dir(old)); err != nil {
			return rep, err
		}
		rep.Moved = append(rep.Moved, *a)
		rep.Bytes += a.Bytes
		rep.Rows += a.Last - a.First + 1
	}
	return rep, nil
}

// copyChecked copies the compressed segment at from to to (temporary
// file, fsync, rename, directory fsync) and checks the copy's size and
// sum against a.
func copyChecked(from, to string, a *ArchivedSegment) error {
	src, err := os.Open(from)
	if err != nil {
		return fmt.Errorf("%w: %s (seq %d..%d): %v", ErrArchiveMissing, from, a.First, a.Last, err)
	}
	defer src.Close()
	tmp := to + ".tmp"
	dst, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create archived segment: %w", err)
	}
	defer os.Remove(tmp)
	h := blake3.New()
	n, err := io.Copy(io.MultiWriter(dst, h), src)
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w", from, to, err)
	}
	if n != a.Bytes || hex.EncodeToString(h.Sum(nil)) != a.Sum {
		return fmt.Errorf("%w: %s (seq %d..%d): %d bytes or BLAKE3 sum differ from the manifest's", ErrArchiveDamaged, from, a.First, a.Last, n)
	}
	if err := os.Rename(tmp, to); err != nil {
		return fmt.Errorf("install archived segment: %w", err)
	}
	return syncDir(filepath.Dir(to))
}

// checkArchivedSum checks a compressed segment's file against the sum the
// manifest recorded (Verify: a swapped or damaged copy is named as such
// even where its rows would still decode).
func checkArchivedSum(path string, a *ArchivedSegment) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %s (seq %d..%d): %v", ErrArchiveMissing, path, a.First, a.Last, err)
	}
	defer f.Close()
	h := blake3.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrArchiveDamaged, path, err)
	}
	if n != a.Bytes || hex.EncodeToString(h.Sum(nil)) != a.Sum {
		return fmt.Errorf("%w: %s (seq %d..%d): size or BLAKE3 sum differs from the manifest's", ErrArchiveDamaged, path, a.First, a.Last)
	}
	return nil
}

// Relink points the manifest at dir for every compressed segment that is
// not where the manifest says but is in dir with the recorded size and
// sum: an archive directory mounted or restored at another path. It
// returns the segments relinked; one found in dir with another sum is an
// error (ErrArchiveDamaged), the manifest left as it was.
func Relink(chainDir, dir string) ([]ArchivedSegment, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := checkArchiveDir(dir); err != nil {
		return nil, err
	}
	lock, err := lockArchive(chainDir)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	m, err := ReadArchive(chainDir)
	if err != nil {
		return nil, err
	}
	var out []ArchivedSegment
	for i := range m.Segments {
		a := &m.Segments[i]
		if a.Deleted != nil {
			continue // gone by the user's order: a copy found is a backup, not the chain's
		}
		if _, err := os.Stat(a.path(chainDir)); err == nil || !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		p := filepath.Join(dir, a.Name)
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if err := checkArchivedSum(p, a); err != nil {
			return nil, err
		}
		a.Dir = dir
		if dir == filepath.Clean(mustAbs(chainDir)) {
			a.Dir = ""
		}
		out = append(out, *a)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, writeArchive(chainDir, m)
}

// checkArchiveDir refuses an archive directory that someone other than its
// owner (root or this user) could write, or whose path such a one could
// swap: queries read archived rows without checking the file's sum (verify
// does), so whoever can replace a file there could serve altered rows to
// a reader. A sticky ancestor (/tmp) is fine: others cannot rename what
// is not theirs in it. The same rule as sshd's StrictModes.
func checkArchiveDir(dir string) error {
	uid := uint32(os.Geteuid())
	for p := dir; ; p = filepath.Dir(p) {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			return fmt.Errorf("archive directory %s: %w", dir, err)
		}
		mode := st.Mode & 0o7777
		if st.Uid != 0 && st.Uid != uid {
			return fmt.Errorf("archive directory %s: %s is owned by uid %d, not root or this user: refusing it (its owner could replace archived segments)", dir, p, st.Uid)
		}
		if p == dir && mode&0o022 != 0 {
			return fmt.Errorf("archive directory %s is writable by group or others (mode %04o): chmod go-w it first", dir, mode)
		}
		if p != dir && mode&0o022 != 0 && st.Mode&syscall.S_ISVTX == 0 {
			return fmt.Errorf("archive directory %s: %s is writable by group or others (mode %04o) and not sticky: anyone there could swap the path", dir, p, mode)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

func mustAbs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
