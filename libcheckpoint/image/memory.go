package image

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/pagemap"
	"google.golang.org/protobuf/proto"

	"github.com/runcr/runcr/libcheckpoint/internal/fsutil"
)

// A process's saved memory is its pagemap-PID.img (a header naming
// pages-ID.img, then runs of pages: address, count, flags) and the pages
// of the runs flagged present, one after the other in pages-ID.img. Runs
// flagged "in parent" are in the parent (pre-dump) images, found through
// the image directory's "parent" link, where the same address may again
// be in that image's parent. ProcessMemory streams it: it keeps the runs
// (32 bytes each; a 1 GiB heap is a handful of runs) and reads the pages
// through one buffer of memChunkPages pages, so reading all of a
// process's memory takes the same few hundred KiB however large it is.

// memChunkPages is how many pages ProcessMemory reads at once.
const memChunkPages = 64

// maxParents bounds the chain of parent images followed.
const maxParents = 64

// pageRun is one pagemap entry.
type pageRun struct {
	vaddr, nr uint64
	// off is the offset in the pages file of a present run.
	off   uint64
	flags uint32
}

// memLayer is one image directory's pagemap of the process.
type memLayer struct {
	dir   string
	runs  []pageRun // by address, not overlapping
	pages *os.File  // nil when no run is present
}

// ProcessMemory reads what a checkpoint saved of one process's memory.
type ProcessMemory struct {
	PID      uint32
	pageSize uint64
	// layers[0] is the checkpoint's, layers[1] its parent's, ...
	layers []*memLayer
}

// MemoryCounts says what a walk over a process's memory read.
type MemoryCounts struct {
	// Pages were read; Bytes is Pages times the page size.
	Pages uint64 `json:"pages"`
	Bytes uint64 `json:"bytes"`
	// Lazy pages were left to lazy restore and are not in the images.
	Lazy uint64 `json:"lazy,omitempty"`
	// Missing pages are in parent images that are not there.
	Missing uint64 `json:"missing,omitempty"`
}

// OpenProcessMemory opens the memory images of pid in image directory
// dir and of its parents. It fails with ErrBadImage (and os.ErrNotExist
// when pagemap-PID.img is missing) naming the damaged file.
func OpenProcessMemory(dir string, pid uint32) (*ProcessMemory, error) {
	m := &ProcessMemory{PID: pid, pageSize: uint64(os.Getpagesize())}
	seen := map[string]bool{}
	for d := dir; len(m.layers) <= maxParents; d = filepath.Join(d, "parent") {
		real, err := filepath.EvalSymlinks(d)
		if err != nil {
			if len(m.layers) > 0 && errors.Is(err, os.ErrNotExist) {
				break // no parent images
			}
			m.Close()
			return nil, err
		}
		if seen[real] {
			m.Close()
			return nil, badImage(d, "", "the chain of parent images loops")
		}
		seen[real] = true
		name := fmt.Sprintf("pagemap-%d.img", pid)
		if len(m.layers) > 0 {
			if _, err := os.Stat(filepath.Join(d, name)); errors.Is(err, os.ErrNotExist) {
				break // the process did not exist at the pre-dump
			}
		}
		l, err := loadMemLayer(d, pid, m.pageSize)
		if err != nil {
			m.Close()
			return nil, err
		}
		m.layers = append(m.layers, l)
	}
	return m, nil
}

// Close closes the pages files.
func (m *ProcessMemory) Close() {
	for _, l := range m.layers {
		if l.pages != nil {
			l.pages.Close()
		}
	}
}

// PageSize is the size of a page.
func (m *ProcessMemory) PageSize() uint64 { return m.pageSize }

