package libcheckpoint

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/runcr/runcr/libcheckpoint/manifest"
)

// A runcr archive (checkpoint --export, restore --import) is one tar
// stream, compressed or not, holding one image directory flat: a size
// declaration first (ArchiveSizesFile, see importlimit.go), the bundle's
// config.json (when it could be read), then every regular file of the
// image directory, and the manifest last. The manifest being
// last makes it the archive's commit record: an archive cut short at any
// entry boundary lacks it and is refused, and zstd's and gzip's checksums
// catch corruption. Unpacked, the archive is an image directory that
// `restore --image-path` takes as it is.

// Compression is how an archive is compressed.
type Compression string

// The compressions an archive can have; import detects which from the
// file's first bytes.
const (
	CompressZstd Compression = "zstd"
	CompressGzip Compression = "gzip"
	CompressNone Compression = "none"
)

var compressions = []Compression{CompressZstd, CompressGzip, CompressNone}

// ArchiveConfigFile is the name of the bundle's config.json in an archive.
const ArchiveConfigFile = manifest.BundleConfigFile

// ErrBadArchive: the file given to --import is not an archive that
// `runcr checkpoint --export` wrote, or is damaged or hostile. The error
// names the offending entry.
var ErrBadArchive = errors.New("bad archive")

const (
	// maxArchiveEntries bounds the files an import creates: a checkpoint
	// has a few files per process.
	maxArchiveEntries = 100000
	// maxTrailer is how much may follow the tar stream's end inside the
	// compressed stream (tar pads to a record; nothing else is expected).
	maxTrailer = 1 << 20
	// zstdMaxWindow bounds the memory a hostile zstd frame can make the
	// decoder allocate; our encoder's window is far smaller.
	zstdMaxWindow = 64 << 20
	// copyBufSize: large copies through tar and the compressor on export;
	// importBufSize: reads of the archive and writes of its files.
	copyBufSize   = 1 << 20
	importBufSize = 128 << 10
)

// magic numbers of the compressed formats, and tar's at its offset.
var (
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
	gzipMagic = []byte{0x1f, 0x8b}
	tarMagic  = []byte("ustar")
)

const tarMagicOffset = 257

// validCompression checks a --compress value; "" means zstd.
func validCompression(c Compression) error {
	if c != "" && !slices.Contains(compressions, c) {
		return invalid("compress", "%q is not one of zstd, gzip, none", c)
	}
	return nil
}

// ExportArchive writes the image directory imageDir, and the bundle
// configuration file bundleConfig unless it is "", to w as a runcr
// archive compressed with c ("" is zstd). imageDir must hold a complete
// manifest and only regular files.
func ExportArchive(imageDir, bundleConfig string, w io.Writer, c Compression) error {
	return exportArchive(imageDir, bundleConfig, w, c, nil)
}

func exportArchive(imageDir, bundleConfig string, w io.Writer, c Compression, p *progress) (err error) {
	if err := validCompression(c); err != nil {
		return err
	}
	files, err := archiveFiles(imageDir)
	if err != nil {
		return err
	}
	if p != nil {
		var total int64
		for _, f := range files {
			total += f.Size()
		}
		p.setTotal(total)
	}
	cw, err := compressor(w, c)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(cw)
	buf := make([]byte, copyBufSize)
	if err := addSizes(tw, imageDir, bundleConfig, files); err != nil {
		return err
	}
	if bundleConfig != "" {
		if err := addFile(tw, bundleConfig, ArchiveConfigFile, buf, nil); err != nil {
			return err
		}
	}
	for _, fi := range files {
		if err := addFile(tw, filepath.Join(imageDir, fi.Name()), fi.Name(), buf, p); err != nil {
			return err
		}
	}
	if err := addFile(tw, filepath.Join(imageDir, ManifestFile), ManifestFile, buf, nil); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return cw.Close()
}

// archiveFiles lists what an archive takes from imageDir, the manifest
// aside (it goes last); it must be complete.
func archiveFiles(imageDir string) ([]os.FileInfo, error) {
	m, err := ReadManifest(imageDir)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s: %w", imageDir, err)
	case m == nil:
		return nil, fmt.Errorf("%s has no %s; only a checkpoint made by runcr can be archived", imageDir, ManifestFile)
	case m.State != ManifestComplete:
		return nil, fmt.Errorf("%w: %s", ErrIncompleteCheckpoint, imageDir)
	}
	entries, err := os.ReadDir(imageDir)
	if err != nil {
		return nil, err
	}
	var files []os.FileInfo
	for _, e := range entries {
		name := e.Name()
		if name == ManifestFile || strings.HasPrefix(name, "."+ManifestFile+".") {
			continue // the manifest goes last; a leftover temporary one not at all
		}
		if name == ArchiveConfigFile {
			return nil, fmt.Errorf("%s holds a %s of its own, which the archive's bundle configuration would replace", imageDir, name)
		}
		if !e.Type().IsRegular() {
			return nil, fmt.Errorf("%s: %s is not a regular file (%s); an archive holds regular files only", imageDir, name, e.Type())
		}
		fi, err := e.Info()
		if err != nil {
			return nil, err
		}
		files = append(files, fi)
	}
	return files, nil
}

