package libcheckpoint

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/mnt"
	"github.com/opencontainers/cgroups/devices/config"
	"github.com/opencontainers/runc/libcontainer/configs"
	"google.golang.org/protobuf/proto"
)

// rootfsWithRenamedMountParent lays out what runc's CVE-2026-119101 test
// does inside a container: the mount's parent renamed, and a new parent
// whose "data" is a symlink to target.
func rootfsWithRenamedMountParent(t *testing.T, target string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "b", "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	if target != "" {
		if err := os.Symlink(target, filepath.Join(root, "a", "data")); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestCheckCriuMountKeys(t *testing.T) {
	for _, tc := range []struct {
		name, target, wantKey string
		refused               bool
	}{
		{"plain directory", "", "/a/data", false},
		{"symlink to a path holding ]:", "/b/data]:/name", "/b/data]:/name", true},
		{"symlink to the root", "/", "", true},
		{"symlink to a relative path holding ]:", "../x]:y", "/x]:y", true},
		{"symlink to an ordinary directory", "/b/data", "/b/data", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := rootfsWithRenamedMountParent(t, tc.target)
			if got := criuMountKey(root, "/a/data"); got != tc.wantKey {
				t.Errorf("criuMountKey = %q, want %q", got, tc.wantKey)
			}
			cfg := &configs.Config{Rootfs: root, Mounts: []*configs.Mount{
				{Device: "tmpfs", Destination: "/a/data"}, // not external: never checked
				{Device: "bind", Source: "/srv/data", Destination: "/a/data"},
			}}
			err := checkCriuMountKeys(cfg, "checkpoint of container \"c\"")
			if tc.refused != (err != nil) {
				t.Fatalf("refused = %v, want %v (err %v)", err != nil, tc.refused, err)
			}
			if err == nil {
				return
			}
			msg := err.Error()
			for _, want := range []string{"invalid external mount destination", "/a/data", "CVE-2026-119101", `checkpoint of container "c"`} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q lacks %q", msg, want)
				}
			}
			if !errors.Is(err, ErrUnsafeMount) {
				t.Errorf("error is not ErrUnsafeMount: %v", err)
			}
		})
	}
}

func TestCheckCriuMountKeysDevices(t *testing.T) {
	root := rootfsWithRenamedMountParent(t, "/")
	cfg := &configs.Config{Rootfs: root, Devices: []*config.Device{
		{Path: ""}, // a cgroup rule only: no node, no mount
		{Path: "/a/data"},
	}}
	err := checkCriuMountKeys(cfg, "restore")
	if err == nil || !strings.Contains(err.Error(), "device node at /a/data") {
		t.Fatalf("device node through a symlink to / not refused: %v", err)
	}
}

// The dump-time check reads the init's mount table: a destination reached
// through a symlink must be a mount point, as runc made it at start.
func TestCheckMountsUnmoved(t *testing.T) {
	pid := os.Getpid()
	// A symlink to "/" puts the destination at /proc, a mount point of
	// this process's own table: what runc mounts through an image's
	// symlink at start looks like this.
	root := rootfsWithRenamedMountParent(t, "")
	if err := os.Symlink("/", filepath.Join(root, "a", "via")); err != nil {
		t.Fatal(err)
	}
	ok := &configs.Config{Rootfs: root, Mounts: []*configs.Mount{
		{Device: "bind", Source: "/x", Destination: "/a/data"},     // not redirected
		{Device: "bind", Source: "/y", Destination: "/a/via/proc"}, // redirected to a mount point
	}}
	if err := checkMountsUnmoved(ok, pid, "checkpoint"); err != nil {
		t.Fatalf("refused a mount reached through a symlink to a mount point: %v", err)
	}
	// Redirected to a directory that is no mount point: the mount was
	// moved away under the container's feet.
	moved := rootfsWithRenamedMountParent(t, "/b/data")
	cfg := &configs.Config{Rootfs: moved, Mounts: []*configs.Mount{{Device: "bind", Source: "/srv", Destination: "/a/data"}}}
	err := checkMountsUnmoved(cfg, pid, "checkpoint of container \"c\"")
	if err == nil || !errors.Is(err, ErrUnsafeMount) || !strings.Contains(err.Error(), `"/b/data"`) || !strings.Contains(err.Error(), "not a mount point") {
		t.Fatalf("moved mount not refused clearly: %v", err)
	}
}

func TestCheckImageMountKeys(t *testing.T) {
	entry := func(mp, key string) proto.Message {
		e := &mnt.MntEntry{
			Fstype: proto.Uint32(1), MntId: proto.Uint32(1), RootDev: proto.Uint32(1),
			ParentMntId: proto.Uint32(1), Flags: proto.Uint32(0), Root: proto.String("/"),
			Mountpoint: proto.String(mp), Source: proto.String("none"), Options: proto.String(""),
		}
		if key != "\x00" {
			e.ExtKey = proto.String(key)
		}
		return e
	}
	for _, tc := range []struct {
		name    string
		key     string
		refused bool
	}{
		{"no external mount", "\x00", false},
		{"ordinary key", "/data", false},
		{"key holding ]:", "/data]:/etc", true},
		{"empty key", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeImage(t, dir, "mountpoints-12.img", "MNTS", entry("/", "\x00"), entry("/data", tc.key))
			err := checkImageMountKeys(dir)
			if tc.refused != (err != nil) {
				t.Fatalf("refused = %v, want %v (err %v)", err != nil, tc.refused, err)
			}
			if err != nil && (!errors.Is(err, ErrUnsafeMount) || !strings.Contains(err.Error(), "mountpoints-12.img") || !strings.Contains(err.Error(), "CVE-2026-119614")) {
				t.Fatalf("unclear refusal: %v", err)
			}
		})
	}
	// A damaged table is refused as a bad image, not skipped.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mountpoints-1.img"), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkImageMountKeys(dir); !errors.Is(err, ErrBadImage) {
		t.Fatalf("damaged mountpoints image: %v", err)
	}
}

func TestCriuAdvisories(t *testing.T) {
	if a := criuAdvisories(40201); len(a) != 1 || a[0].ID != "CVE-2026-119614" || a[0].FixedIn != "4.3.1" || a[0].Installed != "4.2.1" {
		t.Fatalf("CRIU 4.2.1: %+v", a)
	}
	for _, v := range []int{0, 40301, 40400} {
		if a := criuAdvisories(v); a != nil {
			t.Errorf("CRIU %d: unexpected advisories %+v", v, a)
		}
	}
}
