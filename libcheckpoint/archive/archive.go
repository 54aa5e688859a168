package archive

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
	"golang.org/x/sys/unix"

	"github.com/runcr/runcr/libcheckpoint/internal/errdefs"
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

// ConfigFile is the name of the bundle's config.json in an archive.
const ConfigFile = manifest.BundleConfigFile

// ErrBadArchive: the file given to --import is not an archive that
// `runcr checkpoint --export` wrote, or is damaged or hostile. The error
// names the offending entry.
var ErrBad = errors.New("bad archive")

const (
	// MaxEntries bounds the files an import creates: a checkpoint
	// has a few files per process.
	MaxEntries = 100000
	// MaxTrailer is how much may follow the tar stream's end inside the
	// compressed stream (tar pads to a record; nothing else is expected).
	MaxTrailer = 1 << 20
	// zstdMaxWindow bounds the memory a hostile zstd frame can make the
	// decoder allocate; our encoder's window is far smaller.
	zstdMaxWindow = 64 << 20
	// CopyBufSize: large copies through tar and the compressor on export;
	// ImportBufSize: reads of the archive and writes of its files.
	CopyBufSize   = 1 << 20
	ImportBufSize = 128 << 10
)

// magic numbers of the compressed formats, and tar's at its offset.
var (
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
	gzipMagic = []byte{0x1f, 0x8b}
	TarMagic  = []byte("ustar")
)

const TarMagicOffset = 257

// ValidCompression checks a --compress value; "" means zstd.
func ValidCompression(c Compression) error {
	if c != "" && !slices.Contains(compressions, c) {
		return errdefs.Invalid("compress", "%q is not one of zstd, gzip, none", c)
	}
	return nil
}

// Export writes the image directory imageDir, and the bundle
// configuration file bundleConfig unless it is "", to w as a runcr
// archive compressed with c ("" is zstd). imageDir must hold a complete
// manifest and only regular files.
func Export(imageDir, bundleConfig string, w io.Writer, c Compression) error {
	return ExportProgress(imageDir, bundleConfig, w, c, nil)
}

// ExportProgress is Export reporting on p (nil reports nothing).
func ExportProgress(imageDir, bundleConfig string, w io.Writer, c Compression, p *Progress) (err error) {
	if err := ValidCompression(c); err != nil {
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
		p.SetTotal(total)
	}
	cw, err := Compressor(w, c)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(cw)
	buf := make([]byte, CopyBufSize)
	if err := addSizes(tw, imageDir, bundleConfig, files); err != nil {
		return err
	}
	if bundleConfig != "" {
		if err := addFile(tw, bundleConfig, ConfigFile, buf, nil); err != nil {
			return err
		}
	}
	for _, fi := range files {
		if err := addFile(tw, filepath.Join(imageDir, fi.Name()), fi.Name(), buf, p); err != nil {
			return err
		}
	}
	if err := addFile(tw, filepath.Join(imageDir, manifest.File), manifest.File, buf, nil); err != nil {
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
	m, err := manifest.Read(imageDir)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s: %w", imageDir, err)
	case m == nil:
		return nil, fmt.Errorf("%s has no %s; only a checkpoint made by runcr can be archived", imageDir, manifest.File)
	case m.State != manifest.StateComplete:
		return nil, fmt.Errorf("%w: %s", manifest.ErrIncomplete, imageDir)
	}
	entries, err := os.ReadDir(imageDir)
	if err != nil {
		return nil, err
	}
	var files []os.FileInfo
	for _, e := range entries {
		name := e.Name()
		if name == manifest.File || strings.HasPrefix(name, "."+manifest.File+".") {
			continue // the manifest goes last; a leftover temporary one not at all
		}
		if name == ConfigFile {
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
	sizes := Sizes{Version: 1, Files: map[string]int64{}}
	add := func(name string, n int64) {
		sizes.Files[name] = n
		sizes.Total += n
	}
	if bundleConfig != "" {
		fi, err := os.Stat(bundleConfig)
		if err != nil {
			return err
		}
		add(ConfigFile, fi.Size())
	}
	for _, fi := range files {
		add(fi.Name(), fi.Size())
	}
	fi, err := os.Stat(filepath.Join(imageDir, manifest.File))
	if err != nil {
		return err
	}
	add(manifest.File, fi.Size())
	data, err := json.Marshal(sizes)
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg, Name: SizesFile, Mode: 0o600, Size: int64(len(data)),
		ModTime: time.Now().Truncate(time.Second),
	}); err != nil {
		return err
	}
	_, err = tw.Write(data)
	return err
}

// addFile copies the file at path into tw as name.
func addFile(tw *tar.Writer, path, name string, buf []byte, p *Progress) error {
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
	n, err := io.CopyBuffer(p.Writer(tw), struct{ io.Reader }{f}, buf)
	if err == nil && n != fi.Size() {
		err = fmt.Errorf("its size changed from %d to %d bytes while it was archived", fi.Size(), n)
	}
	if err != nil {
		return fmt.Errorf("archiving %s: %w", path, err)
	}
	return nil
}

// Compressor wraps w. zstd at its fastest level, one block at a time:
// memory images are large and often incompressible, so speed matters more
// than ratio. On the 2-CPU test VM the encoder's parallel modes were
// slower (they allocate fresh buffers, and page faults are dear there),
// see BENCHMARKS.md.
func Compressor(w io.Writer, c Compression) (io.WriteCloser, error) {
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
	case len(head) >= TarMagicOffset+len(TarMagic) && bytes.Equal(head[TarMagicOffset:TarMagicOffset+len(TarMagic)], TarMagic):
		return CompressNone, nil
	}
	return "", fmt.Errorf("%w: neither zstd, gzip nor tar (it starts with % x)", ErrBad, head[:min(len(head), 8)])
}

