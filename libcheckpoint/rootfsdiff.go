package libcheckpoint

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/runcr/runcr/libcheckpoint/archive"
	"github.com/runcr/runcr/libcheckpoint/internal/fsutil"
)

// An engine archive's rootfs-diff.tar holds what the container changed in
// its image's rootfs, and deleted.files what it deleted (Podman, CRI-O);
// containerd's diff is a gzip-compressed layer whose deletions are
// overlay-style whiteouts (.wh.NAME, .wh..wh..opq). restore --import
// applies both to the bundle's rootfs, confined to it:
//
//   - every entry is checked before the rootfs is touched (scanRootfsDiff,
//     then checkRootfs against the rootfs as it is), so a refused archive
//     changes nothing;
//   - names: no absolute path, no "..", no path through a symbolic link
//     the diff itself creates; a hard link's target must be in the rootfs;
//   - types: files, directories, symbolic links, hard links and fifos; no
//     device nodes (a container's /dev is a tmpfs the diff never holds, and
//     a device node is the one thing a rootfs should not get from an
//     archive);
//   - size: the files' content must fit the rootfs's file system, and at
//     most maxRootfsEntries entries;
//   - every access goes through os.Root, which refuses to follow a
//     symbolic link of the rootfs out of it (or an absolute one).
//
// Symbolic links are created as they are: their targets are resolved
// inside the container, as the image's own links are.

// rootfs entry kinds.
type diffKind int

const (
	diffSkip diffKind = iota
	diffDir
	diffReg
	diffSymlink
	diffLink
	diffFifo
	diffWhiteout // removes path
	diffOpaque   // path's earlier content is replaced by the diff's
)

const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// diffEntry is one checked entry of a rootfs diff.
type diffEntry struct {
	kind diffKind
	rel  string // clean, relative to the rootfs
	link string // hard link: clean target path; symlink: the target as is
}

// parseDiffEntry checks hdr and says what it does to the rootfs.
func parseDiffEntry(hdr *tar.Header) (diffEntry, error) {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return diffEntry{kind: diffSkip}, nil
	}
	rel, err := rootfsRelPath(hdr.Name, false)
	if err != nil {
		return diffEntry{}, err
	}
	if rel == "." {
		return diffEntry{kind: diffSkip}, nil // the rootfs itself: left as the bundle has it
	}
	dir, base := path.Split(rel)
	dir = path.Clean(dir)
	if strings.HasPrefix(base, whiteoutPrefix) {
		if base == whiteoutOpaque {
			return diffEntry{kind: diffOpaque, rel: dir}, nil
		}
		name := strings.TrimPrefix(base, whiteoutPrefix)
		if name == "" || name == "." || name == ".." {
			return diffEntry{}, errors.New("is a whiteout of no file")
		}
		return diffEntry{kind: diffWhiteout, rel: path.Join(dir, name)}, nil
	}
	e := diffEntry{rel: rel}
	switch hdr.Typeflag {
	case tar.TypeReg:
		e.kind = diffReg
	case tar.TypeDir:
		e.kind = diffDir
	case tar.TypeSymlink:
		if hdr.Linkname == "" || strings.ContainsRune(hdr.Linkname, 0) {
			return diffEntry{}, errors.New("is a symbolic link with an empty or invalid target")
		}
		e.kind, e.link = diffSymlink, hdr.Linkname
	case tar.TypeLink:
		target, err := rootfsRelPath(hdr.Linkname, false)
		if err != nil {
			return diffEntry{}, fmt.Errorf("is a hard link to %q, which %w", hdr.Linkname, err)
		}
		if target == "." {
			return diffEntry{}, fmt.Errorf("is a hard link to the rootfs itself")
		}
		e.kind, e.link = diffLink, target
	case tar.TypeFifo:
		e.kind = diffFifo
	case tar.TypeChar, tar.TypeBlock:
		return diffEntry{}, fmt.Errorf("is a device node (%d:%d); runcr does not create device nodes from an archive", hdr.Devmajor, hdr.Devminor)
	default:
		return diffEntry{}, fmt.Errorf("has type %q, which a rootfs diff may not hold", hdr.Typeflag)
	}
	return e, nil
}

