package archive

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/runcr/runcr/libcheckpoint/internal/errdefs"
	"github.com/runcr/runcr/libcheckpoint/manifest"
)

// Imports are bounded by what they claim. An archive runcr writes starts
// with a size declaration (ArchiveSizesFile: every entry's name and size,
// and their total), so an import knows before the first byte of images
// what it will unpack: an entry not declared, or of another size, is
// refused before it is written, and the whole stops at the declared total
// (plus importMargin). Every import, declared or not (archives of an older
// runcr, engines' archives), also stops at a ceiling: --import-limit
// (RUNCR_IMPORT_LIMIT, default DefaultImportLimit), and never more than
// the target file system's free space minus a reserve (importReserve).
// Sizes are checked from each entry's tar header, before it is written.

// SizesFile is the first entry of the archives runcr writes: JSON
// Sizes. It is read, not unpacked.
const SizesFile = manifest.SizesFile

// Sizes declares an archive's entries.
type Sizes struct {
	Version int `json:"version"`
	// Files are the sizes of the entries that follow, by name.
	Files map[string]int64 `json:"files"`
	// Total is the sum of Files.
	Total int64 `json:"total"`
}

const (
	// DefaultImportLimit caps an import when neither --import-limit nor
	// RUNCR_IMPORT_LIMIT is given: 8 GiB, the images of a container of up
	// to about that much memory. Larger checkpoints need the limit raised;
	// the refusal, from the first tar header past it and before anything
	// is written, says how. An archive without a size declaration (an
	// older runcr's, or a hostile one) can make an import write no more.
	DefaultImportLimit int64 = 8 << 30
	// importMargin is what a declared import may exceed its total by.
	importMargin int64 = 1 << 20
	// maxSizesFile bounds the declaration read into memory.
	maxSizesFile = 16 << 20
)

// importReserve is the free space an import leaves on the target's file
// system: 5 % of its size, at least 256 MiB, at most 8 GiB.
func importReserve(fsSize int64) int64 {
	return min(max(fsSize/20, 256<<20), 8<<30)
}

// ParseSize reads a size: bytes, or a number with a K, M, G or T suffix
// (optionally followed by "iB" or "B"; powers of 1024).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "i")
	shift := 0
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k', 'K':
			shift = 10
		case 'm', 'M':
			shift = 20
		case 'g', 'G':
			shift = 30
		case 't', 'T':
			shift = 40
		}
		if shift > 0 {
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v <= 0 || v > (1<<62)>>shift {
		return 0, fmt.Errorf("%q is not a size: give a positive number of bytes, or a number with a K, M, G or T suffix", s)
	}
	return v << shift, nil
}

// importCeiling is the most an import into dir may unpack: limit (""
// is DefaultImportLimit), and at most dir's free space minus the reserve.
// why says which of the two it is, for errors.
func Ceiling(dir, limit string) (ceiling int64, why string, err error) {
	ceiling, why = DefaultImportLimit, "the default --import-limit 8G; raise it with --import-limit or RUNCR_IMPORT_LIMIT"
	if limit != "" {
		if ceiling, err = ParseSize(limit); err != nil {
			return 0, "", errdefs.Invalid("import-limit", "%v", err)
		}
		why = "--import-limit " + limit
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, "", fmt.Errorf("%s: %w", dir, err)
	}
	free := int64(min(st.Bavail*uint64(st.Bsize), 1<<62))
	room := free - importReserve(int64(min(st.Blocks*uint64(st.Bsize), 1<<62)))
	if room < ceiling {
		ceiling = max(room, 0)
		why = fmt.Sprintf("the free space of %s (%d bytes) less a reserve of %d", dir, free, free-ceiling)
	}
	return ceiling, why, nil
}

// importBudget tracks an import against its limits.
type importBudget struct {
	ceiling int64
	why     string
	sizes   *Sizes // the declaration, or nil
	total   int64
}

// admit checks the entry hdr before it is written: declared (when the
// archive declares its entries), of its declared size, within the
// declared total and the ceiling.
func (b *importBudget) admit(name string, hdr *tar.Header) error {
	if hdr.Size < 0 {
		return fmt.Errorf("has a negative size")
	}
	if b.sizes != nil {
		want, ok := b.sizes.Files[name]
		if !ok {
			return fmt.Errorf("is not among the entries %s declares; refused before it was written", SizesFile)
		}
		if hdr.Size != want {
			return fmt.Errorf("is %d bytes, %s declares %d; refused before it was written", hdr.Size, SizesFile, want)
		}
	}
	b.total += hdr.Size
	if b.sizes != nil && b.total > b.sizes.Total+importMargin {
		return fmt.Errorf("makes %d bytes in all, more than the %d %s declares", b.total, b.sizes.Total, SizesFile)
	}
	if b.total > b.ceiling {
		return fmt.Errorf("is %d bytes, which makes %d in all, more than the %d an import has room for here (%s); refused before it was written", hdr.Size, b.total, b.ceiling, b.why)
	}
	return nil
}

// readSizes reads the declaration entry hdr from tr.
func (b *importBudget) readSizes(hdr *tar.Header, tr io.Reader) error {
	if hdr.Size > maxSizesFile {
		return fmt.Errorf("is %d bytes; a size declaration is at most %d", hdr.Size, maxSizesFile)
	}
	var s Sizes
	if err := json.NewDecoder(io.LimitReader(tr, maxSizesFile)).Decode(&s); err != nil {
		return fmt.Errorf("is not a size declaration: %w", err)
	}
	var sum int64
	for name, n := range s.Files {
		if n < 0 || sum+n < sum {
			return fmt.Errorf("declares %q with %d bytes", name, n)
		}
		sum += n
	}
	if s.Version < 1 || sum != s.Total {
		return errors.New("is not a valid size declaration (no version, or its total is not the sum of its files)")
	}
	if s.Total > b.ceiling {
		return fmt.Errorf("declares %d bytes, more than the %d an import may unpack here (%s); nothing was written", s.Total, b.ceiling, b.why)
	}
	b.sizes = &s
	return nil
}
