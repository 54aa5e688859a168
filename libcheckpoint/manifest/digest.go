package manifest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/cespare/xxhash/v2"
	"github.com/zeebo/xxh3"
	"golang.org/x/sys/unix"

	"github.com/runcr/runcr/libcheckpoint/internal/fsutil"
)

// Image digests. A complete manifest written since runcr records every
// image file's size and digest (Manifest.Images), computed once CRIU is
// done and the container runs again or is gone; when the checkpoint
// ends the container, the memory images are hashed as CRIU writes them
// (digest_tail.go). restore, restore --import and inspect --verify check
// them before CRIU reads a byte, and refuse a damaged image naming the
// file.
// The digest is not cryptographic: it finds damage (a flipped page, a
// truncated or swapped file), not a forger, who could rewrite the
// manifest as well. Images without a manifest (runc's) or with one older
// than digests are not checked, as before.
//
// The digest (ImageFile.Digest, "xxh3-64m:" and 16 hex digits) is
// defined so that one file can be hashed on all CPUs, straight from the
// page cache:
//
//	the file is cut into chunks of 64 MiB (67108864 bytes), the last one
//	shorter; an empty file has no chunk. Each chunk's digest is
//	XXH3-64 (seed 0) of its bytes; the file's digest is XXH3-64 (seed 0)
//	of the chunks' digests in file order, each as 8 bytes little-endian.
//
// A damaged file (a flipped page, a flipped bit, chunks swapped, cut or
// added) goes unnoticed only if its digest comes out the same, which for
// damage (not a forger's choice) has a chance of about 2^-64, as with
// the XXH64 of the whole file before. Files of at least digestMmapMin
// bytes are mapped, 64 MiB at a time, and hashed straight from the page
// cache (no copy into a buffer: a read() of 1 GiB from tmpfs alone took
// longer than hashing it mapped), their chunks on up to min(4,
// GOMAXPROCS) goroutines; smaller ones, and ones with holes (mapping a
// hole of a tmpfs file allocates its pages), are read through a 1 MiB
// buffer. Either way no file is read whole into memory.
//
// Manifests written before (runcr up to 18fe524) record "xxh64" instead:
// XXH64 (seed 0) of the whole file, 16 hex digits. They are still
// checked, by that digest.

// ErrDamagedImage: an image file differs from what the manifest records.
var ErrDamagedImage = errors.New("damaged checkpoint image")

// ImageFile is what a manifest records of one image file.
type ImageFile struct {
	Size int64 `json:"size"`
	// Digest is the file's digest, digestPrefix and 16 hex digits (see
	// above); written since runcr hashes by chunks.
	Digest string `json:"digest,omitempty"`
	// XXH64 is the file's xxh64 digest (seed 0), 16 hex digits, as
	// manifests written before Digest record it; checked when Digest is
	// not there.
	XXH64 string `json:"xxh64,omitempty"`
}

const (
	// DigestAlgorithm names the digest a checkpoint records.
	DigestAlgorithm = "xxh3-64m"
	digestPrefix    = DigestAlgorithm + ":"
	// digestChunk is the span of a file hashed on its own: part of the
	// digest's definition, never to change.
	digestChunk = 64 << 20
	// digestWindow: the part of a mapped chunk hashed before it is
	// dropped from the mapping.
	digestWindow = 16 << 20
	// digestMmapMin: files at least this big are mapped, smaller ones
	// read (a mapping costs more than it saves on a small file).
	digestMmapMin = 1 << 20
	// digestBufSize: reads of image files while hashing.
	digestBufSize = 1 << 20
)

// Unhashed tells the files of an image directory that are not images:
// the manifest and its temporary copies, CRIU's logs (restore adds its
// own), restore's statistics, and the bundle's config.json and the size
// declaration an archive carries (unpacked by tar, they are there too).
func Unhashed(name string) bool {
	return name == File || strings.HasPrefix(name, "."+File+".") ||
		strings.HasSuffix(name, ".log") || name == "stats-restore" || name == BundleConfigFile ||
		name == SizesFile
}