// rootfsDiffPlan is a checked rootfs diff.
type rootfsDiffPlan struct {
	summary RootfsDiffSummary
	// opaque are directories whose content in the rootfs goes first.
	opaque []string
	// inRootfs are paths the diff uses (as parent directories or hard
	// link targets) before creating them: they must be usable in the
	// rootfs as it is. The value is true for a hard link target.
	inRootfs map[string]bool
	// made is what the diff leaves at each path it touches.
	made map[string]diffKind
}

// ancestors are the parent directories of rel, outermost first.
func ancestors(rel string) []string {
	var out []string
	for d := path.Dir(rel); d != "."; d = path.Dir(d) {
		out = append(out, d)
	}
	slices.Reverse(out)
	return out
}

// rootfsDiffError names the entry of rootfs-diff.tar that is refused.
func rootfsDiffError(name, format string, args ...any) error {
	return fmt.Errorf("%w: %s: entry %q: %s", ErrBadArchive, engineRootfsDiff, name, fmt.Sprintf(format, args...))
}

// openRootfsDiff opens the diff at diffPath, compressed or not, and
// returns its tar reader and a function that closes it.
func openRootfsDiff(diffPath string) (*tar.Reader, Compression, func(), error) {
	f, err := os.Open(diffPath)
	if err != nil {
		return nil, "", nil, err
	}
	br := bufio.NewReaderSize(f, archive.ImportBufSize)
	head, _ := br.Peek(archive.TarMagicOffset + len(archive.TarMagic))
	if len(head) == 0 {
		// An empty file: no changes.
		return tar.NewReader(br), CompressNone, func() { f.Close() }, nil
	}
	c, err := DetectCompression(head)
	if err != nil {
		f.Close()
		return nil, "", nil, fmt.Errorf("%s: %w", engineRootfsDiff, err)
	}
	dr, release, err := archive.Decompressor(br)
	if err != nil {
		f.Close()
		return nil, "", nil, fmt.Errorf("%s: %w", engineRootfsDiff, err)
	}
	return tar.NewReader(dr), c, func() { release(); f.Close() }, nil
}

// scanRootfsDiff reads the diff at diffPath and checks every entry (see
// above); the files' content must not exceed limit bytes. The plan comes
// back with the error as far as the diff was read.
func scanRootfsDiff(diffPath string, limit int64) (*rootfsDiffPlan, error) {
	tr, c, closeDiff, err := openRootfsDiff(diffPath)
	if err != nil {
		return nil, err
	}
	defer closeDiff()
	p := &rootfsDiffPlan{
		summary:  RootfsDiffSummary{Compression: c, Paths: []string{}},
		inRootfs: map[string]bool{},
		made:     map[string]diffKind{},
	}
	s := &p.summary
	last := ""
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return p, nil
		}
		if err != nil {
			return p, fmt.Errorf("%w: %s: reading the entry after %s: %w (the file is truncated or corrupt)", ErrBadArchive, engineRootfsDiff, archive.EntryDesc(last), err)
		}
		last = hdr.Name
		e, err := parseDiffEntry(hdr)
		if err != nil {
			return p, rootfsDiffError(hdr.Name, "%v", err)
		}
		if e.kind == diffSkip {
			continue
		}
		s.Entries++
		if s.Entries > maxRootfsEntries {
			return p, rootfsDiffError(hdr.Name, "is one more than the %d entries a rootfs diff may hold", maxRootfsEntries)
		}
		if e.kind == diffReg {
			s.ContentBytes += hdr.Size
			if hdr.Size < 0 || s.ContentBytes > limit {
				return p, rootfsDiffError(hdr.Name, "is %d bytes, which makes %d in all, more than the %d the rootfs's file system has room for", hdr.Size, s.ContentBytes, limit)
			}
		}
		// Where the entry goes must be reached through directories:
		// made by the diff, or in the rootfs (checked there later).
		uses := ancestors(e.rel)
		if e.kind == diffOpaque {
			uses = append(uses, e.rel)
		}
		for _, a := range uses {
			switch k, ok := p.made[a]; {
			case !ok:
				if _, seen := p.inRootfs[a]; !seen {
					p.inRootfs[a] = false
				}
			case k == diffSymlink:
				return p, rootfsDiffError(hdr.Name, "goes through %q, a symbolic link this diff creates", a)
			case k != diffDir && k != diffWhiteout && k != diffOpaque:
				return p, rootfsDiffError(hdr.Name, "is under %q, which this diff creates as a file", a)
			}
		}
		if e.kind == diffLink {
			switch k, ok := p.made[e.link]; {
			case !ok:
				p.inRootfs[e.link] = true
			case k == diffDir || k == diffWhiteout || k == diffOpaque || k == diffSymlink:
				return p, rootfsDiffError(hdr.Name, "is a hard link to %q, which is not a file", e.link)
			}
			for _, a := range ancestors(e.link) {
				if p.made[a] == diffSymlink {
					return p, rootfsDiffError(hdr.Name, "is a hard link through %q, a symbolic link this diff creates", a)
				}
			}
		}
		switch e.kind {
		case diffOpaque:
			p.opaque = append(p.opaque, e.rel)
			p.made[e.rel] = diffOpaque
		case diffWhiteout:
			s.Whiteouts++
			p.made[e.rel] = diffWhiteout
		default:
			p.made[e.rel] = e.kind
		}
		switch e.kind {
		case diffReg:
			s.Files++
		case diffDir:
			s.Dirs++
		case diffSymlink:
			s.Symlinks++
		case diffLink:
			s.HardLinks++
		case diffOpaque:
			s.Whiteouts++
		}
		if len(s.Paths) < maxListedPaths {
			desc := e.rel
			switch e.kind {
			case diffWhiteout:
				desc += " (deleted)"
			case diffOpaque:
				desc += "/ (replaced)"
			case diffDir:
				desc += "/"
			case diffSymlink:
				desc += " -> " + e.link
			case diffLink:
				desc += " (hard link to " + e.link + ")"
			}
			s.Paths = append(s.Paths, desc)
		}
	}
}

