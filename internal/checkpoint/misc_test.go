package checkpoint

import (
	"crypto/ed25519"
	"encoding/json"
	"strconv"
)

type ed25519PublicKey = ed25519.PublicKey

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

func clone(p *Proof) *Proof {
	b, _ := json.Marshal(p)
	var q Proof
	if err := json.Unmarshal(b, &q); err != nil {
		panic(err)
	}
	return &q
}