// Decompressor detects r's compression and returns its decompressed
// stream and a function that releases the decoder.
func Decompressor(r *bufio.Reader) (io.Reader, func(), error) {
	head, err := r.Peek(TarMagicOffset + len(TarMagic))
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
			return nil, nil, fmt.Errorf("%w: zstd: %w", ErrBad, err)
		}
		return d, d.Close, nil
	case CompressGzip:
		g, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: gzip: %w", ErrBad, err)
		}
		g.Multistream(false)
		return g, func() { g.Close() }, nil
	}
	return r, func() {}, nil
}

// Import unpacks a runcr archive from r into the existing
// directory targetDir and returns its manifest. It refuses, naming the
// entry, anything but flat regular files (absolute or nested paths, "..",
// links, devices, fifos), duplicates, more data than targetDir's file
// system has room for, and an archive without a complete manifest as its
// last entry. On error the files it created are removed again.
func Import(r io.Reader, targetDir string) (*manifest.Manifest, error) {
	return ImportLimit(r, targetDir, "")
}

// ImportLimit is ImportArchive with a limit on what it unpacks
// (RestoreOptions.ImportLimit; "" is DefaultImportLimit), beside the size
// declaration of archives that have one (ArchiveSizesFile) and the target
// file system's free space less a reserve. When the manifest records
// digests of the images, every unpacked image is checked against them
// (ErrDamagedImage names the file).
func ImportLimit(r io.Reader, targetDir, limit string) (*manifest.Manifest, error) {
	ceiling, why, err := Ceiling(targetDir, limit)
	if err != nil {
		return nil, err
	}
	return importBudgeted(r, targetDir, &importBudget{ceiling: ceiling, why: why})
}

// freeSpace is what an unprivileged writer may still put on dir's file
// system.
func FreeSpace(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("%s: %w", dir, err)
	}
	return int64(min(st.Bavail*uint64(st.Bsize), 1<<62)), nil
}

func ImportWithin(r io.Reader, targetDir string, limit int64) (*manifest.Manifest, error) {
	return importBudgeted(r, targetDir, &importBudget{ceiling: limit, why: "the target's free space"})
}

func importBudgeted(r io.Reader, targetDir string, budget *importBudget) (_ *manifest.Manifest, err error) {
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

	dr, release, err := Decompressor(bufio.NewReaderSize(r, ImportBufSize))
	if err != nil {
		return nil, err
	}
	defer release()
	tr := tar.NewReader(dr)
	buf := make([]byte, ImportBufSize)
	var (
		imported *manifest.Manifest
		last     string // the last entry read
		first    = true
		// digests of the unpacked files, to check against the manifest's
		digests = map[string]manifest.ImageFile{}
	)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: reading the entry after %s: %w (the file is truncated or corrupt)", ErrBad, EntryDesc(last), err)
		}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w: entry %q: %s", ErrBad, hdr.Name, fmt.Sprintf(format, args...))
		}
		name, err := entryName(hdr.Name)
		if err != nil {
			return nil, bad("%v", err)
		}
		if name == "." && hdr.Typeflag == tar.TypeDir {
			continue // the "./" of an archive made with `tar -C DIR .`
		}
		if name == SizesFile {
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
			return nil, bad("follows %s, which must be the last entry", manifest.File)
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
		if len(created) >= MaxEntries {
			return nil, bad("is one more than the %d files an archive may hold", MaxEntries)
		}
		if err := budget.admit(name, hdr); err != nil {
			return nil, bad("%v", err)
		}
		if name == manifest.File {
			if hdr.Size > manifest.MaxSize {
				return nil, bad("is %d bytes; a manifest is at most %d", hdr.Size, manifest.MaxSize)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				return nil, bad("%v (the file is truncated or corrupt)", err)
			}
			if imported, err = manifest.Decode(data); err != nil {
				return nil, bad("%v", err)
			}
			if imported.State != manifest.StateComplete {
				return nil, fmt.Errorf("%w: %w: entry %q: the checkpoint of %q never finished", ErrBad, manifest.ErrIncomplete, hdr.Name, imported.ContainerID)
			}
			if err := WriteNew(root, name, bytes.NewReader(data), buf, nil); err != nil {
				return nil, bad("%v", err)
			}
			created = append(created, name)
			last = hdr.Name
			continue
		}
		h := manifest.NewImageHasher()
		err = WriteNew(root, name, tr, buf, h)
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
		return nil, fmt.Errorf("%w: no %s after %s: not an archive made by `runcr checkpoint --export`, or it is truncated", ErrBad, manifest.File, EntryDesc(last))
	}
	// Read to the end of the compressed stream first, where gzip and zstd
	// check their checksums: a corrupt archive is a bad archive, even
	// where the damage happens to decompress; the digests then catch
	// images that changed before they were archived.
	if n, err := io.CopyN(io.Discard, dr, MaxTrailer+1); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: after the last entry: %w (the file is truncated or corrupt)", ErrBad, err)
	} else if n > MaxTrailer {
		return nil, fmt.Errorf("%w: more than %d bytes follow the end of the tar stream", ErrBad, MaxTrailer)
	}
	if err := manifest.CheckDigests(targetDir, imported, digests); err != nil {
		return nil, err
	}
	return imported, nil
}

// EntryDesc names an entry in an error; "" is the archive's start.
func EntryDesc(name string) string {
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

// WriteNew creates name in root, failing if it exists, with r's content.
// os.Root keeps every access inside the target directory.
// When h is not nil, what is written is hashed too.
func WriteNew(root *os.Root, name string, r io.Reader, buf []byte, h io.Writer) error {
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
