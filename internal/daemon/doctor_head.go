package daemon

import "github.com/coconut-os/coconut/api"

// headInfo adds the chain head's hash and the latest signed checkpoint to
// doctor (issue 13: the header of coconut-tail).
func (d *Daemon) headInfo(doc *api.Doctor) {
	seq, hash := d.chain.Head()
	if seq == doc.ChainHead {
		doc.ChainHeadHash = hash
	}
	if d.ckpt != nil {
		cp, _ := d.ckpt.Latest()
		doc.Checkpoint = cp.Size
	}
}
