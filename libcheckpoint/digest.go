package libcheckpoint

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/cespare/xxhash/v2"
)

// Image digests. A complete manifest written since runcr records every
// image file's size and xxh64 digest (Manifest.Images), computed once
// CRIU is done and the container runs again or is gone, so the frozen
// time does not grow. restore, restore --import and inspect --verify check
// them before CRIU reads a byte, and refuse a damaged image naming the
// file. xxh64 is not cryptographic: it finds damage (a flipped page, a
// truncated or swapped file), not a forger, who could rewrite the
// manifest as well. Images without a manifest (runc's) or with one older
// than digests are not checked, as before.

// ErrDamagedImage: an image file differs from what the manifest records.
var ErrDamagedImage = errors.New("damaged checkpoint image")

// ImageFile is what a manifest records of one image file.
type ImageFile struct {
	Size int64 `json:"size"`
	// XXH64 is the file's xxh64 digest (seed 0), 16 hex digits.
	XXH64 string `json:"xxh64"`
}

// digestBufSize: reads of image files while hashing.
const digestBufSize = 1 << 20

// unhashed tells the files of an image directory that are not images:
// the manifest and its temporary copies, CRIU's logs (restore adds its
// own), restore's statistics, and the bundle's config.json and the size
// declaration an archive carries (unpacked by tar, they are there too).
func unhashed(name string) bool {
	return name == ManifestFile || strings.HasPrefix(name, "."+ManifestFile+".") ||
		strings.HasSuffix(name, ".log") || name == "stats-restore" || name == ArchiveConfigFile ||
		name == ArchiveSizesFile
}

// DigestImages hashes every regular image file of dir, on up to 4 CPUs,
// as a checkpoint records them in its manifest (Manifest.Images).
func DigestImages(dir string) (map[string]ImageFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && !unhashed(e.Name()) {
			names = append(names, e.Name())
		}
	}
	out := make(map[string]ImageFile, len(names))
	var mu sync.Mutex
	err = forEachFile(names, func(name string) error {
		f, err := digestFile(filepath.Join(dir, name), -1)
		if err != nil {
			return err
		}
		mu.Lock()
		out[name] = f
		mu.Unlock()
		return nil
	})
	return out, err
}

// forEachFile runs fn for every name on up to min(4, CPUs) goroutines and
// returns the first error.
func forEachFile(names []string, fn func(string) error) error {
	workers := min(4, runtime.NumCPU(), len(names))
	ch := make(chan string)
	errs := make(chan error, workers)
	for range workers {
		go func() {
			var first error
			for name := range ch {
				if first == nil {
					first = fn(name)
				}
			}
			errs <- first
		}()
	}
	for _, n := range names {
		ch <- n
	}
	close(ch)
	var first error
	for range workers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// digestFile hashes the file at path; with want >= 0 it stops reading
// past want bytes (the file is then the wrong size anyway).
func digestFile(path string, want int64) (ImageFile, error) {
	f, err := openImage(path)
	if err != nil {
		return ImageFile{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ImageFile{}, err
	}
	if want >= 0 && fi.Size() != want {
		return ImageFile{Size: fi.Size()}, nil
	}
	h := xxhash.New()
	buf := make([]byte, digestBufSize)
	n, err := io.CopyBuffer(h, struct{ io.Reader }{f}, buf)
	if err != nil {
		return ImageFile{}, err
	}
	return ImageFile{Size: n, XXH64: xxh64Hex(h.Sum64())}, nil
}

func xxh64Hex(sum uint64) string {
	s := strconv.FormatUint(sum, 16)
	return strings.Repeat("0", 16-len(s)) + s
}

// VerifyImages checks the image files of dir against m's digests: each
// must be there with its size and digest, and no image file (*.img,
// stats-dump, ...) may have been added. A manifest without digests
// (runc's images have no manifest; older runcr's no digests) passes.
func VerifyImages(dir string, m *Manifest) error {
	if m == nil || m.Images == nil {
		return nil
	}
	names := make([]string, 0, len(m.Images))
	for name := range m.Images {
		if name != filepath.Base(name) || name == "." || name == ".." {
			return fmt.Errorf("%w: %s: the manifest lists %q, which is not a file of the directory", ErrDamagedImage, filepath.Join(dir, ManifestFile), name)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if _, listed := m.Images[e.Name()]; !listed && e.Type().IsRegular() && !unhashed(e.Name()) {
			return fmt.Errorf("%w: %s is not among the images the manifest lists; restore from an intact copy of the checkpoint", ErrDamagedImage, filepath.Join(dir, e.Name()))
		}
	}
	return forEachFile(names, func(name string) error {
		want := m.Images[name]
		path := filepath.Join(dir, name)
		got, err := digestFile(path, want.Size)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("%w: %s is missing; restore from an intact copy of the checkpoint", ErrDamagedImage, path)
		case err != nil:
			return fmt.Errorf("%w: %s: %w", ErrDamagedImage, path, err)
		case got.Size != want.Size:
			return fmt.Errorf("%w: %s is %d bytes, the manifest records %d; restore from an intact copy of the checkpoint", ErrDamagedImage, path, got.Size, want.Size)
		case got.XXH64 != want.XXH64:
			return fmt.Errorf("%w: %s: its content changed (xxh64 %s, the manifest records %s); restore from an intact copy of the checkpoint", ErrDamagedImage, path, got.XXH64, want.XXH64)
		}
		return nil
	})
}

// checkDigests compares the digests of the files an import unpacked into
// dir with those m records, when it records them: every listed image was
// unpacked, intact, and nothing else but what is not an image.
func checkDigests(dir string, m *Manifest, got map[string]ImageFile) error {
	if m.Images == nil {
		return nil
	}
	for name := range got {
		if _, listed := m.Images[name]; !listed && !unhashed(name) {
			return fmt.Errorf("%w: %s is not among the images the manifest lists", ErrDamagedImage, filepath.Join(dir, name))
		}
	}
	names := slices.Sorted(maps.Keys(m.Images))
	for _, name := range names {
		want := m.Images[name]
		path := filepath.Join(dir, name)
		g, ok := got[name]
		switch {
		case !ok:
			return fmt.Errorf("%w: %s: the manifest lists it, the archive does not hold it", ErrDamagedImage, path)
		case g.Size != want.Size:
			return fmt.Errorf("%w: %s is %d bytes, the manifest records %d", ErrDamagedImage, path, g.Size, want.Size)
		case g.XXH64 != want.XXH64:
			return fmt.Errorf("%w: %s: its content changed (xxh64 %s, the manifest records %s)", ErrDamagedImage, path, g.XXH64, want.XXH64)
		}
	}
	return nil
}
