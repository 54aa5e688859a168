package image

import (
	"path/filepath"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/mnt"
)

// MountKey is an external mount as CRIU recorded it in a mount table.
type MountKey struct {
	// Image is the mountpoints-*.img file's path.
	Image string
	// Key is the external mount's key; Mountpoint where it is mounted.
	Key, Mountpoint string
}

// ExternalMountKeys lists the external mounts of every mount table
// (mountpoints-*.img) in dir.
func ExternalMountKeys(dir string) ([]MountKey, error) {
	names, err := filepath.Glob(filepath.Join(dir, "mountpoints-*.img"))
	if err != nil {
		return nil, err
	}
	var keys []MountKey
	for _, p := range names {
		img, err := decodeCriuImage(dir, filepath.Base(p), "MNTS", &mnt.MntEntry{})
		if err != nil {
			return nil, err
		}
		for _, e := range img.Entries {
			me, ok := e.Message.(*mnt.MntEntry)
			if !ok || me.ExtKey == nil {
				continue
			}
			keys = append(keys, MountKey{Image: p, Key: me.GetExtKey(), Mountpoint: me.GetMountpoint()})
		}
	}
	return keys, nil
}
