package notify

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"github.com/coconut-os/coconut/api"
)

// summary is the notification's title: "nosy-reviewer (AID 31) was denied".
func summary(name string, n *note) string {
	who := fmt.Sprintf("AID %d", n.aid)
	if name != "" {
		who = fmt.Sprintf("%s (AID %d)", name, n.aid)
	}
	if n.count() > 1 {
		return who + " was denied again"
	}
	return who + " was denied"
}

// body says what was refused: "fs.read ~/.ssh/id_ed25519 — ECAPABILITY",
// after "12 more denies, the latest:" for a summary. Notification servers
// may read markup, so <, > and & are escaped.
func body(n *note, home string) string {
	r := n.latest
	what := r.Cap
	if what == "" {
		what = r.Type
	}
	obj := r.Object
	if home != "" && home != "/" && (obj == home || strings.HasPrefix(obj, home+"/")) {
		obj = "~" + obj[len(home):]
	}
	line := strings.TrimSpace(what + " " + obj)
	if e := errnoName(r.Errno); e != "" {
		line += " — " + e
	}
	if k := n.count(); k > 1 {
		line = fmt.Sprintf("%d more denies, the latest: %s", k, line)
	}
	return escapeMarkup(line)
}

func errnoName(n int) string {
	switch {
	case n == 0:
		return ""
	case n == int(api.ECapability):
		return "ECAPABILITY"
	}
	if s := syscallName(syscall.Errno(n)); s != "" {
		return s
	}
	return "errno " + strconv.Itoa(n)
}

// syscallName is the symbolic name of the errnos a deny carries.
func syscallName(e syscall.Errno) string {
	switch e {
	case syscall.EPERM:
		return "EPERM"
	case syscall.EACCES:
		return "EACCES"
	case syscall.ECONNREFUSED:
		return "ECONNREFUSED"
	case syscall.ENETUNREACH:
		return "ENETUNREACH"
	case syscall.EDQUOT:
		return "EDQUOT"
	case syscall.ENOMEM:
		return "ENOMEM"
	}
	return ""
}

var markup = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func escapeMarkup(s string) string { return markup.Replace(s) }

// Hints carried by every notification, so a notification server (and a
// test) can tell which rows it covers: the agent, the newest row's seq, the
// oldest's, and how many denies it stands for.
const (
	hintAID   = "x-coconut-aid"
	hintSeq   = "x-coconut-seq"
	hintFirst = "x-coconut-first"
	hintCount = "x-coconut-count"
)

// count is how many denies the note covers: aggregate rows (issue 19)
// stand for many.
func (n *note) count() uint64 { return max(n.denies, uint64(len(n.seqs))) }
