package libcheckpoint

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/runcr/runcr/libcheckpoint/archive"
	"github.com/runcr/runcr/libcheckpoint/internal/fsutil"
)

// The glue between the checkpoint and restore flows and package archive:
// --export and --import, and the archives of engines.

// ExportError is a checkpoint that succeeded but whose archive could not
// be written: the images are kept in ImagePath, and nothing is lost.
type ExportError struct {
	Archive     string // the --export path (no file was left there)
	ImagePath   string // where the complete images are
	ContainerID string
	LeftRunning bool // the container still runs (--leave-running)
	Err         error
}

func (e *ExportError) Error() string {
	state := "was removed (CRIU ended its processes)"
	if e.LeftRunning {
		state = "was left running"
	}
	return fmt.Sprintf("--export %s: writing the archive failed: %v; the checkpoint itself succeeded and container %q %s, so its images are kept in %s: restore them with `runcr restore --image-path %s` (and remove the directory when done)",
		e.Archive, e.Err, e.ContainerID, state, e.ImagePath, e.ImagePath)
}

func (e *ExportError) Unwrap() error { return e.Err }

// exportFile is an --export under way: the archive is written to a
// temporary file next to its final path (created before CRIU runs, so an
// unwritable directory is refused before the container is frozen) and
// renamed into place only when complete; or, to a writer or an existing
// device or FIFO, straight through.
type exportFile struct {
	path      string
	tmp       *fsutil.PendingFile
	through   io.Writer // written straight to instead of tmp
	opened    *os.File  // the device or FIFO runcr opened for through
	tmpImages string    // a private image directory runcr made, or ""
}

// startExport prepares opts.Export, and a temporary image directory when
// opts.ImagePath is empty.
func startExport(opts *CheckpointOptions) (*exportFile, error) {
	e := &exportFile{path: opts.Export, through: opts.ExportTo}
	if e.through == nil {
		path, err := absPath(opts.Export, "")
		if err != nil {
			return nil, invalid("export", "%v", err)
		}
		target, err := resolveOutput("export", path)
		if err != nil {
			return nil, err
		}
		e.path = target.Path
		if target.Through {
			if e.opened, err = openThrough("export", path); err != nil {
				return nil, err
			}
			e.through = e.opened
		} else {
			dir := filepath.Dir(target.Path)
			if e.tmp, err = fsutil.CreatePending(target.Path, 0o600); err != nil {
				return nil, invalid("export", "cannot write the archive in %s: %v; the container was not checkpointed: give a path in an existing, writable directory", dir, fsutil.UnwrapPathError(err))
			}
		}
	}
	if opts.ImagePath == "" {
		// $TMPDIR rather than next to the archive: the images are only
		// needed until they are in the archive, and --image-path chooses
		// another place.
		var err error
		if e.tmpImages, err = os.MkdirTemp("", "runcr-export-"); err != nil {
			e.finish(err)
			return nil, fmt.Errorf("--export: making a temporary image directory: %w", err)
		}
		opts.ImagePath = e.tmpImages
	}
	return e, nil
}

// write puts the images of imageDir (and bundleConfig) into the archive.
func (e *exportFile) write(imageDir, bundleConfig string, c Compression, out io.Writer) error {
	start := time.Now()
	defer func() { logrus.Debugf("export to %s took %v", e.path, time.Since(start)) }()
	if e.through != nil {
		return e.writeThrough(imageDir, bundleConfig, c, out)
	}
	p := archive.StartProgress(out, "exporting "+e.path, 0)
	w := bufio.NewWriterSize(e.tmp, archive.CopyBufSize)
	err := archive.ExportProgress(imageDir, bundleConfig, w, c, p)
	if err == nil {
		err = w.Flush()
	}
	p.Finish()
	if err != nil {
		e.tmp.Abort()
		e.tmp = nil
		return err
	}
	err = e.tmp.Commit()
	e.tmp = nil
	return err
}

// writeThrough streams the archive to a writer, device or FIFO: nothing to
// rename, and what was written before a failure can't be taken back.
func (e *exportFile) writeThrough(imageDir, bundleConfig string, c Compression, out io.Writer) error {
	p := archive.StartProgress(out, "exporting to "+e.path, 0)
	w := bufio.NewWriterSize(e.through, archive.CopyBufSize)
	err := archive.ExportProgress(imageDir, bundleConfig, w, c, p)
	if err == nil {
		err = w.Flush()
	}
	p.Finish()
	if f, ok := e.through.(*os.File); ok && err == nil {
		err = syncIfFile(f)
	}
	if e.opened != nil {
		if cerr := e.opened.Close(); err == nil {
			err = cerr
		}
		e.opened = nil
	}
	return err
}

// finish cleans up after the checkpoint ended with err: an unfinished
// archive goes; a temporary image directory goes too, except that after
// an ExportError its images stay, and after a CRIU failure its dump.log.
func (e *exportFile) finish(err error) {
	if e.opened != nil {
		e.opened.Close()
		e.opened = nil
	}
	if e.tmp != nil {
		e.tmp.Abort()
		e.tmp = nil
	}
	if e.tmpImages == "" {
		return
	}
	var exportErr *ExportError
	var criuErr *CRIUError
	switch {
	case errors.As(err, &exportErr):
	case errors.As(err, &criuErr) && filepath.Dir(criuErr.LogPath) == e.tmpImages:
		removeAllBut(e.tmpImages, filepath.Base(criuErr.LogPath))
	default:
		start := time.Now()
		warnIf(os.RemoveAll(e.tmpImages), "removing the temporary image directory")
		logrus.Debugf("removing %s took %v", e.tmpImages, time.Since(start))
	}
}

