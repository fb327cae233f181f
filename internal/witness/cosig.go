package witness

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/coconut-os/coconut/internal/checkpoint"
)

// CosignaturesName is the cosignature log's file name in the chain
// directory, beside checkpoints.log. Each entry is one witness's answer:
// the signed checkpoint note with the cosignature lines the witness
// returned appended, a signed note any C2SP verifier opens with the host
// key and the witness key. Framing as checkpoints.log: length u32 LE |
// note | CRC32C u32 LE (of length and note), fsynced; a short or bad-CRC
// last entry is a torn append, cut when coconutd opens the log.
const CosignaturesName = "cosignatures.log"

// ErrBadLog means the cosignature log is corrupt (not just torn at its end).
var ErrBadLog = errors.New("corrupt cosignature log")

// maxEntry bounds one entry: a checkpoint note (at most 64 KiB) and an
// answer (at most maxAnswer).
const maxEntry = 64<<10 + maxAnswer

func frame(entry []byte) []byte {
	return checkpoint.AppendFrame(make([]byte, 0, 8+len(entry)), entry)
}

// Scan streams the entries of a cosignature log, calling fn with each
// entry's offset and bytes (valid only during the call). good is the
// length of the well-formed prefix; torn says a torn last entry follows.
// The framing is checkpoints.log's, read by the one reader of it.
func Scan(r io.Reader, fn func(off int64, entry []byte) error) (good int64, torn bool, err error) {
	return checkpoint.ScanFrames(r, maxEntry, ErrBadLog, fn)
}

// CosigLog appends cosigned checkpoints durably. Safe for concurrent use.
type CosigLog struct {
	mu sync.Mutex
	f  *os.File
}

// OpenCosigLog opens (creating) the log at path for appending, after
// cutting a torn last entry. A corrupt log is an error: it is evidence,
// so it is never rewritten.
func OpenCosigLog(path string) (*CosigLog, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open cosignature log: %w", err)
	}
	good, _, err := Scan(f, func(int64, []byte) error { return nil })
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, fmt.Errorf("cut cosignature log: %w", err)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("seek cosignature log: %w", err)
	}
	return &CosigLog{f: f}, nil
}

// Append writes one entry (signed note || cosignature lines) and fsyncs.
func (c *CosigLog) Append(cosigned []byte) error {
	if len(cosigned) == 0 || len(cosigned) > maxEntry {
		return fmt.Errorf("cosignature entry of %d bytes", len(cosigned))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.f.Write(frame(cosigned)); err != nil {
		return fmt.Errorf("write cosignature: %w", err)
	}
	if err := c.f.Sync(); err != nil {
		return fmt.Errorf("sync cosignature log: %w", err)
	}
	return nil
}

// Close closes the file.
func (c *CosigLog) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.f.Close()
}

// sigLines returns the signature lines of a signed note (after its last
// blank line), or nil if there are none.
func sigLines(entry []byte) (text []byte, lines []string) {
	i := bytes.LastIndex(entry, []byte("\n\n"))
	if i < 0 {
		return nil, nil
	}
	return entry[:i+1], strings.Split(strings.TrimSuffix(string(entry[i+2:]), "\n"), "\n")
}

// names reports whether a note signature line is by the named key (its
// name and the 4-byte key hash that starts its signature). It checks no
// signature.
func names(line string, k Key) bool {
	rest, ok := strings.CutPrefix(line, "— ")
	if !ok {
		return false
	}
	name, b64, ok := strings.Cut(rest, " ")
	if !ok || name != k.Name {
		return false
	}
	sig, err := base64.StdEncoding.DecodeString(b64)
	return err == nil && len(sig) >= 4 && binary.BigEndian.Uint32(sig) == k.Verifier.KeyHash()
}

// Cosigned is a verified cosignature of a checkpoint by one witness.
type Cosigned struct {
	Checkpoint checkpoint.Checkpoint
	Time       time.Time // the cosignature's timestamp (cosignature/v1)
	Offset     int64     // of its entry in the log
}

