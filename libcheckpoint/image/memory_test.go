package image

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/pagemap"
	"github.com/checkpoint-restore/go-criu/v7/magic"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// memRun is a pagemap entry for the memory tests.
type memRun struct {
	vaddr, pages uint64
	flags        uint32
}

// pagemapOf encodes a pagemap as CRIU 4 writes it (nr_pages in field 5).
func pagemapOf(pagesID uint32, runs []memRun) []byte {
	m := magic.LoadMagic().ByName
	out := binary.LittleEndian.AppendUint32(nil, uint32(m["IMG_COMMON"]))
	out = binary.LittleEndian.AppendUint32(out, uint32(m["PAGEMAP"]))
	add := func(msg proto.Message) {
		b, err := proto.Marshal(msg)
		if err != nil {
			panic(err)
		}
		out = binary.LittleEndian.AppendUint32(out, uint32(len(b)))
		out = append(out, b...)
	}
	add(&pagemap.PagemapHead{PagesId: proto.Uint32(pagesID)})
	for _, r := range runs {
		pe := &pagemap.PagemapEntry{Vaddr: proto.Uint64(r.vaddr), NrPages: proto.Uint32(0), Flags: proto.Uint32(r.flags)}
		unknown := protowire.AppendTag(nil, 5, protowire.VarintType)
		pe.ProtoReflect().SetUnknown(protowire.AppendVarint(unknown, r.pages))
		add(pe)
	}
	return out
}

// writeMemory writes pagemap-PID.img and pages-ID.img into dir: the runs
// flagged present take their pages from data, one after the other.
func writeMemory(t testing.TB, dir string, pid, pagesID uint32, runs []memRun, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("pagemap-%d.img", pid)), pagemapOf(pagesID, runs), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("pages-%d.img", pagesID)), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func pageSize(t testing.TB) uint64 {
	ps := uint64(os.Getpagesize())
	if ps != 4096 {
		t.Skip("the crafted memory assumes 4096-byte pages")
	}
	return ps
}