// DigestImages hashes every regular image file of dir, on up to 4 CPUs,
// as a checkpoint records them in its manifest (Manifest.Images), with
// the digest by chunks.
func DigestImages(dir string) (map[string]ImageFile, error) {
	return DigestImagesTailed(dir, nil)
}

// DigestImagesTailed is DigestImages, with the first chunks of some files
// hashed already (ImageTail); it closes pre's files.
func DigestImagesTailed(dir string, pre map[string]TailedSums) (map[string]ImageFile, error) {
	defer func() {
		for _, p := range pre {
			p.f.Close()
		}
	}()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && !Unhashed(e.Name()) {
			names = append(names, e.Name())
		}
	}
	out := make(map[string]ImageFile, len(names))
	err = hashFiles(dir, names, nil, pre, func(name string, f ImageFile, err error) error {
		if err != nil {
			return err
		}
		out[name] = f
		return nil
	})
	return out, err
}

// digestHex is the 16 hex digits of a 64-bit digest.
func digestHex(sum uint64) string {
	s := strconv.FormatUint(sum, 16)
	return strings.Repeat("0", 16-len(s)) + s
}

// chunkDigests combines the chunks' digests into the file's digest.
type chunkDigests struct {
	h   xxh3.Hasher
	buf [8]byte
}

func (c *chunkDigests) add(sum uint64) {
	binary.LittleEndian.PutUint64(c.buf[:], sum)
	c.h.Write(c.buf[:])
}

func (c *chunkDigests) digest() string { return digestPrefix + digestHex(c.h.Sum64()) }

// ImageHasher computes the digest of what is written to it, as a file's
// (ImageFile.Digest): restore --import hashes each file as it unpacks it.
type ImageHasher struct {
	chunk   xxh3.Hasher
	inChunk int
	size    int64
	top     chunkDigests
}

func NewImageHasher() *ImageHasher { return &ImageHasher{} }

func (h *ImageHasher) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), digestChunk-h.inChunk)
		h.chunk.Write(p[:k])
		h.inChunk += k
		h.size += int64(k)
		p = p[k:]
		if h.inChunk == digestChunk {
			h.top.add(h.chunk.Sum64())
			h.chunk.Reset()
			h.inChunk = 0
		}
	}
	return n, nil
}

// file is what the manifest records of the bytes written so far.
func (h *ImageHasher) File() ImageFile {
	top := h.top
	if h.inChunk > 0 {
		top.add(h.chunk.Sum64())
	}
	return ImageFile{Size: h.size, Digest: top.digest()}
}

// hashedFile is one file being hashed: mapped and cut into chunks, or
// read whole by one worker.
type hashedFile struct {
	name, path string
	f          *os.File
	fd         int // f's
	size       int64
	legacy     bool // xxh64 of the whole file, read
	mapped     bool // its chunks are mapped and hashed one by one
	sums       []uint64
	left       atomic.Int32 // chunks not hashed yet
	mu         sync.Mutex
	err        error // the first of its chunks'
}

// hashJob is one chunk of a mapped file (chunk >= 0), or a whole file to
// read (chunk < 0).
type hashJob struct {
	f     *hashedFile
	chunk int
}

// hashWorkers: how many goroutines hash.
func hashWorkers() int { return max(1, min(4, runtime.GOMAXPROCS(0))) }

