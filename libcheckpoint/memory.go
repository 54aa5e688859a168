package libcheckpoint

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/runcr/runcr/libcheckpoint/image"
)

type (
	// MemoryMatch is one match of a memory search.
	MemoryMatch = image.MemoryMatch
	// MemoryCounts says what a walk over a process's memory read.
	MemoryCounts = image.MemoryCounts
	// SearchPattern is a compiled memory search pattern.
	SearchPattern = image.SearchPattern
	// InspectedInterface is one network interface of the container.
	InspectedInterface = image.InspectedInterface
)

// ErrStopSearch, returned by a search's callback, ends it without error.
var ErrStopSearch = image.ErrStopSearch

// NewSearchPattern compiles a literal string (regex false) or a regular
// expression in Go's RE2 syntax.
func NewSearchPattern(s string, regex bool) (*SearchPattern, error) {
	return image.NewSearchPattern(s, regex)
}

// MemorySearched is what a search read of one process.
type MemorySearched struct {
	PID    uint32       `json:"pid"`
	Counts MemoryCounts `json:"read"`
}

// processesWithMemory are the pids of c whose memory is in the images:
// pid alone when it is not 0 (an error if it has none).
func (c *Checkpoint) processesWithMemory(pid uint32) ([]uint32, error) {
	var pids []uint32
	for _, p := range c.Inspection.Processes {
		if pid != 0 && p.PID != pid {
			continue
		}
		if _, err := os.Stat(filepath.Join(c.Dir, fmt.Sprintf("pagemap-%d.img", p.PID))); err == nil {
			pids = append(pids, p.PID)
		} else if pid != 0 {
			return nil, fmt.Errorf("%s: pid %d has no memory in the checkpoint (state %s); choose another with --pid", c.Path, pid, p.State)
		}
	}
	if pid != 0 && len(pids) == 0 {
		return nil, fmt.Errorf("%s: no pid %d in the checkpoint; runcr inspect %s lists its processes", c.Path, pid, c.Path)
	}
	return pids, nil
}

// SearchMemory searches the saved memory of process pid of c (of every
// process when pid is 0) for p, calling fn with each match and up to
// context bytes around it (see image.ProcessMemory.Search). Memory is
// streamed: the search holds a few hundred KiB whatever the checkpoint's
// size. fn may return ErrStopSearch.
func (c *Checkpoint) SearchMemory(pid uint32, p *SearchPattern, context int, fn func(MemoryMatch) error) ([]MemorySearched, error) {
	pids, err := c.processesWithMemory(pid)
	if err != nil {
		return nil, err
	}
	var out []MemorySearched
	stopped := false
	for _, pid := range pids {
		if stopped {
			break
		}
		pm, err := image.OpenProcessMemory(c.Dir, pid)
		if err != nil {
			return out, c.Rename(err)
		}
		counts, err := pm.Search(p, context, func(m MemoryMatch) error {
			err := fn(m)
			if errors.Is(err, ErrStopSearch) {
				stopped = true
			}
			return err
		})
		pm.Close()
		out = append(out, MemorySearched{PID: pid, Counts: counts})
		if err != nil {
			return out, c.Rename(err)
		}
	}
	return out, nil
}

// DumpMemory writes the saved memory of process pid of c into directory
// dir, one file per run of contiguous addresses named START-END.bin
// (hexadecimal). dir is created if missing; existing files are never
// overwritten. It returns the names of the files written.
func (c *Checkpoint) DumpMemory(pid uint32, dir string) ([]string, MemoryCounts, error) {
	if pid == 0 {
		return nil, MemoryCounts{}, errors.New("--dump-memory: say whose memory with --pid")
	}
	if _, err := c.processesWithMemory(pid); err != nil {
		return nil, MemoryCounts{}, err
	}
	pm, err := image.OpenProcessMemory(c.Dir, pid)
	if err != nil {
		return nil, MemoryCounts{}, c.Rename(err)
	}
	defer pm.Close()
	names, counts, err := pm.DumpMemory(dir)
	return names, counts, c.Rename(err)
}
