package center

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os/user"
	"sort"
	"strconv"
	"strings"

	"github.com/coconut-os/coconut/internal/attest"
	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/checkpoint"
	"github.com/coconut-os/coconut/internal/sign"
)

// proofStatus is what the review page says about a row's place in the
// signed checkpoints, checked here with the host's public key exactly as
// `coconut audit verify --proof` checks it offline.
type proofStatus struct {
	OK         bool   `json:"ok"`
	Pending    bool   `json:"pending"` // not yet covered: checkpoints come every second
	Checkpoint uint64 `json:"checkpoint,omitempty"`
	KeyID      string `json:"key_id,omitempty"`
	Root       string `json:"root,omitempty"`
	Hashes     int    `json:"hashes"`
	Text       string `json:"text"`
}

func (c *Center) proofOf(rec audit.Record) proofStatus {
	keyID := sign.KeyID(c.cfg.HostPub)
	if c.cfg.Proofs == nil {
		return proofStatus{Text: "not provable: this daemon keeps no Merkle checkpoints"}
	}
	p, err := c.cfg.Proofs.Prove(rec.Seq, 0)
	if errors.Is(err, checkpoint.ErrNotFound) {
		cp, _ := c.cfg.Proofs.Latest()
		return proofStatus{Pending: true, Text: fmt.Sprintf("not yet in a signed checkpoint (the latest, signed by %s, covers rows 1–%d); one is signed within a second", keyID, cp.Size)}
	}
	if err != nil {
		return proofStatus{Text: "no proof: " + err.Error()}
	}
	cp, got, err := checkpoint.VerifyInclusion(p, c.cfg.HostPub)
	if err != nil {
		return proofStatus{Text: "the proof does not verify: " + err.Error()}
	}
	if got.Hash != "" && got.Hash != rec.Hash || got.Seq != rec.Seq || got.Type != rec.Type || got.Object != rec.Object {
		return proofStatus{Text: "the proof verifies, but for a row that differs from the one read from the chain"}
	}
	return proofStatus{OK: true, Checkpoint: cp.Size, KeyID: keyID, Root: hex.EncodeToString(cp.Root[:]), Hashes: len(p.Hashes),
		Text: fmt.Sprintf("in checkpoint %d signed by %s (%d hashes from the row to the signed root)", cp.Size, keyID, len(p.Hashes))}
}

// chainLink is the row's place in the hash chain: its hash is BLAKE3 of
// its predecessor's and its own canonical bytes.
type chainLink struct {
	Prev     string // hex head before the row
	PrevSeq  uint64
	OK       bool
	Text     string
	Computed string
}

func (c *Center) chainLink(rec audit.Record) chainLink {
	l := chainLink{PrevSeq: rec.Seq - 1}
	prev := audit.Genesis
	if rec.Seq > 1 {
		recs, err := c.cfg.Chain.Query(audit.Query{AfterSeq: rec.Seq - 2, Limit: 1})
		if err != nil || len(recs) == 0 || recs[0].Seq != rec.Seq-1 {
			l.Text = "the predecessor could not be read"
			return l
		}
		b, err := hex.DecodeString(recs[0].Hash)
		if err != nil || len(b) != audit.HeadSize {
			l.Text = "the predecessor's hash is malformed"
			return l
		}
		copy(prev[:], b)
	}
	l.Prev = hex.EncodeToString(prev[:])
	body, err := audit.RecordBytes(rec)
	if err != nil {
		l.Text = "the row is not canonical: " + err.Error()
		return l
	}
	h := audit.NextHead(prev, body)
	l.Computed = hex.EncodeToString(h[:])
	if l.Computed != rec.Hash {
		l.Text = "BROKEN: BLAKE3(predecessor ‖ row) is " + l.Computed + ", the chain says " + rec.Hash
		return l
	}
	l.OK = true
	l.Text = "BLAKE3(predecessor ‖ row) matches the row's hash"
	return l
}

// missingCap is the capability a deny row says was missing, in the syntax
// grant takes ("fs.read:/home/u/.ssh/id_ed25519"); "" when the row names
// none.
func missingCap(rec audit.Record) string {
	if rec.Result != audit.ResultDeny || rec.Cap == "" {
		return ""
	}
	if strings.Contains(rec.Cap, ":") || rec.Object == "" {
		return rec.Cap
	}
	return rec.Cap + ":" + rec.Object
}

// detailPair is one key of a row's detail map, sorted for display.
type detailPair struct{ K, V string }

func details(d map[string]string) []detailPair {
	out := make([]detailPair, 0, len(d))
	for k, v := range d {
		out = append(out, detailPair{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].K < out[j].K })
	return out
}

// attestView is the attestation as verified server-side.
type attestView struct {
	OK     bool
	Text   string
	Claims *attest.Claims
	HostID string
}

func (c *Center) attestation(v *view, aid uint64) attestView {
	a, err := c.cfg.Agents.Attestation(v.caller, aid)
	if err != nil {
		return attestView{Text: "no attestation: " + err.Error()}
	}
	cl, err := attest.Verify(a.Envelope, c.cfg.HostPub, c.cfg.Trust)
	if err != nil {
		return attestView{Text: "does not verify: " + err.Error()}
	}
	return attestView{OK: true, Claims: cl, Text: "verified: signed by host key " + cl.HostKeyID}
}

// userName is uid's login name, or the number.
func userName(uid uint32) string {
	s := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(s); err == nil {
		return u.Username
	}
	return "uid " + s
}