// Found is what a cosignature log holds for one witness key: how many
// entries name it, the sizes they span, and the newest (largest size)
// one, verified. Newest is nil when Count is 0.
type Found struct {
	Key      Key
	Count    int
	Smallest uint64
	Newest   *Cosigned
}

// Newest reads the cosignature log at path and returns, for each key, its
// newest cosigned checkpoint, verified: the host's signature and origin
// and the witness's cosignature/v1 signature. Older entries are counted,
// not verified: a witness cosigns a checkpoint only when it is
// consistent with the last one it cosigned, so the newest vouches for
// every prefix. A newest entry that names a key and does not verify with
// it is an error (the log was tampered with), never skipped for an older
// one. A missing log is an empty one.
func Newest(path string, pub ed25519.PublicKey, keys []Key) ([]Found, error) {
	found := make([]Found, len(keys))
	offs := make([]int64, len(keys))
	for i, k := range keys {
		found[i].Key = k
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return found, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open cosignature log: %w", err)
	}
	defer f.Close()
	newest := make([][]byte, len(keys))
	sizes := make([]uint64, len(keys))
	_, torn, err := Scan(f, func(off int64, entry []byte) error {
		text, lines := sigLines(entry)
		var cp checkpoint.Checkpoint
		parsed := false
		for i, k := range keys {
			for _, l := range lines {
				if !names(l, k) {
					continue
				}
				if !parsed {
					var err error
					if cp, err = checkpoint.ParseBody(string(text)); err != nil {
						return fmt.Errorf("%w: entry at offset %d: %v", ErrBadLog, off, err)
					}
					parsed = true
				}
				fd := &found[i]
				if fd.Count == 0 || cp.Size < fd.Smallest {
					fd.Smallest = cp.Size
				}
				fd.Count++
				if newest[i] == nil || cp.Size >= sizes[i] {
					newest[i], sizes[i], offs[i] = append(newest[i][:0], entry...), cp.Size, off
				}
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if torn {
		return nil, fmt.Errorf("%w: torn last entry (coconutd cuts it at its next start)", ErrBadLog)
	}
	origin := checkpoint.HostOrigin(pub)
	hostV, err := checkpoint.NewVerifier(origin, pub)
	if err != nil {
		return nil, err
	}
	for i, k := range keys {
		if newest[i] == nil {
			continue
		}
		c, err := Verify(newest[i], origin, hostV, k)
		if err != nil {
			return nil, fmt.Errorf("cosignature log entry at offset %d (size %d) names witness %s: %w", offs[i], sizes[i], k.Name, err)
		}
		c.Offset = offs[i]
		found[i].Newest = c
	}
	return found, nil
}

// ErrBadCosignature means a cosigned checkpoint does not verify.
var ErrBadCosignature = errors.New("cosignature does not verify")

// Verify opens a cosigned checkpoint note: the host's signature (hostV,
// for origin) and the cosignature of k must both verify.
func Verify(cosigned []byte, origin string, hostV note.Verifier, k Key) (*Cosigned, error) {
	n, err := note.Open(cosigned, note.VerifierList(hostV, k.Verifier))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCosignature, err)
	}
	var host, wit *note.Signature
	for i := range n.Sigs {
		s := &n.Sigs[i]
		switch {
		case s.Name == hostV.Name() && s.Hash == hostV.KeyHash():
			host = s
		case s.Name == k.Name && s.Hash == k.Verifier.KeyHash():
			wit = s
		}
	}
	if host == nil {
		return nil, fmt.Errorf("%w: no valid signature by the host key %s", ErrBadCosignature, origin)
	}
	if wit == nil {
		return nil, fmt.Errorf("%w: no valid cosignature by witness %s", ErrBadCosignature, k.Name)
	}
	cp, err := checkpoint.ParseBody(n.Text)
	if err != nil {
		return nil, err
	}
	if cp.Origin != origin {
		return nil, fmt.Errorf("%w: origin %q, want %q", ErrBadCosignature, cp.Origin, origin)
	}
	c := &Cosigned{Checkpoint: cp}
	if t, err := fnote.CoSigV1Timestamp(*wit); err == nil {
		c.Time = t.UTC()
	}
	return c, nil
}