// addSizes writes the archive's first entry, ArchiveSizesFile: the size
// of every entry that follows, so that an import is bounded by it.
func addSizes(tw *tar.Writer, imageDir, bundleConfig string, files []os.FileInfo) error {
	sizes := ArchiveSizes{Version: 1, Files: map[string]int64{}}
	add := func(name string, n int64) {
		sizes.Files[name] = n
		sizes.Total += n
	}
	if bundleConfig != "" {
		fi, err := os.Stat(bundleConfig)
		if err != nil {
			return err
		}
		add(ArchiveConfigFile, fi.Size())
	}
	for _, fi := range files {
		add(fi.Name(), fi.Size())
	}
	fi, err := os.Stat(filepath.Join(imageDir, ManifestFile))
	if err != nil {
		return err
	}
	add(ManifestFile, fi.Size())
	data, err := json.Marshal(sizes)
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg, Name: ArchiveSizesFile, Mode: 0o600, Size: int64(len(data)),
		ModTime: time.Now().Truncate(time.Second),
	}); err != nil {
		return err
	}
	_, err = tw.Write(data)
	return err
}

// addFile copies the file at path into tw as name.
func addFile(tw *tar.Writer, path, name string, buf []byte, p *progress) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Mode:     0o600,
		Size:     fi.Size(),
		ModTime:  fi.ModTime().Truncate(time.Second),
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("archiving %s: %w", path, err)
	}
	// A plain io.Reader, so that the copy goes through buf, not through
	// os.File's small generic buffer (tar.Writer is no io.ReaderFrom).
	n, err := io.CopyBuffer(p.writer(tw), struct{ io.Reader }{f}, buf)
	if err == nil && n != fi.Size() {
		err = fmt.Errorf("its size changed from %d to %d bytes while it was archived", fi.Size(), n)
	}
	if err != nil {
		return fmt.Errorf("archiving %s: %w", path, err)
	}
	return nil
}

// compressor wraps w. zstd at its fastest level, one block at a time:
// memory images are large and often incompressible, so speed matters more
// than ratio. On the 2-CPU test VM the encoder's parallel modes were
// slower (they allocate fresh buffers, and page faults are dear there),
// see BENCHMARKS.md.
func compressor(w io.Writer, c Compression) (io.WriteCloser, error) {
	switch c {
	case CompressZstd, "":
		return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	case CompressGzip:
		return gzip.NewWriterLevel(w, gzip.BestSpeed)
	default:
		return nopWriteCloser{w}, nil
	}
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// DetectCompression tells from the first bytes of an archive how it is
// compressed; the file's name plays no part.
func DetectCompression(head []byte) (Compression, error) {
	switch {
	case bytes.HasPrefix(head, zstdMagic):
		return CompressZstd, nil
	case bytes.HasPrefix(head, gzipMagic):
		return CompressGzip, nil
	case len(head) >= tarMagicOffset+len(tarMagic) && bytes.Equal(head[tarMagicOffset:tarMagicOffset+len(tarMagic)], tarMagic):
		return CompressNone, nil
	}
	return "", fmt.Errorf("%w: neither zstd, gzip nor tar (it starts with % x)", ErrBadArchive, head[:min(len(head), 8)])
}

// decompressor detects r's compression and returns its decompressed
// stream and a function that releases the decoder.
func decompressor(r *bufio.Reader) (io.Reader, func(), error) {
	head, err := r.Peek(tarMagicOffset + len(tarMagic))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, err
	}
	c, err := DetectCompression(head)
	if err != nil {
		return nil, nil, err
	}
	switch c {
	case CompressZstd:
		d, err := zstd.NewReader(r, zstd.WithDecoderMaxWindow(zstdMaxWindow), zstd.WithDecoderMaxMemory(zstdMaxWindow))
		if err != nil {
			return nil, nil, fmt.Errorf("%w: zstd: %w", ErrBadArchive, err)
		}
		return d, d.Close, nil
	case CompressGzip:
		g, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: gzip: %w", ErrBadArchive, err)
		}
		g.Multistream(false)
		return g, func() { g.Close() }, nil
	}
	return r, func() {}, nil
}

