package libcheckpoint

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/runcr/runcr/libcheckpoint/archive"
	"github.com/runcr/runcr/libcheckpoint/internal/fsutil"
)

// Checkpoint is a checkpoint opened for reading (inspect, memory search,
// diff): an image directory, or an archive unpacked with the checks of
// restore --import into a private temporary directory that Close
// removes.
type Checkpoint struct {
	// Path is what was opened, as given.
	Path string
	// Dir is the image directory: Path itself, or the unpacked images.
	Dir string
	// Inspection is what the checkpoint holds.
	Inspection *Inspection
	// tmp is the temporary directory of an unpacked archive, "" for a
	// directory; meta its engine metadata directory.
	tmp, meta string
}

// Close removes what opening an archive unpacked. The Inspection stays
// valid.
func (c *Checkpoint) Close() {
	if c.tmp != "" {
		_ = os.RemoveAll(c.tmp)
		c.tmp = ""
	}
}

// Rename gives err the names the user knows: the archive's instead of
// the temporary directory's.
func (c *Checkpoint) Rename(err error) error {
	if c.tmp == "" || err == nil {
		return err
	}
	return renameInError(err, c.Dir, c.Path+":"+engineCheckpointDir)
}

// OpenCheckpoint opens p: a checkpoint image directory, or an archive
// (runcr's, Podman's, CRI-O's or containerd's), and inspects it. For an
// engine archive the inspection has Engine set. Close it after use.
func OpenCheckpoint(p string, opts InspectOptions) (_ *Checkpoint, err error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w; give a checkpoint image directory (runcr checkpoint --image-path) or archive (runcr checkpoint --export, podman container checkpoint --export, crictl checkpoint --export)", p, fsutil.UnwrapPathError(err))
	}
	if fi.IsDir() {
		var v *VerifyReport
		if opts.Verify {
			abs, err := filepath.Abs(p)
			if err != nil {
				return nil, err
			}
			if v, err = verifyDir(abs); err != nil {
				return nil, err
			}
		}
		ins, err := Inspect(p)
		if err != nil {
			return nil, err
		}
		ins.Verified = v
		return &Checkpoint{Path: p, Dir: ins.Dir, Inspection: ins}, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	layout, err := DetectArchiveLayout(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "runcr-inspect-")
	if err != nil {
		return nil, err
	}
	images, meta := filepath.Join(tmp, "images"), filepath.Join(tmp, "meta")
	c := &Checkpoint{Path: p, Dir: images, tmp: tmp, meta: meta}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	for _, d := range []string{images, meta} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, err
		}
	}
	limit, _, err := archive.Ceiling(tmp, os.Getenv("RUNCR_IMPORT_LIMIT"))
	if err != nil {
		return nil, err
	}
	var ea *engineArchive
	if layout == LayoutEngine {
		ea, err = importEngineArchive(f, images, meta, limit)
	} else {
		_, err = archive.ImportWithin(f, images, limit)
	}
	if err != nil {
		return nil, c.Rename(fmt.Errorf("%s: %w", p, err))
	}
	var v *VerifyReport
	if opts.Verify {
		if v, err = verifyDir(images); err != nil {
			return nil, c.Rename(fmt.Errorf("%s: %w", p, err))
		}
	}
	ins, err := Inspect(images)
	if err != nil {
		return nil, c.Rename(fmt.Errorf("%s: %w", p, err))
	}
	ins.Dir = p
	ins.Verified = v
	if ea != nil {
		var warnings []string
		ins.Engine, warnings = engineInfo(ea, images, meta, ins.Manifest)
		if ins.Dump == nil {
			// Podman and containerd keep CRIU's statistics next to
			// checkpoint/, not in it.
			if st, err := ReadDumpStats(meta); err == nil {
				ins.Dump = st.Report()
			} else if !errors.Is(err, os.ErrNotExist) {
				warnings = append(warnings, fmt.Sprintf("%s not read: %v", engineStatsDump, err))
			}
		}
		ins.Warnings = append(ins.Warnings, warnings...)
	}
	for i, w := range ins.Warnings {
		ins.Warnings[i] = strings.ReplaceAll(strings.ReplaceAll(w, images, p+":"+engineCheckpointDir), meta, p+":")
	}
	c.Inspection = ins
	return c, nil
}
