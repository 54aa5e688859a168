package migrate

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// The rootfs is synchronised rsync-fashion: the source lists its tree
// (List), the receiver answers with the paths it lacks or holds in
// another version (Need, which also removes what the source no longer
// has), and the source sends those as a tar (WriteFiles) that the
// receiver unpacks inside an os.Root (ReadFiles). A first round runs
// while the container runs, a second once it is frozen, which then sends
// only what changed in between.

// List lists the directories, regular files and symbolic links under dir,
// sorted, parents first; dir itself is ".". Other kinds of file (devices,
// FIFOs, sockets) are left out: runc makes the container's /dev itself.
func List(dir string) ([]Entry, error) {
	var out []Entry
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path != dir {
				return nil // gone meanwhile: the container runs
			}
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		e, ok := entryOf(rel, fi, path)
		if ok {
			out = append(out, e)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, err
}

func entryOf(rel string, fi os.FileInfo, path string) (Entry, bool) {
	e := Entry{Path: rel, Mode: uint32(fi.Mode())}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		e.UID, e.GID = int(st.Uid), int(st.Gid)
	}
	switch {
	case fi.Mode().IsRegular():
		e.Size = fi.Size()
		e.Mtime = fi.ModTime().UnixNano()
	case fi.Mode()&os.ModeSymlink != 0:
		link, err := os.Readlink(path)
		if err != nil {
			return e, false
		}
		e.Link = link
	case fi.IsDir():
	default:
		return e, false
	}
	return e, true
}

// same reports whether two entries describe the same file (directories:
// same mode and owner; their times change with every file created).
func same(a, b Entry) bool {
	return a.Mode == b.Mode && a.Size == b.Size && a.Link == b.Link && a.UID == b.UID && a.GID == b.GID &&
		(os.FileMode(a.Mode).IsDir() || a.Mtime == b.Mtime)
}

// Need compares the source's listing with the tree in root and returns
// the paths to send and those the target holds but the source doesn't
// (extra), and how many of the source's entries the target holds as they
// are (matched).
func Need(src []Entry, root *os.Root) (need, extra []string, matched int, err error) {
	have := map[string]Entry{}
	walkErr := fs.WalkDir(root.FS(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		e, ok := entryOf(path, fi, "")
		if fi.Mode()&os.ModeSymlink != 0 {
			link, lerr := root.Readlink(path)
			e.Link, ok = link, lerr == nil
		}
		if ok {
			have[path] = e
		}
		return nil
	})
	if walkErr != nil && !errors.Is(walkErr, fs.ErrNotExist) {
		return nil, nil, 0, walkErr
	}
	srcSet := make(map[string]bool, len(src))
	for _, e := range src {
		if e.Path != "." && !validPath(e.Path) {
			return nil, nil, 0, fmt.Errorf("rootfs listing names %q, outside the rootfs", e.Path)
		}
		srcSet[e.Path] = true
		if h, ok := have[e.Path]; ok && same(e, h) {
			matched++
			continue
		}
		need = append(need, e.Path)
	}
	for p := range have {
		if !srcSet[p] {
			extra = append(extra, p)
		}
	}
	// Deepest first, so that removing them works.
	sort.Sort(sort.Reverse(sort.StringSlice(extra)))
	return need, extra, matched, nil
}

// RemoveExtra removes the paths Need called extra.
func RemoveExtra(root *os.Root, extra []string) error {
	for _, p := range extra {
		if err := root.RemoveAll(p); err != nil {
			return err
		}
	}
	return nil
}

func validPath(p string) bool {
	return p != "" && !filepath.IsAbs(p) && filepath.Clean(p) == p && p != ".." && !strings.HasPrefix(p, "../")
}