// ImportArchive unpacks a runcr archive from r into the existing
// directory targetDir and returns its manifest. It refuses, naming the
// entry, anything but flat regular files (absolute or nested paths, "..",
// links, devices, fifos), duplicates, more data than targetDir's file
// system has room for, and an archive without a complete manifest as its
// last entry. On error the files it created are removed again.
func ImportArchive(r io.Reader, targetDir string) (*Manifest, error) {
	return ImportArchiveLimit(r, targetDir, "")
}

// ImportArchiveLimit is ImportArchive with a limit on what it unpacks
// (RestoreOptions.ImportLimit; "" is DefaultImportLimit), beside the size
// declaration of archives that have one (ArchiveSizesFile) and the target
// file system's free space less a reserve. When the manifest records
// digests of the images, every unpacked image is checked against them
// (ErrDamagedImage names the file).
func ImportArchiveLimit(r io.Reader, targetDir, limit string) (*Manifest, error) {
	ceiling, why, err := importCeiling(targetDir, limit)
	if err != nil {
		return nil, err
	}
	return importArchiveBudget(r, targetDir, &importBudget{ceiling: ceiling, why: why})
}

// freeSpace is what an unprivileged writer may still put on dir's file
// system.
func freeSpace(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("%s: %w", dir, err)
	}
	return int64(min(st.Bavail*uint64(st.Bsize), 1<<62)), nil
}

func importArchive(r io.Reader, targetDir string, limit int64) (*Manifest, error) {
	return importArchiveBudget(r, targetDir, &importBudget{ceiling: limit, why: "the target's free space"})
}

func importArchiveBudget(r io.Reader, targetDir string, budget *importBudget) (_ *Manifest, err error) {
	root, err := os.OpenRoot(targetDir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	var created []string
	defer func() {
		if err != nil {
			for _, name := range created {
				_ = root.Remove(name)
			}
		}
	}()

	dr, release, err := decompressor(bufio.NewReaderSize(r, importBufSize))
	if err != nil {
		return nil, err
	}
	defer release()
	tr := tar.NewReader(dr)
	buf := make([]byte, importBufSize)
	var (
		imported *Manifest
		last     string // the last entry read
		first    = true
		// digests of the unpacked files, to check against the manifest's
		digests = map[string]ImageFile{}
	)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: reading the entry after %s: %w (the file is truncated or corrupt)", ErrBadArchive, entryDesc(last), err)
		}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w: entry %q: %s", ErrBadArchive, hdr.Name, fmt.Sprintf(format, args...))
		}
		name, err := entryName(hdr.Name)
		if err != nil {
			return nil, bad("%v", err)
		}
		if name == "." && hdr.Typeflag == tar.TypeDir {
			continue // the "./" of an archive made with `tar -C DIR .`
		}
		if name == ArchiveSizesFile {
			if !first || hdr.Typeflag != tar.TypeReg {
				return nil, bad("must be the first entry, a regular file")
			}
			if err := budget.readSizes(hdr, tr); err != nil {
				return nil, bad("%v", err)
			}
			first = false
			last = hdr.Name
			continue
		}
		first = false
		if imported != nil {
			return nil, bad("follows %s, which must be the last entry", ManifestFile)
		}
		switch hdr.Typeflag {
		case tar.TypeReg:
		case tar.TypeSymlink:
			return nil, bad("is a symbolic link (to %q); an archive holds regular files only", hdr.Linkname)
		case tar.TypeLink:
			return nil, bad("is a hard link (to %q); an archive holds regular files only", hdr.Linkname)
		case tar.TypeChar, tar.TypeBlock:
			return nil, bad("is a device node; an archive holds regular files only")
		case tar.TypeFifo:
			return nil, bad("is a fifo; an archive holds regular files only")
		case tar.TypeDir:
			return nil, bad("is a directory; an archive is flat")
		default:
			return nil, bad("has type %q; an archive holds regular files only", hdr.Typeflag)
		}
		if len(created) >= maxArchiveEntries {
			return nil, bad("is one more than the %d files an archive may hold", maxArchiveEntries)
		}
		if err := budget.admit(name, hdr); err != nil {
			return nil, bad("%v", err)
		}
		if name == ManifestFile {
			if hdr.Size > maxManifestSize {
				return nil, bad("is %d bytes; a manifest is at most %d", hdr.Size, maxManifestSize)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				return nil, bad("%v (the file is truncated or corrupt)", err)
			}
			if imported, err = DecodeManifest(data); err != nil {
				return nil, bad("%v", err)
			}
			if imported.State != ManifestComplete {
				return nil, fmt.Errorf("%w: %w: entry %q: the checkpoint of %q never finished", ErrBadArchive, ErrIncompleteCheckpoint, hdr.Name, imported.ContainerID)
			}
			if err := writeNew(root, name, bytes.NewReader(data), buf, nil); err != nil {
				return nil, bad("%v", err)
			}
			created = append(created, name)
			last = hdr.Name
			continue
		}
		h := manifest.NewImageHasher()
		err = writeNew(root, name, tr, buf, h)
		digests[name] = h.File()
		if errors.Is(err, os.ErrExist) {
			return nil, bad("would overwrite %s (a duplicate entry)", filepath.Join(targetDir, name))
		}
		created = append(created, name) // a partial file is removed too
		if err != nil {
			return nil, bad("%v (the file is truncated or corrupt)", err)
		}
		last = hdr.Name
	}
	if imported == nil {
		return nil, fmt.Errorf("%w: no %s after %s: not an archive made by `runcr checkpoint --export`, or it is truncated", ErrBadArchive, ManifestFile, entryDesc(last))
	}
	if err := manifest.CheckDigests(targetDir, imported, digests); err != nil {
		return nil, err
	}
	// Read to the end of the compressed stream, where gzip and zstd
	// check their checksums.
	if n, err := io.CopyN(io.Discard, dr, maxTrailer+1); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: after the last entry: %w (the file is truncated or corrupt)", ErrBadArchive, err)
	} else if n > maxTrailer {
		return nil, fmt.Errorf("%w: more than %d bytes follow the end of the tar stream", ErrBadArchive, maxTrailer)
	}
	return imported, nil
}