// hashFiles hashes the named files of dir and calls done once for each
// (one call at a time), with its size and digest, or with the error that
// kept it from being hashed, which names the file; done's first error
// stops the hashing and is returned. With want, a file whose size is not want's is not hashed
// (done gets its size and no digest), and a file want records only an
// xxh64 digest of is hashed so. With pre, the first chunks of a file
// whose digests it holds (of the same inode, as long) are not hashed
// again.
func hashFiles(dir string, names []string, want map[string]ImageFile, pre map[string]TailedSums, done func(name string, f ImageFile, err error) error) error {
	workers := hashWorkers() // chunks, not files, are what they share
	jobs := make(chan hashJob, workers)
	// At most workers+2 files are open (and mapped) at once.
	slots := make(chan struct{}, workers+2)
	var (
		mu      sync.Mutex
		first   error
		stopped atomic.Bool
	)
	report := func(name string, f ImageFile, err error) {
		mu.Lock()
		defer mu.Unlock()
		if first != nil {
			return
		}
		if e := done(name, f, err); e != nil {
			first = e
			stopped.Store(true)
		}
	}
	finish := func(hf *hashedFile) {
		var res ImageFile
		err := hf.err
		if err == nil {
			err = hf.sameSize()
		}
		if err == nil {
			res = ImageFile{Size: hf.size}
			var top chunkDigests
			for _, s := range hf.sums {
				top.add(s)
			}
			res.Digest = top.digest()
		}
		hf.f.Close()
		<-slots
		report(hf.name, res, err)
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte // for the files it reads, when there are
			for j := range jobs {
				hf := j.f
				if j.chunk < 0 {
					var res ImageFile
					var err error
					if !stopped.Load() {
						if buf == nil {
							buf = make([]byte, digestBufSize)
						}
						res, err = readDigest(hf, buf)
					}
					hf.f.Close()
					<-slots
					if !stopped.Load() {
						report(hf.name, res, err)
					}
					continue
				}
				if !stopped.Load() {
					if err := hashChunk(hf, j.chunk); err != nil {
						hf.mu.Lock()
						if hf.err == nil {
							hf.err = err
						}
						hf.mu.Unlock()
					}
				}
				if hf.left.Add(-1) == 0 {
					finish(hf)
				}
			}
		}()
	}
	for _, name := range names {
		if stopped.Load() {
			break
		}
		slots <- struct{}{}
		hf, size, err := openHashed(dir, name, want)
		if hf == nil {
			<-slots
			report(name, ImageFile{Size: size}, err)
			continue
		}
		if !hf.mapped {
			jobs <- hashJob{hf, -1}
			continue
		}
		n := int((hf.size + digestChunk - 1) / digestChunk)
		hf.sums = make([]uint64, n)
		k := hf.hashedBefore(pre[name])
		if k == n {
			finish(hf)
			continue
		}
		hf.left.Store(int32(n - k))
		for i := k; i < n; i++ {
			jobs <- hashJob{hf, i}
		}
	}
	close(jobs)
	wg.Wait()
	return first
}

// hashedBefore takes the digests of hf's first chunks from p, if p is of
// hf's file and covers only whole chunks of it, and tells how many.
func (hf *hashedFile) hashedBefore(p TailedSums) int {
	st, err := statOf(hf.f)
	//nolint:unconvert // Stat_t.Dev and Ino are not uint64 on every GOARCH
	if len(p.sums) == 0 || err != nil || uint64(st.Dev) != p.dev || uint64(st.Ino) != p.ino || int64(len(p.sums))*digestChunk > hf.size {
		return 0
	}
	return copy(hf.sums, p.sums)
}

// openHashed opens dir/name to be hashed, and maps it when it is big and
// has no holes. It returns no hashedFile when the file cannot be opened
// (the error), or its size is not the one want records (that size).
func openHashed(dir, name string, want map[string]ImageFile) (*hashedFile, int64, error) {
	path := filepath.Join(dir, name)
	f, err := fsutil.OpenRegular(path)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	size := fi.Size()
	w, listed := want[name]
	if listed && size != w.Size {
		f.Close()
		return nil, size, nil
	}
	hf := &hashedFile{name: name, path: path, f: f, fd: int(f.Fd()), size: size}
	if listed && w.Digest == "" && w.XXH64 != "" {
		hf.legacy = true
		return hf, size, nil
	}
	if size < digestMmapMin {
		return hf, size, nil
	}
	// A hole reads as zeros, but mapping it on tmpfs allocates its pages
	// (for good): a file with fewer blocks than bytes, with holes, is read.
	// (SEEK_HOLE would tell too, but takes 6 ms per GiB on tmpfs.) Blocks
	// allocated past the end could hide a hole; they take as much memory
	// as mapping the hole would.
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Blocks*512 < size {
		return hf, size, nil
	}
	hf.mapped = true
	return hf, size, nil
}

