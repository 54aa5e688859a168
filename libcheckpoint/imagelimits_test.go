package libcheckpoint

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runcr/runcr/libcheckpoint/image"
	"github.com/runcr/runcr/libcheckpoint/internal/testutil"
)

// hugeImage makes dir/name a sparse file of size bytes that starts with
// CRIU's magics for an image of type magic (the rest reads as zeros:
// empty entries, as many as the file has words).
func hugeImage(t *testing.T, dir, name, magic string, size int64) {
	t.Helper()
	m := image.Magics().ByName
	head := binary.LittleEndian.AppendUint32(nil, uint32(m["IMG_COMMON"]))
	head = binary.LittleEndian.AppendUint32(head, uint32(m[magic]))
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, head, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// Each measured pathological image of the issue, as inspect, restore's
// checks and the cgroup/mount readers meet it: refused fast, in little
// memory, naming the file and the limit.
func TestPathologicalImagesRefusedFast(t *testing.T) {
	if os.Getpagesize() != testPage {
		t.Skipf("the crafted images assume %d-byte pages", testPage)
	}
	cases := []struct {
		name, file, magic string
		size              int64
		want              string
	}{
		{"pstree of 512 MiB zeros", "pstree.img", "PSTREE", 512 << 20, "more than the 16777216 a PSTREE image may have"},
		{"pstree of 15 MiB zeros (within the size limit)", "pstree.img", "PSTREE", 15 << 20, "more than 1048576 entries"},
		{"sparse 3 GiB pagemap", "pagemap-1.img", "PAGEMAP", 3 << 30, "a PAGEMAP image may have"},
		{"4 GiB core", "core-1.img", "CORE", 4 << 30, "a CORE image may have"},
		{"core of 1 MiB zeros", "core-1.img", "CORE", 1 << 20, "more than 16 entries"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			craftCheckpoint(t, dir, "/data/log.txt")
			hugeImage(t, dir, tc.file, tc.magic, tc.size)
			err := testutil.Bounded(t, "inspect", func() error { _, err := Inspect(dir); return err })
			if !errors.Is(err, ErrBadImage) || !strings.Contains(err.Error(), filepath.Join(dir, tc.file)) ||
				!strings.Contains(err.Error(), "runcr's limit") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("inspect: got %v, want ErrBadImage naming %s and %q", err, tc.file, tc.want)
			}
			if tc.magic != "PAGEMAP" {
				return
			}
			err = testutil.Bounded(t, "restore's pages check", func() error { return image.CheckPagesComplete(dir) })
			if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), tc.file) || !strings.Contains(err.Error(), "runcr's limit") {
				t.Fatalf("checkPagesComplete: got %v, want a refusal naming %s and the limit", err, tc.file)
			}
		})
	}
}

func TestPathologicalCgroupAndMountImages(t *testing.T) {
	dir := t.TempDir()
	hugeImage(t, dir, "cgroup.img", "CGROUP", 4<<30)
	err := testutil.Bounded(t, "cgroup.img", func() error { _, err := image.FreezerStates(dir); return err })
	if !errors.Is(err, ErrBadImage) || !strings.Contains(err.Error(), "cgroup.img") || !strings.Contains(err.Error(), "runcr's limit") {
		t.Fatalf("cgroup.img: got %v", err)
	}
	hugeImage(t, dir, "mountpoints-12.img", "MNTS", 1<<40)
	err = testutil.Bounded(t, "mountpoints", func() error { return checkImageMountKeys(dir) })
	if !errors.Is(err, ErrBadImage) || !strings.Contains(err.Error(), "mountpoints-12.img") || !strings.Contains(err.Error(), "runcr's limit") {
		t.Fatalf("mountpoints: got %v", err)
	}
}

// A FIFO (or device) under an image's or the manifest's name is refused
// at once instead of blocking the reader.
func TestImageFIFORefused(t *testing.T) {
	dir := t.TempDir()
	craftCheckpoint(t, dir, "/data/log.txt")
	m := &Manifest{Version: ManifestVersion, State: ManifestComplete, Created: time.Now().UTC()}
	var err error
	if m.Images, err = DigestImages(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"pstree.img", "pages-1.img"} {
		os.Remove(filepath.Join(dir, name))
		if err := syscall.Mkfifo(filepath.Join(dir, name), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	err = testutil.Bounded(t, "inspect", func() error { _, err := Inspect(dir); return err })
	if err == nil || !strings.Contains(err.Error(), "pstree.img") || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("inspect: %v", err)
	}
	err = testutil.Bounded(t, "verify", func() error { return VerifyImages(dir, m) })
	if !errors.Is(err, ErrDamagedImage) || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("verify: %v", err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, ManifestFile), 0o600); err != nil {
		t.Fatal(err)
	}
	err = testutil.Bounded(t, "manifest", func() error { _, err := ReadManifest(dir); return err })
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("manifest: %v", err)
	}
}