// importedImages is an --import's unpacked archive; dir is the temporary
// directory runcr made for it, or "" when it went to --image-path.
type importedImages struct {
	dir string
	// engine is set for an engine archive (Podman, CRI-O, containerd).
	engine *engineImport
	// verified: the images were checked against the manifest's digests
	// as they were unpacked.
	verified bool
}

// importImages unpacks opts.Import into opts.ImagePath, or into a new
// private temporary directory that becomes opts.ImagePath.
func importImages(opts *RestoreOptions) (*importedImages, error) {
	path, in, size := opts.Import, opts.ImportFrom, int64(0)
	if in == nil {
		var err error
		if path, err = absPath(opts.Import, ""); err != nil {
			return nil, invalid("import", "%v", err)
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, invalid("import", "%s: %v; give the file `runcr checkpoint --export` wrote", path, fsutil.UnwrapPathError(err))
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return nil, invalid("import", "%s: %v", path, err)
		}
		if fi.IsDir() {
			return nil, invalid("import", "%s is a directory; give the archive file, or restore the directory with --image-path", path)
		}
		in, size = f, fi.Size()
	}
	imp := &importedImages{}
	var target string
	var err error
	if opts.ImagePath != "" {
		if target, err = absPath(opts.ImagePath, ""); err != nil {
			return nil, invalid("image-path", "%v", err)
		}
		if target, err = makePrivateDir("image-path", target); err != nil {
			return nil, err
		}
		if entries, err := os.ReadDir(target); err != nil || len(entries) > 0 {
			return nil, invalid("image-path", "%s is not empty; with --import the archive is unpacked there, so give a new or empty directory", target)
		}
	} else {
		if target, err = os.MkdirTemp("", "runcr-import-"); err != nil {
			return nil, fmt.Errorf("--import: making a temporary image directory: %w", err)
		}
		imp.dir = target
		opts.ImagePath = target
	}
	// Which layout: read the first entries, then start over; a stream
	// (--import -) can't seek, so what was read is replayed.
	var layout ArchiveLayout
	seeker, seekable := in.(io.Seeker)
	if seekable {
		_, serr := seeker.Seek(0, io.SeekCurrent) // a pipe is an *os.File too
		seekable = serr == nil
	}
	if seekable {
		if layout, err = DetectArchiveLayout(in); err == nil {
			_, err = seeker.Seek(0, io.SeekStart)
		}
	} else {
		rec := &headRecorder{r: in, limit: layoutDetectLimit}
		layout, err = DetectArchiveLayout(rec)
		in = io.MultiReader(bytes.NewReader(rec.buf), in)
	}
	if err != nil {
		imp.finish(err)
		return nil, fmt.Errorf("--import %s: %w", path, err)
	}
	p := archive.StartProgress(opts.Progress, "importing "+path, size)
	if layout == LayoutEngine {
		err = imp.importEngine(p.Reader(in), path, target, opts.ImportLimit)
	} else {
		var m *Manifest
		m, err = ImportArchiveLimit(p.Reader(in), target, opts.ImportLimit)
		imp.verified = err == nil && m.Images != nil
	}
	p.Finish()
	if err != nil {
		imp.finish(err)
		return nil, fmt.Errorf("--import %s: %w", path, err)
	}
	return imp, nil
}

// importEngine unpacks an engine archive: CRIU's images into target, the
// engine's metadata into a private temporary directory.
func (imp *importedImages) importEngine(r io.Reader, path, target, importLimit string) error {
	metaDir, err := os.MkdirTemp("", "runcr-import-meta-")
	if err != nil {
		return err
	}
	imp.engine = &engineImport{archive: path, metaDir: metaDir}
	limit, _, err := archive.Ceiling(target, importLimit)
	if err != nil {
		return err
	}
	if l, _, err := archive.Ceiling(metaDir, importLimit); err == nil && l < limit {
		limit = l
	}
	imp.engine.ea, err = importEngineArchive(r, target, metaDir, limit)
	return err
}

// criuDone removes the unpacked images once CRIU no longer needs them,
// keeping CRIU's restore.log for a failure's error to name.
func (imp *importedImages) criuDone() {
	if imp.dir != "" {
		removeAllBut(imp.dir, "restore.log")
	}
}

// finish removes the temporary directory once the restore ended with
// err, unless CRIU failed and its log is in there.
func (imp *importedImages) finish(err error) {
	if imp.engine != nil {
		imp.engine.finish()
	}
	if imp.dir == "" {
		return
	}
	var criuErr *CRIUError
	if errors.As(err, &criuErr) && filepath.Dir(criuErr.LogPath) == imp.dir {
		removeAllBut(imp.dir, filepath.Base(criuErr.LogPath))
		return
	}
	warnIf(os.RemoveAll(imp.dir), "removing the temporary image directory")
}

// removeAllBut empties dir except for the file keep.
func removeAllBut(dir, keep string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.Name() != keep {
			warnIf(os.RemoveAll(filepath.Join(dir, e.Name())), "removing %s", e.Name())
		}
	}
}

// layoutDetectLimit bounds what telling the layout of a stream keeps in
// memory to replay; an archive that hasn't shown its layout by then is
// taken as runcr's, whose import refuses what it doesn't know.
const layoutDetectLimit = 8 << 20

// headRecorder keeps what is read through it, up to limit bytes; past
// that, reads fail.
type headRecorder struct {
	r     io.Reader
	buf   []byte
	limit int
}

func (h *headRecorder) Read(p []byte) (int, error) {
	if len(h.buf) >= h.limit {
		return 0, errors.New("archive layout not recognised in its first bytes")
	}
	if room := h.limit - len(h.buf); len(p) > room {
		p = p[:room]
	}
	n, err := h.r.Read(p)
	h.buf = append(h.buf, p[:n]...)
	return n, err
}
