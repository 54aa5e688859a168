package libcheckpoint

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/runcr/runcr/libcheckpoint/image"
)

// MemoryDelta compares one process's saved memory in two checkpoints.
type MemoryDelta = image.MemoryDelta

// CheckpointDiff is what changed from checkpoint A to checkpoint B of the
// same container (runcr diff).
type CheckpointDiff struct {
	A string `json:"a"`
	B string `json:"b"`
	// ContainerA and ContainerB name the containers, when the checkpoints
	// say (manifest or engine archive).
	ContainerA string `json:"container_a,omitempty"`
	ContainerB string `json:"container_b,omitempty"`
	// Processes are matched by pid (a restore gives them back theirs).
	ProcessesAdded   []InspectedProcess `json:"processes_added"`
	ProcessesRemoved []InspectedProcess `json:"processes_removed"`
	ProcessesChanged []ProcessChange    `json:"processes_changed"`
	// Memory compares the pages of each process in both, by contents;
	// MemoryTotal sums them.
	Memory      []MemoryDelta `json:"memory"`
	MemoryTotal MemoryDelta   `json:"memory_total"`
	// FilesOpened are open in B, not in A (by pid, descriptor and path);
	// FilesClosed the reverse. The same for sockets, by pid, descriptor
	// and what inspect says of them (kind, addresses, state).
	FilesOpened   []OpenFile   `json:"files_opened"`
	FilesClosed   []OpenFile   `json:"files_closed"`
	SocketsOpened []OpenSocket `json:"sockets_opened"`
	SocketsClosed []OpenSocket `json:"sockets_closed"`
	// Rootfs compares the rootfs changes engine archives record
	// (rootfs-diff.tar's paths and deleted.files); nil when neither
	// records any.
	Rootfs *RootfsDelta `json:"rootfs"`
	// Warnings say what could not be compared.
	Warnings []string `json:"warnings,omitempty"`
}

// ProcessChange is a process in both checkpoints that changed.
type ProcessChange struct {
	PID  uint32 `json:"pid"`
	Comm string `json:"comm"`
	// Changes are "FIELD: OLD -> NEW" for the fields that changed: comm,
	// args, state, threads, ppid, cwd.
	Changes []string `json:"changes"`
}

// RootfsDelta compares the rootfs changes two engine archives record.
type RootfsDelta struct {
	// ChangedAdded are paths B's rootfs diff has and A's not;
	// ChangedRemoved the reverse. DeletedAdded and DeletedRemoved the same
	// for deleted files.
	ChangedAdded   []string `json:"changed_added"`
	ChangedRemoved []string `json:"changed_removed"`
	DeletedAdded   []string `json:"deleted_added"`
	DeletedRemoved []string `json:"deleted_removed"`
}

// DiffCheckpoints compares checkpoints a and b (directories or
// archives, see OpenCheckpoint), which should be of the same container.
// Memory is compared page by page, streamed: it holds two chunks of pages
// whatever the checkpoints' size.
func DiffCheckpoints(a, b string) (*CheckpointDiff, error) {
	ca, err := OpenCheckpoint(a, InspectOptions{})
	if err != nil {
		return nil, err
	}
	defer ca.Close()
	cb, err := OpenCheckpoint(b, InspectOptions{})
	if err != nil {
		return nil, err
	}
	defer cb.Close()
	ia, ib := ca.Inspection, cb.Inspection
	d := &CheckpointDiff{
		A: a, B: b, ContainerA: containerOf(ia), ContainerB: containerOf(ib),
		ProcessesAdded: []InspectedProcess{}, ProcessesRemoved: []InspectedProcess{}, ProcessesChanged: []ProcessChange{},
		Memory: []MemoryDelta{},
	}
	if d.ContainerA != d.ContainerB && d.ContainerA != "" && d.ContainerB != "" {
		d.Warnings = append(d.Warnings, fmt.Sprintf("the checkpoints are of different containers (%s and %s): processes are matched by pid all the same", d.ContainerA, d.ContainerB))
	}
	procA := map[uint32]InspectedProcess{}
	for _, p := range ia.Processes {
		procA[p.PID] = p
	}
	inB := map[uint32]bool{}
	for _, p := range ib.Processes {
		inB[p.PID] = true
		old, ok := procA[p.PID]
		if !ok {
			d.ProcessesAdded = append(d.ProcessesAdded, p)
			continue
		}
		if ch := processChanges(old, p); len(ch) > 0 {
			d.ProcessesChanged = append(d.ProcessesChanged, ProcessChange{PID: p.PID, Comm: p.Comm, Changes: ch})
		}
		delta, ok, err := diffProcessMemory(ca, cb, p.PID)
		if err != nil {
			return nil, err
		}
		if ok {
			d.Memory = append(d.Memory, delta)
			t := &d.MemoryTotal
			t.Changed += delta.Changed
			t.Unchanged += delta.Unchanged
			t.Added += delta.Added
			t.Removed += delta.Removed
			t.NotCompared += delta.NotCompared
		}
	}
	for _, p := range ia.Processes {
		if !inB[p.PID] {
			d.ProcessesRemoved = append(d.ProcessesRemoved, p)
		}
	}
	d.FilesOpened, d.FilesClosed = setDiff(ia.Files.RegularFiles, ib.Files.RegularFiles, func(f OpenFile) string {
		return fmt.Sprintf("%d %d %s", f.PID, f.FD, f.Path)
	})
	d.SocketsOpened, d.SocketsClosed = setDiff(ia.Files.Sockets, ib.Files.Sockets, func(s OpenSocket) string {
		return fmt.Sprintf("%d %d %s %s %s %s %s %s %s", s.PID, s.FD, s.Kind, s.Family, s.Type, s.Protocol, s.State, s.Local, s.Peer)
	})
	if ia.Engine != nil || ib.Engine != nil {
		d.Rootfs = rootfsDelta(ia.Engine, ib.Engine)
	}
	d.Warnings = append(d.Warnings, prefixed(a, ia.Warnings)...)
	d.Warnings = append(d.Warnings, prefixed(b, ib.Warnings)...)
	return d, nil
}

