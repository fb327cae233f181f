package cli

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
)

// On the Coconut image (image/, docs/image.md) the first boot runs
// coconut init from a preseed; what it refused stays in firstboot.error
// for doctor to say, with the fix. Elsewhere the check does not apply.
var (
	imageMarker       = "/etc/coconut-image/build"
	imageFirstbootErr = "/var/lib/coconut-image/firstboot.error"
)

func init() {
	registerDoctorCheck(doctorCheck{Group: groupDaemon, Name: "image first boot", Matters: true, Run: imageFirstboot})
}

func imageFirstboot(context.Context, *doctorEnv) checkResult {
	if _, err := os.Stat(imageMarker); err != nil {
		return checkResult{Skip: true}
	}
	b, err := os.ReadFile(imageFirstbootErr)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return checkResult{OK: true, Detail: "coconut init ran at first boot"}
	case err != nil:
		return checkResult{OK: false, Detail: "cannot read " + imageFirstbootErr + ": " + err.Error(), Fix: "run doctor as root"}
	}
	return checkResult{OK: false, Detail: "first boot refused: " + strings.TrimSpace(string(b)),
		Fix: "fix coconut-preseed on the boot partition (or coconut.KEY=VALUE in its syslinux.cfg) and run: sudo coconut init --yes --profile P --user NAME, then rm " + imageFirstbootErr}
}