// WriteFiles writes the files paths of dir as a tar to w. A file gone
// since it was listed is left out; one that shrank is padded (the
// container runs during the first round; the second sends it again).
func WriteFiles(w io.Writer, dir string, paths []string) (int64, error) {
	tw := tar.NewWriter(w)
	var total int64
	buf := make([]byte, 256<<10)
	for _, p := range paths {
		full := filepath.Join(dir, p)
		fi, err := os.Lstat(full)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return total, err
		}
		link := ""
		if fi.Mode()&os.ModeSymlink != 0 {
			if link, err = os.Readlink(full); err != nil {
				continue
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			continue // a kind of file List leaves out
		}
		hdr.Name = p
		hdr.Uname, hdr.Gname = "", ""
		hdr.Format = tar.FormatPAX
		hdr.ModTime = fi.ModTime()
		hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
		if err := tw.WriteHeader(hdr); err != nil {
			return total, err
		}
		if hdr.Typeflag == tar.TypeReg {
			f, err := os.Open(full)
			if err != nil {
				f = nil
			}
			var n int64
			if f != nil {
				n, _ = io.CopyBuffer(tw, io.LimitReader(f, hdr.Size), buf)
				f.Close()
			}
			if n < hdr.Size {
				if _, err := io.CopyN(tw, zeros{}, hdr.Size-n); err != nil {
					return total, err
				}
			}
			total += hdr.Size
		}
	}
	return total, tw.Close()
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// ReadFiles unpacks the tar r into root, replacing what is there, and
// refuses to unpack more than limit bytes of file contents. Every name is
// resolved inside root (os.Root), so no entry can write outside it.
func ReadFiles(r io.Reader, root *os.Root, limit int64) (int64, error) {
	tr := tar.NewReader(r)
	var total int64
	buf := make([]byte, 256<<10)
	type dirTime struct {
		name string
		t    time.Time
	}
	var dirs []dirTime
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return total, err
		}
		name := filepath.Clean(hdr.Name)
		if name != "." && !validPath(name) {
			return total, fmt.Errorf("rootfs entry %q is outside the rootfs", hdr.Name)
		}
		mode := os.FileMode(hdr.Mode).Perm()
		if hdr.Mode&0o4000 != 0 {
			mode |= os.ModeSetuid
		}
		if hdr.Mode&0o2000 != 0 {
			mode |= os.ModeSetgid
		}
		if hdr.Mode&0o1000 != 0 {
			mode |= os.ModeSticky
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if fi, err := root.Lstat(name); err == nil && !fi.IsDir() {
				if err := root.Remove(name); err != nil {
					return total, err
				}
			}
			if err := root.MkdirAll(name, 0o700); err != nil {
				return total, err
			}
			dirs = append(dirs, dirTime{name, hdr.ModTime})
		case tar.TypeReg:
			if total += hdr.Size; total > limit {
				return total, fmt.Errorf("the rootfs exceeds %d bytes, the most the target may take (free space less a reserve)", limit)
			}
			if err := removeNonDir(root, name); err != nil {
				return total, err
			}
			f, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return total, err
			}
			_, err = io.CopyBuffer(f, tr, buf)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return total, err
			}
		case tar.TypeSymlink:
			if err := removeNonDir(root, name); err != nil {
				return total, err
			}
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return total, err
			}
		default:
			continue
		}
		if err := root.Lchown(name, hdr.Uid, hdr.Gid); err != nil && !errors.Is(err, os.ErrPermission) {
			return total, err
		}
		if hdr.Typeflag != tar.TypeSymlink {
			if err := root.Chmod(name, mode); err != nil {
				return total, err
			}
		}
		if hdr.Typeflag == tar.TypeReg {
			if err := root.Chtimes(name, hdr.ModTime, hdr.ModTime); err != nil {
				return total, err
			}
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = root.Chtimes(dirs[i].name, dirs[i].t, dirs[i].t)
	}
	return total, nil
}

// removeNonDir removes name unless it doesn't exist; a directory in the
// way goes with its contents.
func removeNonDir(root *os.Root, name string) error {
	fi, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return root.RemoveAll(name)
	}
	return root.Remove(name)
}
