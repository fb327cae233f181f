package sign

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// maxTrustFile bounds one trust entry file; a real one is about 400 bytes.
const maxTrustFile = 64 << 10

// entryFileName is the file holding keyID: the colon is replaced because
// it is awkward in file names on some tools and systems.
func entryFileName(keyID string) string {
	return strings.Replace(keyID, ":", "_", 1) + ".json"
}

// reloadLocked reads every entry file in the directory. Files that are not
// valid entries are recorded in t.problems and skipped.
func (t *Trust) reloadLocked() error {
	fi, err := os.Stat(t.dir)
	if err != nil {
		return fmt.Errorf("trust directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("trust directory %s: not a directory", t.dir)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s has mode %04o: %w", t.dir, fi.Mode().Perm(), ErrInsecureTrustDir)
	}
	des, err := os.ReadDir(t.dir)
	if err != nil {
		return fmt.Errorf("read trust directory: %w", err)
	}
	entries := map[string]TrustEntry{}
	var problems []error
	for _, de := range des {
		name := de.Name()
		// Temporary files of an in-progress atomic write.
		if strings.HasPrefix(name, ".") {
			continue
		}
		path := filepath.Join(t.dir, name)
		e, err := readEntry(path)
		if err != nil {
			problems = append(problems, fmt.Errorf("trust entry %s: %w", path, err))
			continue
		}
		entries[e.KeyID] = e
	}
	t.entries, t.problems = entries, problems
	return nil
}

// readEntry reads and validates one entry file. It never follows a
// symlink and refuses files that group or other can write.
func readEntry(path string) (TrustEntry, error) {
	name := filepath.Base(path)
	if !strings.HasSuffix(name, ".json") {
		return TrustEntry{}, fmt.Errorf("%w: not a .json file", ErrMalformedTrustEntry)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return TrustEntry{}, err
	}
	if !fi.Mode().IsRegular() {
		return TrustEntry{}, fmt.Errorf("%w: not a regular file", ErrMalformedTrustEntry)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return TrustEntry{}, fmt.Errorf("%w: mode %04o is writable by group or other", ErrMalformedTrustEntry, fi.Mode().Perm())
	}
	f, err := os.OpenFile(path, os.O_RDONLY|nofollow, 0)
	if err != nil {
		return TrustEntry{}, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxTrustFile+1))
	if err != nil {
		return TrustEntry{}, err
	}
	if len(data) > maxTrustFile {
		return TrustEntry{}, fmt.Errorf("%w: larger than %d bytes", ErrMalformedTrustEntry, maxTrustFile)
	}
	e, err := parseEntry(data)
	if err != nil {
		return TrustEntry{}, err
	}
	if want := entryFileName(e.KeyID); name != want {
		return TrustEntry{}, fmt.Errorf("%w: key %s must be stored in %s", ErrMalformedTrustEntry, e.KeyID, want)
	}
	return e, nil
}

// parseEntry strictly decodes an entry and checks that its key id is the
// id of its public key, so an entry cannot claim another key's id.
func parseEntry(data []byte) (TrustEntry, error) {
	var e TrustEntry
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return TrustEntry{}, fmt.Errorf("%w: %v", ErrMalformedTrustEntry, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return TrustEntry{}, fmt.Errorf("%w: trailing data", ErrMalformedTrustEntry)
	}
	pub, err := ParsePublicKey([]byte(e.PublicKey))
	if err != nil {
		return TrustEntry{}, fmt.Errorf("%w: public_key: %w", ErrMalformedTrustEntry, err)
	}
	if id := KeyID(pub); e.KeyID != id {
		return TrustEntry{}, fmt.Errorf("%w: keyid %q does not match its public key %s", ErrMalformedTrustEntry, e.KeyID, id)
	}
	if e.AddedAt.IsZero() {
		return TrustEntry{}, fmt.Errorf("%w: missing added_at", ErrMalformedTrustEntry)
	}
	e.Key = pub
	return e, nil
}

// writeEntry writes e atomically: a temporary file in the same directory,
// fsynced, renamed over the final name, then the directory fsynced, so a
// crash leaves either the old entry or the new one, never half of one.
func writeEntry(dir string, e TrustEntry) error {
	data, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	f, err := os.CreateTemp(dir, ".tmp-trust-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, entryFileName(e.KeyID))); err != nil {
		return err
	}
	ok = true
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