// entryDesc names an entry in an error; "" is the archive's start.
func entryDesc(name string) string {
	if name == "" {
		return "the start of the archive"
	}
	return fmt.Sprintf("entry %q", name)
}

// entryName is the file name an entry unpacks to; only flat names are
// allowed (a leading "./" is dropped, "." is the directory itself).
func entryName(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", errors.New("is an absolute path")
	}
	n := strings.TrimSuffix(strings.TrimPrefix(name, "./"), "/")
	if n == "" || n == "." {
		return ".", nil
	}
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			return "", errors.New("has \"..\": it would escape the target directory")
		}
	}
	if strings.Contains(n, "/") {
		return "", errors.New("is in a subdirectory; an archive is flat")
	}
	return n, nil
}

// writeNew creates name in root, failing if it exists, with r's content.
// os.Root keeps every access inside the target directory.
// When h is not nil, what is written is hashed too.
func writeNew(root *os.Root, name string, r io.Reader, buf []byte, h io.Writer) error {
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	// A plain io.Writer, so that the copy goes through buf.
	var w io.Writer = struct{ io.Writer }{f}
	if h != nil {
		w = io.MultiWriter(f, h)
	}
	_, err = io.CopyBuffer(w, r, buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

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
	tmp       *os.File
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
			if e.tmp, err = os.CreateTemp(dir, "."+filepath.Base(target.Path)+".tmp-*"); err != nil {
				return nil, invalid("export", "cannot write the archive in %s: %v; the container was not checkpointed: give a path in an existing, writable directory", dir, unwrapPathError(err))
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
	p := startProgress(out, "exporting "+e.path, 0)
	w := bufio.NewWriterSize(e.tmp, copyBufSize)
	err := exportArchive(imageDir, bundleConfig, w, c, p)
	if err == nil {
		err = w.Flush()
	}
	p.finish()
	if err == nil {
		err = e.tmp.Sync()
	}
	if cerr := e.tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(e.tmp.Name(), e.path)
	}
	if err != nil {
		os.Remove(e.tmp.Name())
		e.tmp = nil
		return err
	}
	e.tmp = nil
	if d, err := os.Open(filepath.Dir(e.path)); err == nil {
		warnIf(d.Sync(), "syncing %s", filepath.Dir(e.path))
		d.Close()
	}
	return nil
}

// writeThrough streams the archive to a writer, device or FIFO: nothing to
// rename, and what was written before a failure can't be taken back.
func (e *exportFile) writeThrough(imageDir, bundleConfig string, c Compression, out io.Writer) error {
	p := startProgress(out, "exporting to "+e.path, 0)
	w := bufio.NewWriterSize(e.through, copyBufSize)
	err := exportArchive(imageDir, bundleConfig, w, c, p)
	if err == nil {
		err = w.Flush()
	}
	p.finish()
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
		e.tmp.Close()
		os.Remove(e.tmp.Name())
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
			return nil, invalid("import", "%s: %v; give the file `runcr checkpoint --export` wrote", path, unwrapPathError(err))
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
	p := startProgress(opts.Progress, "importing "+path, size)
	if layout == LayoutEngine {
		err = imp.importEngine(p.reader(in), path, target, opts.ImportLimit)
	} else {
		var m *Manifest
		m, err = ImportArchiveLimit(p.reader(in), target, opts.ImportLimit)
		imp.verified = err == nil && m.Images != nil
	}
	p.finish()
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
	limit, _, err := importCeiling(target, importLimit)
	if err != nil {
		return err
	}
	if l, _, err := importCeiling(metaDir, importLimit); err == nil && l < limit {
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