// hashChunk maps chunk i of hf and hashes it. Each chunk has its own
// mapping: goroutines faulting in the pages of one mapping wait for each
// other (measured on 2 CPUs: two took as long as one), of a mapping each
// they do not. The pages are faulted in as they are read (prefaulting a
// chunk with MADV_POPULATE_READ was slower: it holds the lock that
// mapping and unmapping the other chunks take). Should the file shrink
// meanwhile (truncated by someone else), reading past its new end faults
// (SIGBUS): that is an error naming the file, not a crash.
func hashChunk(hf *hashedFile, i int) error {
	off := int64(i) * digestChunk
	n := int(min(hf.size-off, digestChunk))
	data, err := unix.Mmap(hf.fd, off, n, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("%s: mapping bytes %d to %d: %w", hf.path, off, off+int64(n), err)
	}
	defer func() { _ = unix.Munmap(data) }()
	return hashMapped(hf, i, data)
}

// hashMapped hashes data, chunk i of hf, mapped: a fault (the file
// shrank) is an error.
func hashMapped(hf *hashedFile, i int, data []byte) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if _, fault := r.(interface{ Addr() uintptr }); !fault {
				panic(r)
			}
			off := int64(i) * digestChunk
			err = fmt.Errorf("%s: reading bytes %d to %d faulted: the file shrank while it was read", hf.path, off, off+int64(len(data)))
		}
	}()
	// In windows, each dropped from the mapping once hashed: the pages
	// stay in the page cache, but runcr's resident set holds one window
	// per worker, not a whole chunk.
	h := xxh3.New()
	for w := 0; w < len(data); w += digestWindow {
		win := data[w:min(len(data), w+digestWindow)]
		_, _ = h.Write(win)
		_ = unix.Madvise(win, unix.MADV_DONTNEED)
	}
	hf.sums[i] = h.Sum64()
	return nil
}

// readDigest reads and hashes hf whole, through buf: the digest by
// chunks, or with legacy the xxh64 of older manifests. A file that grows
// meanwhile is hashed to its size at the start; one that shrinks is of
// another size.
func readDigest(hf *hashedFile, buf []byte) (ImageFile, error) {
	r := io.NewSectionReader(hf.f, 0, hf.size) // at 0, whatever the file's offset
	if hf.legacy {
		h := xxhash.New()
		n, err := io.CopyBuffer(h, struct{ io.Reader }{r}, buf)
		if err != nil {
			return ImageFile{}, err
		}
		if n < hf.size {
			return ImageFile{Size: n}, nil
		}
		return ImageFile{Size: n, XXH64: digestHex(h.Sum64())}, hf.sameSize()
	}
	h := NewImageHasher()
	n, err := io.CopyBuffer(h, struct{ io.Reader }{r}, buf)
	if err != nil {
		return ImageFile{}, err
	}
	if n < hf.size {
		return ImageFile{Size: n}, nil // it shrank: of another size
	}
	return h.File(), hf.sameSize()
}

// sameSize fails if hf is no longer the size it was when it was opened:
// what was hashed is not the file.
func (hf *hashedFile) sameSize() error {
	fi, err := hf.f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != hf.size {
		return fmt.Errorf("%s: its size changed from %d to %d bytes while it was read", hf.path, hf.size, fi.Size())
	}
	return nil
}