// checkRootfs checks the paths the plan and the deletions use against the
// rootfs as it is: each must be missing (the diff makes it) or a
// directory, or a symbolic link os.Root follows to one; a hard link's
// target must exist.
func (p *rootfsDiffPlan) checkRootfs(root *os.Root, deleted []string) error {
	uses := map[string]bool{}
	for k, v := range p.inRootfs {
		uses[k] = v
	}
	for _, d := range deleted {
		for _, a := range ancestors(d) {
			switch k, ok := p.made[a]; {
			case !ok:
				if _, seen := uses[a]; !seen {
					uses[a] = false
				}
			case k == diffSymlink:
				return fmt.Errorf("%w: %s: %q goes through %q, a symbolic link the rootfs diff creates", ErrBadArchive, engineDeletedFiles, d, a)
			}
		}
	}
	names := make([]string, 0, len(uses))
	for k := range uses {
		names = append(names, k)
	}
	slices.Sort(names) // parents first
	for _, name := range names {
		fi, err := root.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			if uses[name] {
				return fmt.Errorf("%w: %s: a hard link's target %q is not in the rootfs", ErrBadArchive, engineRootfsDiff, name)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("%w: %s: %q in the rootfs: %w", ErrBadArchive, engineRootfsDiff, name, fsutil.UnwrapPathError(err))
		}
		if uses[name] {
			if !fi.Mode().IsRegular() && fi.Mode()&fs.ModeSymlink == 0 {
				return fmt.Errorf("%w: %s: a hard link's target %q is not a file in the rootfs", ErrBadArchive, engineRootfsDiff, name)
			}
			continue
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			target, _ := root.Readlink(name)
			st, err := root.Stat(name)
			if err != nil || !st.IsDir() {
				return fmt.Errorf("%w: the archive changes files under %q, a symbolic link (to %q) in the rootfs that leads outside it, is absolute, or is no directory; runcr does not follow it", ErrBadArchive, name, target)
			}
			continue
		}
		if !fi.IsDir() {
			return fmt.Errorf("%w: the archive changes files under %q, which is no directory in the rootfs", ErrBadArchive, name)
		}
	}
	return nil
}

// dirMeta is what a directory entry sets once its content is in place.
type dirMeta struct {
	rel string
	hdr *tar.Header
}

