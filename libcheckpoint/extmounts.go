package libcheckpoint

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/mountinfo"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"

	"github.com/runcr/runcr/libcheckpoint/image"
)

// ErrUnsafeMount: a mount CRIU can't be told about safely. CRIU before
// 4.3.1 keeps an external mount as the unescaped string "mnt[KEY]:VAL",
// and libcontainer names a bind mount by its destination resolved inside
// the rootfs, which the container itself can change (CVE-2026-119101,
// CRIU's CVE-2026-119614): a key holding "]:" makes CRIU restore a host
// directory of the attacker's choosing, an empty key turns on CRIU's
// autodetection of external mounts.
var ErrUnsafeMount = errors.New("unsafe mount for CRIU")

// criuExtMountFixed is the first CRIU that escapes external mount keys.
const criuExtMountFixed = 40301

// criuMountKey is the name libcontainer (criuMountDest in runc v1.4.4)
// gives CRIU for a mount at dest: dest resolved inside rootfs, symlinks
// included, as a path from the rootfs.
func criuMountKey(rootfs, dest string) string {
	key := strings.TrimPrefix(dest, rootfs)
	if resolved, err := securejoin.SecureJoin(rootfs, key); err == nil {
		key = resolved[len(rootfs):]
	}
	return key
}

// unsafeMountKey says why CRIU must not get key, or "".
func unsafeMountKey(key string) string {
	switch {
	case key == "":
		return "it resolves to the container's root directory"
	case strings.Contains(key, "]:"):
		return `it contains "]:"`
	}
	return ""
}

// checkCriuMountKeys refuses a config whose bind mounts or device nodes
// would reach CRIU under an unsafe name, before anything is frozen or
// restored; libcontainer v1.4.4 refuses them too, but later and without
// saying which mount or why.
func checkCriuMountKeys(cfg *configs.Config, op string) error {
	check := func(what, dest string) error {
		key := criuMountKey(cfg.Rootfs, dest)
		if why := unsafeMountKey(key); why != "" {
			return fmt.Errorf("%w: %s: invalid external mount destination %q: the %s at %s resolves to it inside the rootfs %s, and %s; CRIU would be given the wrong mount (CVE-2026-119101). A directory on the way is a symlink, planted in the image or by the container: remove it, or fix config.json",
				ErrUnsafeMount, op, key, what, dest, cfg.Rootfs, why)
		}
		return nil
	}
	for _, m := range cfg.Mounts {
		if m.Device != "bind" {
			continue
		}
		if err := check("bind mount", m.Destination); err != nil {
			return err
		}
	}
	for _, d := range cfg.Devices {
		if d.Path == "" {
			continue // only a cgroup rule, no node
		}
		if err := check("device node", d.Path); err != nil {
			return err
		}
	}
	return nil
}

// checkMountsUnmoved refuses to dump a container (frozen, so nothing can
// change under the check) in which a bind mount's destination no longer
// leads to that mount: a directory on the way was renamed and replaced by
// a symlink after the container started. runc resolves symlinks when it
// mounts, so a destination reached through a symlink the image already had
// is still a mount point; one that isn't would be given to CRIU under the
// name of whatever the symlink now points at.
func checkMountsUnmoved(cfg *configs.Config, initPid int, op string) error {
	var redirected []*configs.Mount
	var keys []string
	for _, m := range cfg.Mounts {
		if m.Device != "bind" {
			continue
		}
		key := criuMountKey(cfg.Rootfs, m.Destination)
		if key != path.Clean("/"+m.Destination) {
			redirected = append(redirected, m)
			keys = append(keys, key)
		}
	}
	if len(redirected) == 0 {
		return nil
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/mountinfo", initPid))
	if err != nil {
		return fmt.Errorf("%s: reading the container's mounts: %w", op, err)
	}
	defer f.Close()
	infos, err := mountinfo.GetMountsFromReader(f, nil)
	if err != nil {
		return fmt.Errorf("%s: reading the container's mounts: %w", op, err)
	}
	points := make(map[string]bool, len(infos))
	for _, mi := range infos {
		points[mi.Mountpoint] = true
	}
	for i, m := range redirected {
		if !points[keys[i]] {
			return fmt.Errorf("%w: %s: invalid external mount destination %q: the bind mount at %s (from %s) now resolves to it inside the container, and it is not a mount point there: a directory on the way was replaced by a symlink after the container started, and CRIU would be given the wrong mount (CVE-2026-119101); the container was left as it was",
				ErrUnsafeMount, op, keys[i], m.Destination, m.Source)
		}
	}
	return nil
}

// checkImageMountKeys refuses images whose mount tables name an external
// mount unsafely: CRIU looks each key up in the list libcontainer gives it,
// and a CRIU without the fix for CVE-2026-119614 parses that list by "]:".
func checkImageMountKeys(dir string) error {
	keys, err := image.ExternalMountKeys(dir)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if why := unsafeMountKey(k.Key); why != "" {
			return fmt.Errorf("%w: --image-path: %s: invalid external mount destination %q (the mount at %q), %s; refusing to hand it to CRIU (CVE-2026-119614): these images were not written by a CRIU dump of a runc container",
				ErrUnsafeMount, k.Image, k.Key, k.Mountpoint, why)
		}
	}
	return nil
}

// checkMountsForCriu runs both checks on a container about to be dumped;
// frozen, it can't move a mount between the check and CRIU.
func checkMountsForCriu(c *libcontainer.Container, op string) error {
	cfg := c.Config()
	if err := checkCriuMountKeys(&cfg, op); err != nil {
		return err
	}
	st, err := c.State()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return checkMountsUnmoved(&cfg, st.InitProcessPid, op)
}