// DigestAlgorithms names the digests m records, for inspect --verify.
func DigestAlgorithms(m *Manifest) string {
	var xxh3, xxh64 bool
	for _, f := range m.Images {
		if f.Digest != "" {
			xxh3 = true
		} else if f.XXH64 != "" {
			xxh64 = true
		}
	}
	switch {
	case xxh3 && xxh64:
		return DigestAlgorithm + " and xxh64"
	case xxh64:
		return "xxh64"
	}
	return DigestAlgorithm
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
			return fmt.Errorf("%w: %s: the manifest lists %q, which is not a file of the directory", ErrDamagedImage, filepath.Join(dir, File), name)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if _, listed := m.Images[e.Name()]; !listed && e.Type().IsRegular() && !Unhashed(e.Name()) {
			return fmt.Errorf("%w: %s is not among the images the manifest lists; restore from an intact copy of the checkpoint", ErrDamagedImage, filepath.Join(dir, e.Name()))
		}
	}
	return hashFiles(dir, names, m.Images, nil, func(name string, got ImageFile, err error) error {
		return compareDigest(filepath.Join(dir, name), m.Images[name], got, err, "; restore from an intact copy of the checkpoint")
	})
}

// compareDigest tells whether the file at path, hashed as got (or not
// hashed, err), is what the manifest records (want); hint ends an error.
func compareDigest(path string, want, got ImageFile, err error, hint string) error {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%w: %s is missing%s", ErrDamagedImage, path, hint)
	case err != nil:
		return fmt.Errorf("%w: %w", ErrDamagedImage, err) // err names the file
	case got.Size != want.Size:
		return fmt.Errorf("%w: %s is %d bytes, the manifest records %d%s", ErrDamagedImage, path, got.Size, want.Size, hint)
	case want.Digest != "":
		if got.Digest != want.Digest {
			return fmt.Errorf("%w: %s: its content changed (%s, the manifest records %s)%s", ErrDamagedImage, path, got.Digest, want.Digest, hint)
		}
	case want.XXH64 != "":
		if got.XXH64 != want.XXH64 {
			return fmt.Errorf("%w: %s: its content changed (xxh64 %s, the manifest records %s)%s", ErrDamagedImage, path, got.XXH64, want.XXH64, hint)
		}
	default:
		return fmt.Errorf("%w: %s: the manifest records no digest of it", ErrDamagedImage, path)
	}
	return nil
}

// CheckDigests compares the digests of the files an import unpacked into
// dir with those m records, when it records them: every listed image was
// unpacked, intact, and nothing else but what is not an image. The import
// hashed them as it unpacked them (got); one whose digest the manifest
// records only in an older runcr's xxh64 is read again for that.
func CheckDigests(dir string, m *Manifest, got map[string]ImageFile) error {
	if m.Images == nil {
		return nil
	}
	for name := range got {
		if _, listed := m.Images[name]; !listed && !Unhashed(name) {
			return fmt.Errorf("%w: %s is not among the images the manifest lists", ErrDamagedImage, filepath.Join(dir, name))
		}
	}
	names := slices.Sorted(maps.Keys(m.Images))
	var legacy []string
	for _, name := range names {
		want := m.Images[name]
		path := filepath.Join(dir, name)
		g, ok := got[name]
		switch {
		case !ok:
			return fmt.Errorf("%w: %s: the manifest lists it, the archive does not hold it", ErrDamagedImage, path)
		case want.Digest == "" && want.XXH64 != "" && g.Size == want.Size:
			legacy = append(legacy, name)
			continue
		}
		if err := compareDigest(path, want, g, nil, ""); err != nil {
			return err
		}
	}
	if len(legacy) == 0 {
		return nil
	}
	return hashFiles(dir, legacy, m.Images, nil, func(name string, g ImageFile, err error) error {
		return compareDigest(filepath.Join(dir, name), m.Images[name], g, err, "")
	})
}
