package image

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"

	"github.com/runcr/runcr/libcheckpoint/internal/fsutil"
)

// Memory search streams a process's memory (MemoryCursor) through a
// window: the chunk just read plus the last bytes of the one before, so
// that a match across two chunks is found and has its context, and the
// window never holds more than a chunk and 2*MaxSearchContext +
// MaxMatchBytes bytes.

// MaxSearchContext bounds the bytes shown around a match.
const MaxSearchContext = 4096

// MaxMatchBytes bounds the length of a regular expression's match: a
// longer match is cut, and one crossing chunks may be missed.
const MaxMatchBytes = 4096

// ErrStopSearch, returned by a search's callback, ends the search
// without error.
var ErrStopSearch = errors.New("stop the search")

// MemoryMatch is one match of a memory search.
type MemoryMatch struct {
	PID uint32 `json:"pid"`
	// Address is the virtual address of the first byte matched.
	Address uint64 `json:"address"`
	// Match is the bytes matched; Before and After the context around
	// them (as much as is contiguous in the saved memory).
	Match  []byte `json:"match"`
	Before []byte `json:"before"`
	After  []byte `json:"after"`
}

// SearchPattern is what to look for: a literal string or a regular
// expression (Go's RE2 syntax).
type SearchPattern struct {
	re     *regexp.Regexp
	lit    []byte // a literal, searched with bytes.Index
	maxLen int
}

// find is the first match in b, as regexp.FindIndex gives it.
func (p *SearchPattern) find(b []byte) []int {
	if p.lit == nil {
		return p.re.FindIndex(b)
	}
	i := bytes.Index(b, p.lit)
	if i < 0 {
		return nil
	}
	return []int{i, i + len(p.lit)}
}

// NewSearchPattern compiles a literal (regex false) or a regular
// expression.
func NewSearchPattern(s string, regex bool) (*SearchPattern, error) {
	if s == "" {
		return nil, errors.New("the pattern is empty")
	}
	if !regex {
		if len(s) > MaxMatchBytes {
			return nil, fmt.Errorf("the string is %d bytes, more than the %d runcr searches for", len(s), MaxMatchBytes)
		}
		return &SearchPattern{lit: []byte(s), maxLen: len(s)}, nil
	}
	re, err := regexp.Compile(s)
	if err != nil {
		return nil, err
	}
	return &SearchPattern{re: re, maxLen: MaxMatchBytes}, nil
}

// Search calls fn with each match of p in the memory, in address order,
// with up to context bytes (at most MaxSearchContext) before and after.
// The slices of a match are valid during the call only. fn may return
// ErrStopSearch to end the search.
func (m *ProcessMemory) Search(p *SearchPattern, context int, fn func(MemoryMatch) error) (MemoryCounts, error) {
	context = max(0, min(context, MaxSearchContext))
	keep := p.maxLen + context // bytes a match and its context need past its start
	c := m.Cursor()
	w := &searchWindow{p: p, pid: m.PID, context: context, keep: keep, fn: fn}
	w.buf = make([]byte, 0, len(c.buf)+keep+context)
	for {
		vaddr, chunk, err := c.Next()
		if errors.Is(err, io.EOF) {
			err = w.scan(true)
			if errors.Is(err, ErrStopSearch) {
				err = nil
			}
			return c.Counts, err
		}
		if err != nil {
			return c.Counts, err
		}
		if len(w.buf) > 0 && w.base+uint64(len(w.buf)) != vaddr {
			if err := w.scan(true); err != nil {
				if errors.Is(err, ErrStopSearch) {
					err = nil
				}
				return c.Counts, err
			}
			w.buf, w.from = w.buf[:0], 0
		}
		if len(w.buf) == 0 {
			w.base = vaddr
		}
		w.buf = append(w.buf, chunk...)
		if err := w.scan(false); err != nil {
			if errors.Is(err, ErrStopSearch) {
				err = nil
			}
			return c.Counts, err
		}
	}
}

// searchWindow is contiguous memory from address base, searched up to
// from.
type searchWindow struct {
	p             *SearchPattern
	pid           uint32
	context, keep int
	fn            func(MemoryMatch) error
	buf           []byte
	base          uint64
	from          int
}

// scan reports the matches that start at from or later and whose
// context is in the window (all of them when final), then drops what no
// later match needs.
func (w *searchWindow) scan(final bool) error {
	limit := len(w.buf)
	if !final {
		limit -= w.keep
	}
	for w.from < limit {
		loc := w.p.find(w.buf[w.from:])
		if loc == nil {
			w.from = limit
			break
		}
		s, e := w.from+loc[0], w.from+loc[1]
		if s >= limit {
			w.from = limit
			break
		}
		if e == s {
			w.from = s + 1 // an empty match says nothing
			continue
		}
		if e-s > w.p.maxLen {
			e = s + w.p.maxLen
		}
		err := w.fn(MemoryMatch{
			PID: w.pid, Address: w.base + uint64(s), Match: w.buf[s:e],
			Before: w.buf[max(0, s-w.context):s], After: w.buf[e:min(len(w.buf), e+w.context)],
		})
		if err != nil {
			return err
		}
		w.from = e
	}
	if final {
		return nil
	}
	if cut := w.from - w.context; cut > 0 {
		n := copy(w.buf, w.buf[cut:])
		w.buf = w.buf[:n]
		w.base += uint64(cut)
		w.from -= cut
	}
	return nil
}

// DumpMemory writes the saved memory of m into directory dir, one file
// per run of contiguous addresses, named START-END.bin in hexadecimal
// (as /proc/PID/maps names them); pages not in the images are holes
// (zeros). dir is created if missing and must not hold files of those
// names. It returns the files written.
func (m *ProcessMemory) DumpMemory(dir string) ([]string, MemoryCounts, error) {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, MemoryCounts{}, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, MemoryCounts{}, err
	}
	defer root.Close()
	regions := m.Regions()
	var names []string
	var f *os.File
	region := -1
	closeFile := func() error {
		if f == nil {
			return nil
		}
		// Holes at the end still count.
		err := f.Truncate(int64(regions[region][1] - regions[region][0]))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		f = nil
		return err
	}
	c := m.Cursor()
	for {
		vaddr, chunk, err := c.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			_ = closeFile()
			return names, c.Counts, err
		}
		if region < 0 || vaddr >= regions[region][1] {
			if err := closeFile(); err != nil {
				return names, c.Counts, err
			}
			region, _ = slices.BinarySearchFunc(regions, vaddr, func(r [2]uint64, a uint64) int {
				switch {
				case r[1] <= a:
					return -1
				case r[0] > a:
					return 1
				}
				return 0
			})
			name := fmt.Sprintf("%x-%x.bin", regions[region][0], regions[region][1])
			f, err = root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return names, c.Counts, fmt.Errorf("%s: %w; give an empty or new directory", filepath.Join(dir, name), fsutil.UnwrapPathError(err))
			}
			names = append(names, name)
		}
		if _, err := f.WriteAt(chunk, int64(vaddr-regions[region][0])); err != nil {
			_ = closeFile()
			return names, c.Counts, err
		}
	}
	return names, c.Counts, closeFile()
}
