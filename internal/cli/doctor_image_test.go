package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDoctorImageFirstboot(t *testing.T) {
	dir := t.TempDir()
	oldMarker, oldErr := imageMarker, imageFirstbootErr
	t.Cleanup(func() { imageMarker, imageFirstbootErr = oldMarker, oldErr })
	imageMarker, imageFirstbootErr = filepath.Join(dir, "build"), filepath.Join(dir, "firstboot.error")

	if r := imageFirstboot(context.Background(), nil); !r.Skip {
		t.Fatalf("not an image: want the check left out, got %+v", r)
	}
	if err := os.WriteFile(imageMarker, []byte("KERNEL=6.12\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := imageFirstboot(context.Background(), nil); !r.OK || r.Skip {
		t.Fatalf("image, first boot done: got %+v", r)
	}
	msg := `unknown preseed key "colour" from the kernel command line`
	if err := os.WriteFile(imageFirstbootErr, []byte(msg+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := imageFirstboot(context.Background(), nil)
	if r.OK || !strings.Contains(r.Detail, msg) || !strings.Contains(r.Fix, "coconut init") {
		t.Fatalf("image, first boot refused: got %+v", r)
	}
}
