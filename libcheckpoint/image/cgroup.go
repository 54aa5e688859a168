package image

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/checkpoint-restore/go-criu/v7/crit"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/cgroup"
	"google.golang.org/protobuf/proto"

	"github.com/runcr/runcr/libcheckpoint/internal/fsutil"
)

// FreezerStates are the freezer.state values CRIU recorded for the
// cgroups in dir's cgroup.img; none when there is no cgroup.img
// (--manage-cgroups-mode ignore) or no freezer state (cgroup v2).
func FreezerStates(dir string) ([]string, error) {
	img, err := decodeCgroupImage(dir)
	if err != nil || img == nil {
		return nil, err
	}
	var states []string
	for _, p := range freezerStates(img) {
		states = append(states, p.GetValue())
	}
	return states, nil
}

// RewriteFreezerState sets every freezer.state in dir's cgroup.img to
// state, replacing the file atomically; images without one are left as
// they are.
func RewriteFreezerState(dir, state string) error {
	img, err := decodeCgroupImage(dir)
	if err != nil || img == nil {
		return err
	}
	changed := 0
	for _, p := range freezerStates(img) {
		if p.GetValue() != state {
			p.Value = proto.String(state)
			changed++
		}
	}
	if changed == 0 {
		return nil
	}
	path := filepath.Join(dir, "cgroup.img")
	if err := fsutil.ReplaceFile(path, 0o600, func(f *os.File) error { return crit.New(nil, f, "", false, false).Encode(img) }); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// decodeCgroupImage decodes dir's cgroup.img, or returns nil if there is
// none.
func decodeCgroupImage(dir string) (*crit.CriuImage, error) {
	img, err := decodeCriuImage(dir, "cgroup.img", "CGROUP", &cgroup.CgroupEntry{})
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return img, err
}

// freezerStates are the freezer.state properties of every cgroup in img.
func freezerStates(img *crit.CriuImage) []*cgroup.CgroupPropEntry {
	var props []*cgroup.CgroupPropEntry
	var walk func(dirs []*cgroup.CgroupDirEntry)
	walk = func(dirs []*cgroup.CgroupDirEntry) {
		for _, d := range dirs {
			for _, p := range d.GetProperties() {
				if p.GetName() == "freezer.state" {
					props = append(props, p)
				}
			}
			walk(d.GetChildren())
		}
	}
	for _, e := range img.Entries {
		if entry, ok := e.Message.(*cgroup.CgroupEntry); ok {
			for _, c := range entry.GetControllers() {
				walk(c.GetDirs())
			}
		}
	}
	return props
}
