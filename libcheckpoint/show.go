package libcheckpoint

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/runcr/runcr/libcheckpoint/internal/fsutil"
	"github.com/runcr/runcr/libcheckpoint/manifest"
)

// KubeletCheckpointDir is where the kubelet writes checkpoint archives
// (the checkpoint API of KEP-2008).
const KubeletCheckpointDir = "/var/lib/kubelet/checkpoints"

// CheckpointSummary is one checkpoint found by ShowCheckpoints.
type CheckpointSummary struct {
	// Path is the image directory or archive.
	Path string `json:"path"`
	// Container names the container: the manifest's id, the engine's
	// name (else id); "" when the checkpoint doesn't say (runc).
	Container string `json:"container"`
	// Engine is what made it: "runcr", "runc" (an image directory
	// without runcr's manifest), "Podman", "CRI-O", "containerd", or
	// "engine" for an engine archive that doesn't say which.
	Engine string `json:"engine"`
	// Created is when it was made (manifest, engine archive, else the
	// time of inventory.img).
	Created time.Time `json:"created"`
	// Size is the bytes it takes: the archive's size, or the sum of the
	// directory's files.
	Size int64 `json:"size"`
	// Memory is the bytes of memory pages it holds.
	Memory uint64 `json:"memory"`
	// Complete says whether the checkpoint can be restored as far as
	// inspect can tell: every image reads and, when there is a
	// manifest, it says "complete". Error says why not.
	Complete bool   `json:"complete"`
	Error    string `json:"error,omitempty"`
}

// archiveSuffixes are the file names ShowCheckpoints takes for archives
// when it lists a directory.
var archiveSuffixes = []string{".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.zstd", ".tar.xz", ".tar.bz2"}

// ShowCheckpoints finds the checkpoints in paths and summarises each: a
// path is an image directory, an archive, or a directory whose entries
// (one level down) are image directories and archives (*.tar, *.tar.gz,
// *.tar.zst, ...). A checkpoint that can't be read is listed as not
// complete, with the error; a path that doesn't exist is an error.
func ShowCheckpoints(paths []string) ([]CheckpointSummary, error) {
	var found []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w; give a checkpoint, or a directory of checkpoints", p, fsutil.UnwrapPathError(err))
		}
		if !fi.IsDir() || isImageDir(p) {
			found = append(found, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			sub := filepath.Join(p, e.Name())
			switch {
			case e.IsDir() && isImageDir(sub):
				found = append(found, sub)
			case e.Type().IsRegular() && hasArchiveSuffix(e.Name()):
				found = append(found, sub)
			}
		}
	}
	out := make([]CheckpointSummary, 0, len(found))
	for _, p := range found {
		out = append(out, summarise(p))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

func isImageDir(p string) bool {
	fi, err := os.Stat(filepath.Join(p, "inventory.img"))
	return err == nil && fi.Mode().IsRegular()
}

func hasArchiveSuffix(name string) bool {
	for _, s := range archiveSuffixes {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// summarise inspects the checkpoint at p.
func summarise(p string) CheckpointSummary {
	s := CheckpointSummary{Path: p, Size: sizeOf(p)}
	if fi, err := os.Stat(p); err == nil && fi.IsDir() {
		s.Engine = "runc"
		if inv, err := os.Stat(filepath.Join(p, "inventory.img")); err == nil {
			s.Created = inv.ModTime()
		}
	} else if err == nil {
		s.Created = fi.ModTime()
	}
	ins, err := InspectPath(p)
	if err != nil {
		s.Error = err.Error()
		// What the manifest says is still worth showing.
		if m, merr := manifest.Read(p); merr == nil && m != nil {
			s.Engine, s.Container, s.Created = "runcr", m.ContainerID, m.Created
		}
		return s
	}
	s.Memory = ins.Memory.Bytes
	s.Complete = true
	if m := ins.Manifest; m != nil {
		s.Engine, s.Container, s.Created = "runcr", m.ContainerID, m.Created
		if m.State != manifest.StateComplete {
			s.Complete = false
			s.Error = "the manifest says the checkpoint never finished (" + m.State + ")"
		}
	}
	if e := ins.Engine; e != nil {
		s.Engine = firstOf(e.Engine, "engine")
		s.Container = firstOf(e.ContainerName, e.ContainerID, s.Container)
		if e.Checkpointed != nil {
			s.Created = *e.Checkpointed
		}
	} else if ins.Manifest == nil && s.Engine == "" {
		s.Engine = "runcr" // a runcr archive whose manifest went missing
	}
	return s
}

// sizeOf is the size of file p, or of the regular files in directory p
// (one level: CRIU's image directories are flat).
func sizeOf(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	if !fi.IsDir() {
		return fi.Size()
	}
	var n int64
	entries, err := os.ReadDir(p)
	if err != nil {
		return 0
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			n += info.Size()
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n
		}
	}
	return n
}