// applyRootfsDiff applies the checked diff at diffPath to the rootfs
// opened as root. Ownership is applied when runcr runs as root.
func applyRootfsDiff(diffPath string, root *os.Root, p *rootfsDiffPlan) error {
	for _, d := range p.opaque {
		if err := clearDir(root, d); err != nil {
			return err
		}
	}
	tr, _, closeDiff, err := openRootfsDiff(diffPath)
	if err != nil {
		return err
	}
	defer closeDiff()
	chown := os.Geteuid() == 0
	buf := make([]byte, archive.ImportBufSize)
	var dirs []dirMeta
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", engineRootfsDiff, err)
		}
		e, err := parseDiffEntry(hdr)
		if err != nil {
			return rootfsDiffError(hdr.Name, "%v", err) // it changed since the scan
		}
		if e.kind == diffSkip || e.kind == diffOpaque {
			continue
		}
		if err := applyDiffEntry(root, e, hdr, tr, buf, chown); err != nil {
			return fmt.Errorf("%s: entry %q: %w", engineRootfsDiff, hdr.Name, fsutil.UnwrapPathError(err))
		}
		if e.kind == diffDir {
			dirs = append(dirs, dirMeta{e.rel, hdr})
		}
	}
	// Directories last, innermost first: their modes may forbid writing,
	// and writing into them changes their times.
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		if err := setMeta(root, d.rel, d.hdr, chown); err != nil {
			return fmt.Errorf("%s: entry %q: %w", engineRootfsDiff, d.hdr.Name, fsutil.UnwrapPathError(err))
		}
	}
	return nil
}

// clearDir removes what directory rel holds in the rootfs.
func clearDir(root *os.Root, rel string) error {
	f, err := root.Open(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return nil // not a directory: the diff's entry replaces it
	}
	for _, n := range names {
		if err := root.RemoveAll(path.Join(rel, n)); err != nil {
			return err
		}
	}
	return nil
}

// replace removes what is at rel unless it is a directory and keepDir.
func replace(root *os.Root, rel string, keepDir bool) error {
	fi, err := root.Lstat(rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.IsDir() && keepDir:
		return nil
	}
	return root.RemoveAll(rel)
}

func applyDiffEntry(root *os.Root, e diffEntry, hdr *tar.Header, r io.Reader, buf []byte, chown bool) error {
	if e.kind == diffWhiteout {
		return root.RemoveAll(e.rel)
	}
	if dir := path.Dir(e.rel); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if err := replace(root, e.rel, e.kind == diffDir); err != nil {
		return err
	}
	switch e.kind {
	case diffDir:
		if err := root.Mkdir(e.rel, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		return nil // setMeta once its content is in place
	case diffReg:
		f, err := root.OpenFile(e.rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = io.CopyBuffer(struct{ io.Writer }{f}, io.LimitReader(r, hdr.Size), buf)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		return setMeta(root, e.rel, hdr, chown)
	case diffSymlink:
		if err := root.Symlink(e.link, e.rel); err != nil {
			return err
		}
		if chown {
			return root.Lchown(e.rel, hdr.Uid, hdr.Gid)
		}
		return nil
	case diffLink:
		return root.Link(e.link, e.rel)
	case diffFifo:
		d, err := root.Open(path.Dir(e.rel))
		if err != nil {
			return err
		}
		err = unix.Mkfifoat(int(d.Fd()), path.Base(e.rel), 0o600)
		d.Close()
		if err != nil {
			return err
		}
		return setMeta(root, e.rel, hdr, chown)
	}
	return nil
}

// setMeta gives a file or directory the entry's owner, mode and time
// (the mode after the owner: chown clears set-id bits).
func setMeta(root *os.Root, rel string, hdr *tar.Header, chown bool) error {
	if chown {
		if err := root.Lchown(rel, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	}
	if err := root.Chmod(rel, fs.FileMode(hdr.Mode&0o777)|modeBits(hdr.Mode)); err != nil {
		return err
	}
	if !hdr.ModTime.IsZero() {
		return root.Chtimes(rel, hdr.ModTime, hdr.ModTime)
	}
	return nil
}

// modeBits turns tar's set-id and sticky bits into Go's.
func modeBits(m int64) fs.FileMode {
	var out fs.FileMode
	if m&0o4000 != 0 {
		out |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		out |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		out |= fs.ModeSticky
	}
	return out
}

// removeDeleted removes the paths deleted.files lists (relative, checked)
// from the rootfs; one already gone is fine.
func removeDeleted(root *os.Root, deleted []string) error {
	for _, d := range deleted {
		if err := root.RemoveAll(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: removing %q: %w", engineDeletedFiles, d, fsutil.UnwrapPathError(err))
		}
	}
	return nil
}
