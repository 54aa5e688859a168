package image

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/checkpoint-restore/go-criu/v7/magic"
)

// Images are untrusted input (an archive from elsewhere, a directory
// anyone could have written): every image runcr decodes is bounded before
// it is read. The file's size is checked against its type's limit before
// a byte of it is read, then its entries are streamed through a small
// buffer, each checked against the entry limits, so a pathological image
// (a valid magic then gigabytes of zeros, a sparse file of terabytes) is
// refused in microseconds and a few KiB of memory, naming the file and the
// limit. The limits are far above what CRIU writes for any container this
// machine could run (see imageLimits).

// imageLimit bounds one CRIU image file.
type imageLimit struct {
	// MaxSize is the largest file, in bytes.
	MaxSize int64
	// MaxEntries is the most entries (32-bit size, then a message).
	MaxEntries int
	// MaxEntry is the largest message, in bytes.
	MaxEntry uint32
}

// defaultImageLimit is for image types not in imageLimits.
var defaultImageLimit = imageLimit{MaxSize: 64 << 20, MaxEntries: 1 << 20, MaxEntry: 16 << 20}

// imageLimits by CRIU magic name. What CRIU writes, for scale: inventory
// and stats one entry of < 1 KiB; pstree one entry per process (pid,
// ids, thread ids: ~20 bytes plus 5 per thread); core one entry of a few
// KiB (registers, xsave, signals) per task; ids one small entry; mm one
// entry with ~40 bytes per mapping (vm.max_map_count is 65530 by
// default); pagemap a header and one entry of ~20 bytes per run of pages
// (a 1 GiB heap is a handful of entries, the worst case one per page);
// files and fdinfo one entry per open file; mountpoints one per mount;
// cgroup one entry describing the container's cgroups.
var imageLimits = map[string]imageLimit{
	"INVENTORY": {MaxSize: 1 << 20, MaxEntries: 4, MaxEntry: 1 << 20},
	"STATS":     {MaxSize: 1 << 20, MaxEntries: 4, MaxEntry: 1 << 20},
	"IDS":       {MaxSize: 1 << 20, MaxEntries: 4, MaxEntry: 1 << 20},
	"PSTREE":    {MaxSize: 16 << 20, MaxEntries: 1 << 20, MaxEntry: 4 << 20},
	"CORE":      {MaxSize: 16 << 20, MaxEntries: 16, MaxEntry: 16 << 20},
	"MM":        {MaxSize: 64 << 20, MaxEntries: 16, MaxEntry: 64 << 20},
	// Up to 4M runs of pages (16 GiB in single pages, terabytes in
	// realistic runs); an entry is at most ~40 bytes.
	"PAGEMAP": {MaxSize: 128 << 20, MaxEntries: 4 << 20, MaxEntry: 256},
	"FILES":   {MaxSize: 256 << 20, MaxEntries: 4 << 20, MaxEntry: 1 << 20},
	"FDINFO":  {MaxSize: 64 << 20, MaxEntries: 4 << 20, MaxEntry: 4 << 10},
	"MNTS":    {MaxSize: 64 << 20, MaxEntries: 1 << 20, MaxEntry: 64 << 10},
	"CGROUP":  {MaxSize: 64 << 20, MaxEntries: 16, MaxEntry: 64 << 20},
}

// limitFor is the limit of images with magic name want.
func limitFor(want string) imageLimit {
	if l, ok := imageLimits[want]; ok {
		return l
	}
	return defaultImageLimit
}

// Magics is go-criu's table of image magics, built once.
var Magics = sync.OnceValue(magic.LoadMagic)

// imageScanner streams the entries of one CRIU image within its limits.
type imageScanner struct {
	path    string
	lim     imageLimit
	r       *bufio.Reader
	size    int64 // of the file, checked against lim.MaxSize
	off     int64 // of the next entry
	entries int
	buf     []byte
}

// errImageLimit: an image exceeds a limit of its type.
var errImageLimit = errors.New("exceeds runcr's limit")

// newImageScanner checks f's size against the limit of want and its
// magic, and returns a scanner positioned at its first entry. f is read
// from its current offset, which must be 0.
func newImageScanner(f *os.File, want string) (*imageScanner, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	s := &imageScanner{path: f.Name(), lim: limitFor(want), size: fi.Size()}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("is not a regular file (%s)", fi.Mode().Type())
	}
	if s.size > s.lim.MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, more than the %d a %s image may have", errImageLimit, s.size, s.lim.MaxSize, want)
	}
	s.r = bufio.NewReaderSize(io.LimitReader(f, s.size), 32<<10)
	magics := Magics()
	var word [4]byte
	readWord := func() (uint32, error) {
		if _, err := io.ReadFull(s.r, word[:]); err != nil {
			return 0, fmt.Errorf("truncated: %d bytes, no image header", s.size)
		}
		s.off += 4
		return binary.LittleEndian.Uint32(word[:]), nil
	}
	first, err := readWord()
	if err != nil {
		return nil, err
	}
	if uint64(first) == magics.ByName["IMG_COMMON"] || uint64(first) == magics.ByName["IMG_SERVICE"] {
		if first, err = readWord(); err != nil {
			return nil, err
		}
	}
	if got, ok := magics.ByValue[uint64(first)]; !ok {
		return nil, fmt.Errorf("not a CRIU image (unknown magic %#x)", first)
	} else if got != want {
		return nil, fmt.Errorf("is a %s image, not %s", got, want)
	}
	return s, nil
}

// next returns the next entry's message, valid until the following call,
// or io.EOF after the last.
func (s *imageScanner) next() ([]byte, error) {
	if s.off >= s.size {
		return nil, io.EOF
	}
	var word [4]byte
	if _, err := io.ReadFull(s.r, word[:]); err != nil {
		return nil, fmt.Errorf("truncated: %d stray bytes at offset %d", s.size-s.off, s.off)
	}
	n := binary.LittleEndian.Uint32(word[:])
	if end := s.off + 4 + int64(n); end > s.size {
		return nil, fmt.Errorf("truncated: the entry at offset %d needs %d bytes, the file has %d", s.off, n, s.size-s.off-4)
	}
	if n > s.lim.MaxEntry {
		return nil, fmt.Errorf("%w: the entry at offset %d is %d bytes, more than the %d an entry may have", errImageLimit, s.off, n, s.lim.MaxEntry)
	}
	if s.entries++; s.entries > s.lim.MaxEntries {
		return nil, fmt.Errorf("%w: more than %d entries (at offset %d)", errImageLimit, s.lim.MaxEntries, s.off)
	}
	if cap(s.buf) < int(n) {
		s.buf = make([]byte, n)
	}
	b := s.buf[:n]
	if _, err := io.ReadFull(s.r, b); err != nil {
		return nil, fmt.Errorf("reading the entry at offset %d: %w", s.off, err)
	}
	s.off += 4 + int64(n)
	return b, nil
}

// checkFraming checks that f starts with magic want (after CRIU's common
// or service magic) and is a whole sequence of entries, each a 32-bit
// little-endian size and that many bytes, within the limits of want
// (imageLimits). It reads f through a small buffer from its start.
func checkFraming(f *os.File, want string) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	s, err := newImageScanner(f, want)
	if err != nil {
		return err
	}
	for {
		if _, err := s.next(); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
	}
}