// search collects the matches of s in pid's memory of dir.
func search(t *testing.T, dir string, pid uint32, s string, regex bool, context int) ([]MemoryMatch, MemoryCounts) {
	t.Helper()
	pm, err := OpenProcessMemory(dir, pid)
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	p, err := NewSearchPattern(s, regex)
	if err != nil {
		t.Fatal(err)
	}
	var out []MemoryMatch
	counts, err := pm.Search(p, context, func(m MemoryMatch) error {
		out = append(out, MemoryMatch{PID: m.PID, Address: m.Address, Match: bytes.Clone(m.Match), Before: bytes.Clone(m.Before), After: bytes.Clone(m.After)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, counts
}

// A match across the boundary of two chunks, one across two pagemap
// entries of contiguous addresses, none across a gap, and the context
// of each.
func TestSearchAcrossChunksAndRuns(t *testing.T) {
	ps := pageSize(t)
	dir := t.TempDir()
	// 100 pages at 1 MiB (chunks of 64 pages: a boundary at page 64),
	// then 2 contiguous pages in another entry, then a gap, then 1 page.
	base := uint64(1 << 20)
	runs := []memRun{{base, 100, PagemapPresent}, {base + 100*ps, 2, PagemapPresent}, {base + 200*ps, 1, PagemapPresent}}
	data := bytes.Repeat([]byte{'.'}, int(103*ps))
	put := func(off uint64, s string) { copy(data[off:], s) }
	put(64*ps-3, "MARKER")  // across the chunk boundary
	put(100*ps-2, "MARKER") // across the two entries
	put(102*ps-3, "MAR")    // the end of the second entry...
	put(102*ps, "KER")      // ...and the gapped page: not a match
	put(5, "MARKER")        // near the start: short before-context
	writeMemory(t, dir, 1, 1, runs, data)

	got, counts := search(t, dir, 1, "MARKER", false, 8)
	want := []uint64{base + 5, base + 64*ps - 3, base + 100*ps - 2}
	if len(got) != len(want) {
		t.Fatalf("matches at %v, want %#x", addrs(got), want)
	}
	for i, m := range got {
		if m.Address != want[i] || string(m.Match) != "MARKER" || m.PID != 1 {
			t.Errorf("match %d: %#x %q, want %#x", i, m.Address, m.Match, want[i])
		}
	}
	if string(got[0].Before) != "....." || string(got[0].After) != "........" {
		t.Errorf("context of the first match: %q [] %q", got[0].Before, got[0].After)
	}
	if string(got[1].Before) != "........" || string(got[1].After) != "........" {
		t.Errorf("context across chunks: %q [] %q", got[1].Before, got[1].After)
	}
	if counts.Pages != 103 || counts.Bytes != 103*ps {
		t.Errorf("counts %+v", counts)
	}

	// A regular expression; an empty match says nothing.
	got, _ = search(t, dir, 1, "M[A-Z]+R", true, 0)
	if len(got) != 4 || string(got[1].Match) != "MARKER" || string(got[3].Match) != "MAR" {
		t.Errorf("regex matches %v", addrs(got))
	}
	if got, _ = search(t, dir, 1, "x*", true, 0); len(got) != 0 {
		t.Errorf("empty matches reported: %v", addrs(got))
	}
}

func addrs(ms []MemoryMatch) []string {
	var s []string
	for _, m := range ms {
		s = append(s, fmt.Sprintf("%#x:%q", m.Address, m.Match))
	}
	return s
}

// Pages kept in the parent images are read from there, through the
// "parent" link, grandparents too; lazy pages and pages no parent holds
// are counted, not read.
func TestMemoryFromParents(t *testing.T) {
	ps := pageSize(t)
	top := t.TempDir()
	gp, parent, child := filepath.Join(top, "gp"), filepath.Join(top, "p"), filepath.Join(top, "c")
	for _, d := range []string{gp, parent, child} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	page := func(s string) []byte {
		b := make([]byte, ps)
		copy(b, s)
		return b
	}
	// The child: page 0 here, pages 1-3 in the parent, page 4 lazy,
	// page 5 in the parent which doesn't have it.
	writeMemory(t, child, 7, 3, []memRun{
		{0x10000, 1, PagemapPresent}, {0x10000 + ps, 3, PagemapParent}, {0x10000 + 4*ps, 1, PagemapLazy}, {0x10000 + 5*ps, 1, PagemapParent},
	}, page("child0"))
	// The parent: page 1 here, 2-3 in the grandparent.
	writeMemory(t, parent, 7, 9, []memRun{{0x10000 + ps, 1, PagemapPresent}, {0x10000 + 2*ps, 2, PagemapParent}}, page("parent1"))
	writeMemory(t, gp, 7, 4, []memRun{{0x10000, 4, PagemapPresent}}, bytes.Join([][]byte{page("gp0"), page("gp1"), page("gp2"), page("gp3")}, nil))
	for _, l := range [][2]string{{"../p", filepath.Join(child, "parent")}, {"../gp", filepath.Join(parent, "parent")}} {
		if err := os.Symlink(l[0], l[1]); err != nil {
			t.Fatal(err)
		}
	}
	got, counts := search(t, child, 7, "(child|parent|gp)[0-9]", true, 0)
	want := []string{"0x10000:\"child0\"", "0x11000:\"parent1\"", "0x12000:\"gp2\"", "0x13000:\"gp3\""}
	if fmt.Sprint(addrs(got)) != fmt.Sprint(want) {
		t.Errorf("matches %v, want %v", addrs(got), want)
	}
	if counts.Pages != 4 || counts.Lazy != 1 || counts.Missing != 1 {
		t.Errorf("counts %+v", counts)
	}

	pm, err := OpenProcessMemory(child, 7)
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	b, found, err := pm.ReadRange(0x10000+ps-2, 0x10000+ps+7, 1<<10)
	if err != nil || !found || string(b) != "\x00\x00parent1" {
		t.Errorf("ReadRange across a parent page: %q %v %v", b, found, err)
	}
	// The dump: one file for the one region, holes for what isn't there.
	out := filepath.Join(top, "dump")
	names, _, err := pm.DumpMemory(out)
	if err != nil || len(names) != 1 || names[0] != "10000-16000.bin" {
		t.Fatalf("DumpMemory: %v %v", names, err)
	}
	data, _ := os.ReadFile(filepath.Join(out, names[0]))
	if uint64(len(data)) != 6*ps || !bytes.HasPrefix(data[3*ps:], []byte("gp3")) || !bytes.Equal(data[4*ps:], make([]byte, 2*ps)) {
		t.Errorf("dumped %d bytes", len(data))
	}
	if _, _, err := pm.DumpMemory(out); err == nil || !strings.Contains(err.Error(), "10000-16000.bin") {
		t.Errorf("a second dump overwrote: %v", err)
	}
	// A loop of parents is refused.
	if err := os.Remove(filepath.Join(parent, "parent")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../c", filepath.Join(parent, "parent")); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenProcessMemory(child, 7); !errors.Is(err, ErrBadImage) || !strings.Contains(err.Error(), "loops") {
		t.Errorf("a loop of parents: %v", err)
	}
}

// Damaged pagemaps are refused naming the file.
func TestProcessMemoryRefusesBadPagemaps(t *testing.T) {
	ps := pageSize(t)
	for _, tc := range []struct {
		name string
		runs []memRun
		data uint64 // bytes of pages
		want string
	}{
		{"unaligned", []memRun{{0x10001, 1, PagemapPresent}}, ps, "not page-aligned"},
		{"overlapping", []memRun{{0x10000, 2, PagemapPresent}, {0x11000, 1, PagemapPresent}}, 3 * ps, "not after"},
		{"past the address space", []memRun{{1 << 63, 1 << 60, PagemapPresent}}, ps, "past the end"},
		{"pages file too short", []memRun{{0x10000, 3, PagemapPresent}}, 2 * ps, "truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeMemory(t, dir, 1, 1, tc.runs, make([]byte, tc.data))
			_, err := OpenProcessMemory(dir, 1)
			if !errors.Is(err, ErrBadImage) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), dir) {
				t.Errorf("got %v, want ErrBadImage saying %q", err, tc.want)
			}
		})
	}
}

// Searching 64 MiB of memory allocates a bounded amount whatever the
// size: the chunk buffer and the window, not the memory.
// RUNCR_SEARCH_BENCH_MIB=1024 searches 1 GiB instead (BENCHMARKS.md).
func TestSearchMemoryIsBounded(t *testing.T) {
	ps := pageSize(t)
	dir := t.TempDir()
	pages := int64(16384) // 64 MiB
	if mib, err := strconv.Atoi(os.Getenv("RUNCR_SEARCH_BENCH_MIB")); err == nil && mib > 0 {
		pages = int64(mib) << 20 / int64(ps)
	}
	start := time.Now()
	// A sparse pages file: zeros, with a marker near the end.
	writeMemory(t, dir, 1, 1, []memRun{{1 << 30, uint64(pages), PagemapPresent}}, nil)
	f, err := os.OpenFile(filepath.Join(dir, "pages-1.img"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(pages * int64(ps)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("needle"), (pages-3)*int64(ps)+17); err != nil {
		t.Fatal(err)
	}
	f.Close()
	p, _ := NewSearchPattern("needle", false)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	pm, err := OpenProcessMemory(dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	counts, err := pm.Search(p, 64, func(MemoryMatch) error { n++; return nil })
	pm.Close()
	runtime.ReadMemStats(&after)
	if err != nil || n != 1 || counts.Pages != uint64(pages) {
		t.Fatalf("search: %d matches, %+v, %v", n, counts, err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("searching %d MiB allocated %d KiB in all, peak heap %d KiB, in %v", uint64(pages)*ps>>20, alloc>>10, after.HeapSys>>10, time.Since(start).Round(time.Millisecond))
	if alloc > 2<<20 {
		t.Errorf("searching %d MiB allocated %d bytes in all, more than 2 MiB", uint64(pages)*ps>>20, alloc)
	}
}

// FuzzPagemapAndSearch: any pagemap and memory either is refused as a
// bad image or is searched without panic, finding exactly the matches a
// search of the whole memory at once finds.
func FuzzPagemapAndSearch(f *testing.F) {
	ps := uint64(os.Getpagesize())
	f.Add(pagemapOf(1, []memRun{{0x1000, 2, PagemapPresent}}), []byte("abcabc"), "bc", uint16(70))
	f.Add(pagemapOf(1, []memRun{{0x1000, 1, PagemapPresent}, {0x2000, 1, PagemapLazy}, {0x3000, 65, PagemapPresent}}), []byte("xyz"), "yz", uint16(4095))
	f.Add([]byte("garbage"), []byte{}, "a", uint16(0))
	f.Fuzz(func(t *testing.T, pm []byte, fill []byte, pat string, at uint16) {
		if pat == "" || len(pat) > 64 {
			return
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "pagemap-1.img"), pm, 0o600); err != nil {
			t.Fatal(err)
		}
		// Enough pages for what a small pagemap lists, the pattern
		// written at offset at and across the end of the first page.
		data := make([]byte, 70*ps)
		for i := range data {
			if len(fill) > 0 {
				data[i] = fill[i%len(fill)]
			}
		}
		copy(data[at:], pat)
		copy(data[ps-1:], pat)
		if err := os.WriteFile(filepath.Join(dir, "pages-1.img"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		m, err := OpenProcessMemory(dir, 1)
		if err != nil {
			if !errors.Is(err, ErrBadImage) {
				t.Fatalf("not ErrBadImage: %v", err)
			}
			return
		}
		defer m.Close()
		// The reference: every region read whole, searched with
		// bytes.Index.
		var want []uint64
		c := m.Cursor()
		var region []byte
		var regionStart uint64
		flush := func() {
			for off := 0; ; {
				i := bytes.Index(region[off:], []byte(pat))
				if i < 0 {
					break
				}
				want = append(want, regionStart+uint64(off+i))
				off += i + len(pat)
			}
			region = region[:0]
		}
		for total := 0; total < 1<<22; {
			a, b, err := c.Next()
			if err != nil {
				break
			}
			if len(region) > 0 && regionStart+uint64(len(region)) != a {
				flush()
			}
			if len(region) == 0 {
				regionStart = a
			}
			region = append(region, b...)
			total += len(b)
		}
		flush()
		p, err := NewSearchPattern(pat, false)
		if err != nil {
			t.Fatal(err)
		}
		var got []uint64
		if _, err := m.Search(p, 3, func(mm MemoryMatch) error {
			got = append(got, mm.Address)
			if len(got) > 1<<16 {
				return ErrStopSearch
			}
			return nil
		}); err != nil && !errors.Is(err, ErrBadImage) {
			t.Fatal(err)
		}
		if len(want) <= 1<<16 && fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("search found %x, want %x", got, want)
		}
	})
}

// DiffMemory compares by contents, page by page: a page rewritten with
// the same bytes is unchanged; pages only in one are added or removed.
func TestDiffMemory(t *testing.T) {
	ps := pageSize(t)
	a, b := t.TempDir(), t.TempDir()
	page := func(s string) []byte {
		p := make([]byte, ps)
		copy(p, s)
		return p
	}
	// a: pages at 0x10000..0x13000; b: drops 0x10000, changes 0x12000,
	// keeps 0x11000 and 0x13000 (0x13000 now in a separate entry), adds
	// 0x20000.
	writeMemory(t, a, 1, 1, []memRun{{0x10000, 4, PagemapPresent}}, bytes.Join([][]byte{page("p0"), page("p1"), page("p2"), page("p3")}, nil))
	writeMemory(t, b, 1, 1, []memRun{{0x11000, 2, PagemapPresent}, {0x13000, 1, PagemapPresent}, {0x20000, 1, PagemapPresent}},
		bytes.Join([][]byte{page("p1"), page("p2 changed"), page("p3"), page("new")}, nil))
	ma, err := OpenProcessMemory(a, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer ma.Close()
	mb, err := OpenProcessMemory(b, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	d, err := DiffMemory(ma, mb)
	if err != nil {
		t.Fatal(err)
	}
	want := MemoryDelta{PID: 1, Changed: 1, Unchanged: 2, Added: 1, Removed: 1, ChangedRanges: [][2]uint64{{0x12000, 0x13000}}}
	if fmt.Sprint(d) != fmt.Sprint(want) {
		t.Errorf("got %+v, want %+v", d, want)
	}
}