// loadMemLayer reads pagemap-PID.img of dir (streamed within the PAGEMAP
// limits) and opens the pages file it names.
func loadMemLayer(dir string, pid uint32, pageSize uint64) (*memLayer, error) {
	name := fmt.Sprintf("pagemap-%d.img", pid)
	l := &memLayer{dir: dir}
	var (
		pagesID uint32
		i       int
		off     uint64
		end     uint64 // of the previous run
	)
	err := scanImage(dir, name, "PAGEMAP", func(msg []byte) error {
		defer func() { i++ }()
		if i == 0 {
			var head pagemap.PagemapHead
			if err := proto.Unmarshal(msg, &head); err != nil || head.PagesId == nil {
				return errors.New("does not start with a pagemap header")
			}
			pagesID = head.GetPagesId()
			return nil
		}
		var pe pagemap.PagemapEntry
		if err := proto.Unmarshal(msg, &pe); err != nil {
			return fmt.Errorf("entry %d is not a pagemap entry: %w", i, err)
		}
		r := pageRun{vaddr: pe.GetVaddr(), nr: nrPages(&pe), flags: pagemapFlags(&pe)}
		switch {
		case r.vaddr%pageSize != 0:
			return fmt.Errorf("entry %d: address %#x is not page-aligned", i, r.vaddr)
		case r.nr == 0:
			return nil
		case r.nr > (math.MaxUint64-r.vaddr)/pageSize:
			return fmt.Errorf("entry %d: %d pages at %#x run past the end of the address space", i, r.nr, r.vaddr)
		case r.vaddr < end:
			return fmt.Errorf("entry %d: pages at %#x are not after the previous entry's (which end at %#x)", i, r.vaddr, end)
		}
		end = r.vaddr + r.nr*pageSize
		if r.flags&PagemapPresent != 0 {
			r.off = off
			if r.nr*pageSize > math.MaxInt64-off {
				return fmt.Errorf("entry %d: lists more pages than a file holds", i)
			}
			off += r.nr * pageSize
		}
		l.runs = append(l.runs, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if i == 0 {
		return nil, badImage(dir, name, "has no header")
	}
	if off == 0 {
		return l, nil
	}
	pagesName := fmt.Sprintf("pages-%d.img", pagesID)
	f, err := fsutil.OpenRegular(filepath.Join(dir, pagesName))
	if err != nil {
		return nil, badImage(dir, pagesName, "%s lists %d pages in it: %v", name, off/pageSize, fsutil.UnwrapPathError(err))
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if uint64(fi.Size()) < off {
		f.Close()
		return nil, badImage(dir, pagesName, "truncated: %d bytes, %s lists %d pages (%d bytes)", fi.Size(), name, off/pageSize, off)
	}
	l.pages = f
	return l, nil
}

// find is the run of layer l holding the page at vaddr, or nil and the
// address of the next run (math.MaxUint64 when none).
func (l *memLayer) find(vaddr, pageSize uint64) (*pageRun, uint64) {
	i := sort.Search(len(l.runs), func(i int) bool { return l.runs[i].vaddr+l.runs[i].nr*pageSize > vaddr })
	switch {
	case i == len(l.runs):
		return nil, math.MaxUint64
	case l.runs[i].vaddr <= vaddr:
		return &l.runs[i], 0
	}
	return nil, l.runs[i].vaddr
}

// readPage reads the page at vaddr, looked up from layer li on, into
// buf. When no image holds it (lazy, or in parent images that are not
// there) it says so, and how many pages from vaddr on are as absent.
func (m *ProcessMemory) readPage(li int, vaddr uint64, buf []byte) (found, lazy bool, absent uint64, err error) {
	for ; li < len(m.layers); li++ {
		l := m.layers[li]
		r, next := l.find(vaddr, m.pageSize)
		switch {
		case r == nil:
			return false, false, (next - vaddr) / m.pageSize, nil
		case r.flags&PagemapPresent != 0:
			off := r.off + (vaddr - r.vaddr)
			if _, err := l.pages.ReadAt(buf[:m.pageSize], int64(off)); err != nil {
				return false, false, 0, fmt.Errorf("%w: %s: reading the page at %#x: %w", ErrBadImage, l.pages.Name(), vaddr, err)
			}
			return true, false, 0, nil
		case r.flags&PagemapParent != 0:
			continue
		default:
			return false, true, (r.vaddr + r.nr*m.pageSize - vaddr) / m.pageSize, nil
		}
	}
	return false, false, math.MaxUint64, nil
}

// ReadRange reads the saved memory from start to end (at most max
// bytes); pages not in the images read as zeros. It reports whether any
// page of the range was in the images.
func (m *ProcessMemory) ReadRange(start, end uint64, maxBytes uint64) ([]byte, bool, error) {
	if end <= start {
		return nil, false, nil
	}
	if end-start > maxBytes {
		end = start + maxBytes
	}
	out := make([]byte, 0, end-start)
	page := make([]byte, m.pageSize)
	anyFound := false
	for a := start; a < end; {
		base := a - a%m.pageSize
		found, _, _, err := m.readPage(0, base, page)
		if err != nil {
			return nil, false, err
		}
		if !found {
			clear(page)
		}
		anyFound = anyFound || found
		n := min(end-a, base+m.pageSize-a)
		out = append(out, page[a-base:a-base+n]...)
		a += n
	}
	return out, anyFound, nil
}

// MemoryCursor walks a process's saved memory in address order, in
// chunks of contiguous pages read through one buffer.
type MemoryCursor struct {
	m      *ProcessMemory
	run    int    // of layers[0]
	page   uint64 // within the run
	buf    []byte
	Counts MemoryCounts
}

// Cursor starts a walk over m's memory.
func (m *ProcessMemory) Cursor() *MemoryCursor {
	return &MemoryCursor{m: m, buf: make([]byte, memChunkPages*m.pageSize)}
}

// Next returns the next chunk of contiguous saved pages and its address;
// the chunk is valid until the following call. Chunks come in address
// order; two chunks are contiguous when one ends where the next starts.
// After the last it returns io.EOF.
func (c *MemoryCursor) Next() (uint64, []byte, error) {
	m := c.m
	ps := m.pageSize
	runs := m.layers[0].runs
	for c.run < len(runs) {
		r := runs[c.run]
		if c.page >= r.nr {
			c.run++
			c.page = 0
			continue
		}
		vaddr := r.vaddr + c.page*ps
		n := min(r.nr-c.page, memChunkPages)
		switch {
		case r.flags&PagemapPresent != 0:
			b := c.buf[:n*ps]
			if _, err := m.layers[0].pages.ReadAt(b, int64(r.off+c.page*ps)); err != nil {
				return 0, nil, fmt.Errorf("%w: %s: reading the pages at %#x: %w", ErrBadImage, m.layers[0].pages.Name(), vaddr, err)
			}
			c.page += n
			c.Counts.Pages += n
			c.Counts.Bytes += n * ps
			return vaddr, b, nil
		case r.flags&PagemapParent != 0:
			// Page by page from the parents, up to the first page
			// none holds.
			var got uint64
			for got < n {
				found, lazy, absent, err := m.readPage(1, vaddr+got*ps, c.buf[got*ps:])
				if err != nil {
					return 0, nil, err
				}
				if !found {
					if got == 0 {
						absent = min(absent, r.nr-c.page)
						c.page += absent
						if lazy {
							c.Counts.Lazy += absent
						} else {
							c.Counts.Missing += absent
						}
					}
					break
				}
				got++
			}
			if got == 0 {
				continue
			}
			c.page += got
			c.Counts.Pages += got
			c.Counts.Bytes += got * ps
			return vaddr, c.buf[:got*ps], nil
		default:
			c.Counts.Lazy += r.nr - c.page
			c.page = r.nr
		}
	}
	return 0, nil, io.EOF
}

// Regions are the runs of contiguous saved addresses, as [start, end)
// pairs, in address order.
func (m *ProcessMemory) Regions() [][2]uint64 {
	var out [][2]uint64
	for _, r := range m.layers[0].runs {
		end := r.vaddr + r.nr*m.pageSize
		if n := len(out); n > 0 && out[n-1][1] == r.vaddr {
			out[n-1][1] = end
			continue
		}
		out = append(out, [2]uint64{r.vaddr, end})
	}
	return out
}
