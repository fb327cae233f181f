package quota

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"
)

// Scratch sizes. ext4 needs a little room for its own metadata; above the
// maximum a typo (bytes vs. GiB) is more likely than a real need.
const (
	MinScratch = 1 << 20
	MaxScratch = 1 << 40
)

// CreateScratch makes the SSD tier of an agent: an ext4 image of size
// bytes at dir+".img", loop-mounted at dir, owned by uid:gid with mode
// 0700. The filesystem's size is the budget: a write past it fails with
// ENOSPC inside the agent, and nothing outside the image fills up. The
// image file is sparse; blocks are allocated as the agent writes.
func CreateScratch(dir string, size int64, uid, gid uint32) error {
	if size < MinScratch || size > MaxScratch {
		return fmt.Errorf("%w: ssd %d bytes: must be %d..%d", ErrInvalid, size, int64(MinScratch), int64(MaxScratch))
	}
	img := dir + ".img"
	f, err := os.OpenFile(img, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create scratch image: %w", err)
	}
	err = f.Truncate(size)
	f.Close()
	if err != nil {
		os.Remove(img)
		return fmt.Errorf("size scratch image: %w", err)
	}
	fail := func(err error) error {
		RemoveScratch(dir)
		return err
	}
	// No journal and no reserved blocks: the agent gets (nearly) all of
	// its budget, and the image is thrown away with the agent anyway.
	mkfs := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal",
		"-E", fmt.Sprintf("root_owner=%d:%d", uid, gid), img)
	if out, err := mkfs.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("mkfs.ext4 scratch: %w: %s", err, strings.TrimSpace(string(out))))
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fail(fmt.Errorf("create scratch mount point: %w", err))
	}
	mount := exec.Command("mount", "-t", "ext4", "-o", "loop,nosuid,nodev", img, dir)
	if out, err := mount.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("mount scratch: %w: %s", err, strings.TrimSpace(string(out))))
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fail(fmt.Errorf("scratch mode: %w", err))
	}
	// lost+found is root's: the agent does not need it.
	os.Remove(dir + "/lost+found")
	return nil
}

// ScratchUsage reports bytes used and the filesystem's usable size.
func ScratchUsage(dir string) (used, size int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs scratch: %w", err)
	}
	bs := int64(st.Bsize)
	return (int64(st.Blocks) - int64(st.Bfree)) * bs, int64(st.Blocks) * bs, nil
}

// RemoveScratch unmounts the scratch area (the loop device goes with it:
// mount sets autoclear) and deletes the mount point and the image. Absent
// parts are not an error, so it can run on every agent end.
func RemoveScratch(dir string) error {
	var errs []error
	if err := unix.Unmount(dir, 0); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		// Something still holds it open: detach now, the kernel frees
		// it when the last user goes.
		if err2 := unix.Unmount(dir, unix.MNT_DETACH); err2 != nil {
			errs = append(errs, fmt.Errorf("unmount scratch %s: %w", dir, err))
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove scratch %s: %w", dir, err))
	}
	if err := os.Remove(dir + ".img"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove scratch image: %w", err))
	}
	return errors.Join(errs...)
}
