package image

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/pagemap"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/runcr/runcr/libcheckpoint/internal/errdefs"
	"github.com/runcr/runcr/libcheckpoint/internal/fsutil"
)

// CheckPagesComplete refuses images whose memory is cut short: every
// pagemap-*.img lists the pages stored in its pages-N.img, and a pages file
// shorter than that makes CRIU 4.2's restorer retry its read forever (a
// hung restore writing gigabytes of log) instead of failing. Pages kept in
// a parent (pre-dump) or on a page server are not counted.
func CheckPagesComplete(dir string) error {
	maps, err := filepath.Glob(filepath.Join(dir, "pagemap-*.img"))
	if err != nil {
		return err
	}
	pageSize := uint64(os.Getpagesize())
	for _, m := range maps {
		id, want, err := pagesInMap(m, pageSize)
		if err != nil {
			return errdefs.Invalid("image-path", "%s is damaged: %v; restore from an intact copy of the checkpoint or make a new one", m, err)
		}
		pages := filepath.Join(dir, fmt.Sprintf("pages-%d.img", id))
		fi, err := os.Stat(pages)
		if err != nil {
			// No pages file: all in the parent or on a page server, or
			// missing, which CRIU reports itself.
			continue
		}
		if uint64(fi.Size()) < want {
			return errdefs.Invalid("image-path", "%s is truncated: %d bytes, but %s lists %d; restore from an intact copy of the checkpoint or make a new one",
				pages, fi.Size(), filepath.Base(m), want)
		}
	}
	return nil
}

// pagesInMap returns the pages file id a pagemap refers to and how many
// bytes of pages it says that file holds. The image is CRIU's two magic
// numbers, then a PagemapHead and PagemapEntry messages, each after its
// 32-bit length; it is streamed within the PAGEMAP limits (imageLimits).
func pagesInMap(path string, pageSize uint64) (id uint32, size uint64, err error) {
	f, err := fsutil.OpenRegular(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	s, err := newImageScanner(f, "PAGEMAP")
	if err != nil {
		if strings.HasPrefix(err.Error(), "is a ") || strings.HasPrefix(err.Error(), "not a CRIU") {
			return 0, 0, fmt.Errorf("not a CRIU pagemap image (wrong magic): %w", err)
		}
		return 0, 0, err
	}
	var head pagemap.PagemapHead
	var pe pagemap.PagemapEntry
	for i := 0; ; i++ {
		msg, err := s.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if strings.HasPrefix(err.Error(), "truncated") {
				return 0, 0, fmt.Errorf("entry %d is cut short: %w", i, err)
			}
			return 0, 0, err
		}
		if i == 0 {
			if err := proto.Unmarshal(msg, &head); err != nil {
				return 0, 0, fmt.Errorf("header: %w", err)
			}
			continue
		}
		pe.Reset()
		if err := proto.Unmarshal(msg, &pe); err != nil {
			return 0, 0, fmt.Errorf("entry %d: %w", i, err)
		}
		if pagemapFlags(&pe)&PagemapPresent != 0 {
			n := nrPages(&pe)
			if n > math.MaxUint64/pageSize || n*pageSize > math.MaxUint64-size {
				return 0, 0, fmt.Errorf("entry %d: lists more pages than an address space holds", i)
			}
			size += n * pageSize
		}
	}
	if head.PagesId == nil {
		return 0, 0, errors.New("no pagemap header")
	}
	return head.GetPagesId(), size, nil
}

// nrPages is the entry's page count. CRIU 3.x and later write it as the
// 64-bit field 5, nr_pages, leaving field 2 (now compat_nr_pages) zero;
// go-criu v7's pagemap.proto still calls field 2 nr_pages and does not
// know field 5, so read it from the unknown fields.
func nrPages(pe *pagemap.PagemapEntry) uint64 {
	b := pe.ProtoReflect().GetUnknown()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			break
		}
		b = b[n:]
		if num == 5 && typ == protowire.VarintType {
			if v, n := protowire.ConsumeVarint(b); n > 0 {
				return v
			}
			break
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			break
		}
		b = b[n:]
	}
	return uint64(pe.GetNrPages())
}
