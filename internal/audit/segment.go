package audit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

const segExt = ".seg"

// segName is the file name of the segment whose first record is first.
func segName(first uint64) string { return fmt.Sprintf("%020d%s", first, segExt) }

// parseSegName returns the first seq a segment file name promises.
func parseSegName(name string) (uint64, error) {
	digits, ok := strings.CutSuffix(name, segExt)
	if !ok || len(digits) != 20 || strings.Trim(digits, "0123456789") != "" {
		return 0, fmt.Errorf("%w: %q", ErrBadSegmentName, name)
	}
	first, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || first == 0 {
		return 0, fmt.Errorf("%w: %q", ErrBadSegmentName, name)
	}
	return first, nil
}

// segInfo is one segment as the chain knows it. size is the committed
// (fsynced) size, the bound readers stop at.
// arch is set for a sealed segment kept compressed (archive.go); size is
// then its uncompressed size.
type segInfo struct {
	first uint64
	name  string
	size  int64
	arch  *ArchivedSegment
}

// listSegments returns the chain's segments in seq order: the directory's
// *.seg files and the compressed or archived ones its manifest lists.
func listSegments(dir string) ([]segInfo, error) {
	segs, _, err := listChain(dir)
	return segs, err
}

// listChain is listSegments that also returns the archive manifest. The
// directory is read before the manifest: a segment compressed meanwhile is
// then listed plain and found through the manifest when opened, never
// missed. A plain *.seg the manifest also lists (a crash before its
// removal) is read plain.
func listChain(dir string) ([]segInfo, ArchiveManifest, error) {
	segs, err := listPlain(dir)
	if err != nil {
		return nil, ArchiveManifest{}, err
	}
	m, err := ReadArchive(dir)
	if err != nil {
		return nil, m, err
	}
	if m.Pruned != nil { // a plain copy of a deleted segment (a crash before its removal) is no longer the chain's
		kept := segs[:0]
		for _, s := range segs {
			if s.first > m.Pruned.Last {
				kept = append(kept, s)
			}
		}
		segs = kept
	}
	plain := map[uint64]bool{}
	for _, s := range segs {
		plain[s.first] = true
	}
	for i := range m.Segments {
		a := &m.Segments[i]
		if plain[a.First] || a.Deleted != nil {
			continue // a deleted segment's rows are gone; a plain copy left by a crash is tidy's
		}
		segs = append(segs, segInfo{first: a.First, name: segName(a.First), size: a.RawBytes, arch: a})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].first < segs[j].first })
	return segs, m, nil
}

// listPlain returns the directory's *.seg files in seq order. Files that
// are not *.seg (the lock, a leftover *.seg.tmp, the manifest, compressed
// segments) are ignored; a *.seg with a bad name is an error, not
// something to skip.
func listPlain(dir string) ([]segInfo, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read chain dir: %w", err)
	}
	var segs []segInfo
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), segExt) {
			continue
		}
		first, err := parseSegName(e.Name())
		if err != nil {
			return nil, err
		}
		if !e.Type().IsRegular() {
			return nil, fmt.Errorf("%w: %q is not a regular file", ErrBadSegmentName, e.Name())
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("stat segment: %w", err)
		}
		segs = append(segs, segInfo{first: first, name: e.Name(), size: info.Size()})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].first < segs[j].first })
	return segs, nil
}

// createSegment writes a new segment holding only its header. The header is
// written to a temporary file, fsynced and renamed into place, so a crash
// never leaves a segment with a torn header.
func createSegment(dir string, h SegmentHeader) (*os.File, error) {
	name := filepath.Join(dir, segName(h.FirstSeq))
	if _, err := os.Lstat(name); !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("create segment %s: exists or unreadable: %v", segName(h.FirstSeq), err)
	}
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create segment: %w", err)
	}
	if _, err := f.Write(appendHeader(nil, h)); err != nil {
		f.Close()
		return nil, fmt.Errorf("write segment header: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("sync segment header: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("close segment: %w", err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return nil, fmt.Errorf("install segment: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	return openAppend(name)
}

func openAppend(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, fmt.Errorf("open segment: %w", err)
	}
	return f, nil
}

// syncDir makes a created or renamed entry in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open chain dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync chain dir: %w", err)
	}
	return nil
}
