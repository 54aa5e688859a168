package image

import (
	"bytes"
	"errors"
	"io"
)

// MemoryDelta compares the saved memory of one process in two
// checkpoints, page by page, by contents.
type MemoryDelta struct {
	PID uint32 `json:"pid"`
	// Changed pages are saved in both at the same address with different
	// contents; Unchanged with the same. Added pages are saved in the
	// second only, Removed in the first only.
	Changed   uint64 `json:"changed"`
	Unchanged uint64 `json:"unchanged"`
	Added     uint64 `json:"added"`
	Removed   uint64 `json:"removed"`
	// ChangedRanges are the first maxDeltaRanges runs of changed pages,
	// as [start, end) addresses.
	ChangedRanges [][2]uint64 `json:"changed_ranges,omitempty"`
	// NotCompared are pages not in the images of either (lazy, or in
	// parent images that are not there).
	NotCompared uint64 `json:"not_compared,omitempty"`
}

// maxDeltaRanges bounds the changed ranges a MemoryDelta lists.
const maxDeltaRanges = 50

// pageIter yields a process's saved pages one by one, in address order.
type pageIter struct {
	c     *MemoryCursor
	ps    uint64
	vaddr uint64
	chunk []byte
	page  []byte
	done  bool
}

func (it *pageIter) next() error {
	if len(it.chunk) == 0 {
		v, b, err := it.c.Next()
		if errors.Is(err, io.EOF) {
			it.done = true
			return nil
		}
		if err != nil {
			return err
		}
		it.vaddr, it.chunk = v-it.ps, b
	}
	it.vaddr += it.ps
	it.page, it.chunk = it.chunk[:it.ps], it.chunk[it.ps:]
	return nil
}

// DiffMemory compares the memory of a and b (the same process in two
// checkpoints) page by page, streaming both: it holds two chunk buffers
// whatever their size.
func DiffMemory(a, b *ProcessMemory) (MemoryDelta, error) {
	d := MemoryDelta{PID: b.PID}
	ia := &pageIter{c: a.Cursor(), ps: a.pageSize}
	ib := &pageIter{c: b.Cursor(), ps: b.pageSize}
	if err := ia.next(); err != nil {
		return d, err
	}
	if err := ib.next(); err != nil {
		return d, err
	}
	ps := a.pageSize
	for !ia.done || !ib.done {
		switch {
		case ib.done || (!ia.done && ia.vaddr < ib.vaddr):
			d.Removed++
			if err := ia.next(); err != nil {
				return d, err
			}
		case ia.done || ib.vaddr < ia.vaddr:
			d.Added++
			if err := ib.next(); err != nil {
				return d, err
			}
		default:
			if bytes.Equal(ia.page, ib.page) {
				d.Unchanged++
			} else {
				d.Changed++
				n := len(d.ChangedRanges)
				switch {
				case n > 0 && d.ChangedRanges[n-1][1] == ia.vaddr:
					d.ChangedRanges[n-1][1] += ps
				case n < maxDeltaRanges:
					d.ChangedRanges = append(d.ChangedRanges, [2]uint64{ia.vaddr, ia.vaddr + ps})
				}
			}
			if err := ia.next(); err != nil {
				return d, err
			}
			if err := ib.next(); err != nil {
				return d, err
			}
		}
	}
	d.NotCompared = ia.c.Counts.Lazy + ia.c.Counts.Missing + ib.c.Counts.Lazy + ib.c.Counts.Missing
	return d, nil
}