func prefixed(p string, ws []string) []string {
	out := make([]string, 0, len(ws))
	for _, w := range ws {
		out = append(out, p+": "+w)
	}
	return out
}

// containerOf names the checkpoint's container, "" if it doesn't say.
func containerOf(ins *Inspection) string {
	if e := ins.Engine; e != nil {
		return firstOf(e.ContainerName, e.ContainerID)
	}
	if m := ins.Manifest; m != nil {
		return m.ContainerID
	}
	return ""
}

// diffProcessMemory compares pid's memory in a and b when both saved it.
func diffProcessMemory(a, b *Checkpoint, pid uint32) (MemoryDelta, bool, error) {
	name := fmt.Sprintf("pagemap-%d.img", pid)
	for _, c := range []*Checkpoint{a, b} {
		if _, err := os.Stat(filepath.Join(c.Dir, name)); err != nil {
			return MemoryDelta{}, false, nil
		}
	}
	ma, err := image.OpenProcessMemory(a.Dir, pid)
	if err != nil {
		return MemoryDelta{}, false, a.Rename(err)
	}
	defer ma.Close()
	mb, err := image.OpenProcessMemory(b.Dir, pid)
	if err != nil {
		return MemoryDelta{}, false, b.Rename(err)
	}
	defer mb.Close()
	d, err := image.DiffMemory(ma, mb)
	if err != nil {
		return d, false, fmt.Errorf("comparing the memory of pid %d: %w", pid, b.Rename(a.Rename(err)))
	}
	return d, true, nil
}

// processChanges lists what changed of a process kept between two
// checkpoints.
func processChanges(a, b InspectedProcess) []string {
	var ch []string
	add := func(field, x, y string) {
		if x != y {
			ch = append(ch, fmt.Sprintf("%s: %s -> %s", field, orDash(x), orDash(y)))
		}
	}
	add("comm", a.Comm, b.Comm)
	add("args", strings.Join(a.Args, " "), strings.Join(b.Args, " "))
	add("state", a.State, b.State)
	add("threads", fmt.Sprint(a.Threads), fmt.Sprint(b.Threads))
	add("ppid", fmt.Sprint(a.PPID), fmt.Sprint(b.PPID))
	add("cwd", a.Cwd, b.Cwd)
	return ch
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// setDiff returns what b has and a not, and what a has and b not, by key.
func setDiff[T any](a, b []T, key func(T) string) (added, removed []T) {
	ka := map[string]bool{}
	for _, x := range a {
		ka[key(x)] = true
	}
	kb := map[string]bool{}
	for _, x := range b {
		kb[key(x)] = true
	}
	added, removed = []T{}, []T{}
	for _, x := range b {
		if !ka[key(x)] {
			added = append(added, x)
		}
	}
	for _, x := range a {
		if !kb[key(x)] {
			removed = append(removed, x)
		}
	}
	return added, removed
}

// rootfsDelta compares the rootfs changes of two engine archives (either
// may be nil: none recorded).
func rootfsDelta(a, b *EngineInfo) *RootfsDelta {
	paths := func(e *EngineInfo) (changed, deleted []string) {
		if e == nil {
			return nil, nil
		}
		if e.RootfsDiff != nil {
			changed = e.RootfsDiff.Paths
		}
		return changed, e.DeletedFiles
	}
	ca, da := paths(a)
	cb, db := paths(b)
	id := func(s string) string { return s }
	r := &RootfsDelta{}
	r.ChangedAdded, r.ChangedRemoved = setDiff(ca, cb, id)
	r.DeletedAdded, r.DeletedRemoved = setDiff(da, db, id)
	for _, s := range [][]string{r.ChangedAdded, r.ChangedRemoved, r.DeletedAdded, r.DeletedRemoved} {
		slices.Sort(s)
	}
	return r
}
