package image

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/crit"
	criu_core "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-core"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fs"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/inventory"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/mm"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/mnt"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/netdev"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pagemap"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pstree"
	critstats "github.com/checkpoint-restore/go-criu/v7/crit/images/stats"
	"google.golang.org/protobuf/proto"

	"github.com/runcr/runcr/libcheckpoint/internal/fsutil"
	"github.com/runcr/runcr/libcheckpoint/manifest"
)

// ErrBadImage: an image file of a checkpoint is missing, truncated or not
// what its name says; the error names the file.
var ErrBadImage = errors.New("bad checkpoint image")

// Inspection describes a checkpoint image directory: what CRIU saved
// (processes, memory, open files, namespaces) and, from runcr's manifest
// and CRIU's statistics, by what, how and how fast.
type Inspection struct {
	// Dir is the image directory (absolute).
	Dir string `json:"dir"`
	// Manifest is runcr's manifest; nil for images made by runc or by a
	// runcr older than manifests.
	Manifest *manifest.Manifest `json:"manifest"`
	// ImageVersion is CRIU's image format version (inventory.img).
	ImageVersion uint32 `json:"image_version"`
	// LSM is the security module of the dumping host: "apparmor",
	// "selinux" or "none".
	LSM string `json:"lsm"`
	// PageSize is the size of a memory page, in bytes.
	PageSize uint64 `json:"page_size"`
	// Processes are the dumped processes, each parent before its
	// children (depth-first, children by pid).
	Processes []InspectedProcess `json:"processes"`
	// Memory is the sum over Processes.
	Memory MemoryUsage `json:"memory"`
	// Files summarises the processes' open file descriptors.
	Files FilesSummary `json:"files"`
	// Namespaces are those of the root process.
	Namespaces []InspectedNamespace `json:"namespaces"`
	// Interfaces are the network interfaces of the root process's
	// network namespace when the container had its own
	// (netdev-ID.img).
	Interfaces []InspectedInterface `json:"interfaces,omitempty"`
	// Mounts are the mounts of the root process's mount namespace when
	// the container had its own (mountpoints-ID.img), parents first.
	Mounts []InspectedMount `json:"mounts"`
	// Engine is what a container engine's archive (Podman, CRI-O,
	// containerd) says beyond CRIU's images; nil for runcr's archives
	// and image directories.
	Engine *EngineInfo `json:"engine"`
	// Dump is CRIU's dump statistics (stats-dump, else the manifest's);
	// nil when there are none.
	Dump *manifest.DumpReport `json:"dump_stats"`
	// Warnings say what could not be read without making the images
	// unusable (a command line in a parent image, pages on a page server).
	Warnings []string `json:"warnings,omitempty"`
	// Verified is what inspect --verify checked; nil without it.
	Verified *VerifyReport `json:"verified,omitempty"`
}

// InspectedProcess is one dumped process.
type InspectedProcess struct {
	PID  uint32 `json:"pid"`
	PPID uint32 `json:"ppid"`
	PGID uint32 `json:"pgid"`
	SID  uint32 `json:"sid"`
	// Depth is 0 for the root process, 1 for its children, ...
	Depth int `json:"depth"`
	// Threads is the number of threads.
	Threads int `json:"threads"`
	// State is CRIU's task state: "alive", "stopped", "zombie" or "dead".
	State string `json:"state"`
	// Comm is the kernel's name of the command (at most 15 bytes).
	Comm string `json:"comm"`
	// Args is the command line, read from the dumped memory; empty when
	// it could not be read (see Inspection.Warnings).
	Args []string `json:"args,omitempty"`
	// Env is the environment (NAME=VALUE), read from the dumped memory
	// (pages in parent images too), at most maxArgsBytes of it; empty
	// when it could not be read (see Inspection.Warnings).
	Env []string `json:"env,omitempty"`
	// Cwd is the working directory (fs-PID.img), in the container.
	Cwd string `json:"cwd,omitempty"`
	// Memory is what the images hold of the process's memory.
	Memory MemoryUsage `json:"memory"`
}

// MemoryUsage counts memory pages that a restore gives back.
type MemoryUsage struct {
	// Pages is the number of pages saved (listed in the pagemap),
	// wherever their contents are.
	Pages uint64 `json:"pages"`
	// Bytes is Pages times the page size.
	Bytes uint64 `json:"bytes"`
	// PagesInParent are the pages whose contents are in the parent
	// (pre-dump) images.
	PagesInParent uint64 `json:"pages_in_parent,omitempty"`
	// PagesLazy are the pages left to be fetched lazily (--lazy-pages).
	PagesLazy uint64 `json:"pages_lazy,omitempty"`
	// MappedBytes is the size of all mappings, touched or not.
	MappedBytes uint64 `json:"mapped_bytes"`
}

func (m *MemoryUsage) add(o MemoryUsage) {
	m.Pages += o.Pages
	m.Bytes += o.Bytes
	m.PagesInParent += o.PagesInParent
	m.PagesLazy += o.PagesLazy
	m.MappedBytes += o.MappedBytes
}

// FilesSummary summarises open file descriptors. Descriptor tables shared
// by several processes are counted once, under the first process.
type FilesSummary struct {
	// Descriptors is the number of open file descriptors.
	Descriptors int `json:"descriptors"`
	// ByKind counts descriptors per CRIU file kind ("reg", "pipe",
	// "unixsk", "inetsk", "tty", "eventfd", ...).
	ByKind map[string]int `json:"by_kind"`
	// RegularFiles are the descriptors of regular files and directories.
	RegularFiles []OpenFile `json:"regular_files"`
	// Sockets are the socket descriptors.
	Sockets []OpenSocket `json:"sockets"`
}

// OpenFile is a descriptor of a regular file or directory.
type OpenFile struct {
	PID  uint32 `json:"pid"`
	FD   uint32 `json:"fd"`
	Path string `json:"path"`
}

// OpenSocket is a socket descriptor.
type OpenSocket struct {
	PID uint32 `json:"pid"`
	FD  uint32 `json:"fd"`
	// Kind is "unix", "inet", "netlink" or "packet".
	Kind string `json:"kind"`
	// Family is "ipv4" or "ipv6" for inet sockets.
	Family string `json:"family,omitempty"`
	// Type is "stream", "dgram", "seqpacket", "raw", ...
	Type string `json:"type,omitempty"`
	// Protocol is "tcp", "udp", ... for inet sockets, the netlink
	// protocol number for netlink ones.
	Protocol string `json:"protocol,omitempty"`
	// State is the TCP-style state the kernel reports ("LISTEN",
	// "ESTABLISHED", "CLOSE", ...).
	State string `json:"state,omitempty"`
	// Local is the bound address: ADDR:PORT for inet, the path (or
	// "@name" for an abstract name) for unix.
	Local string `json:"local,omitempty"`
	// Peer is the connected address: ADDR:PORT for inet; for unix, the
	// peer's name, or "(outside)" when the peer is not in the checkpoint.
	Peer string `json:"peer,omitempty"`
}

// InspectedNamespace is one namespace of the root process.
type InspectedNamespace struct {
	// Kind is "pid", "net", "mnt", "ipc", "uts", "user", "cgroup" or "time".
	Kind string `json:"kind"`
	// ID is CRIU's id of the namespace within the checkpoint.
	ID uint32 `json:"id"`
	// Own is true when the container has its own namespace of this kind,
	// false when it shared CRIU's (the host's).
	Own bool `json:"own"`
}

// InspectedInterface is one network interface of the container's
// network namespace as CRIU recorded it.
type InspectedInterface struct {
	Name string `json:"name"`
	// Type is CRIU's kind of link: "loopback", "veth", "tun",
	// "extlink", "bridge", "macvlan", "sit", ...
	Type string `json:"type"`
	MTU  uint32 `json:"mtu"`
	// MAC is the link-layer address, when it has one.
	MAC string `json:"mac,omitempty"`
	// Up is the interface's IFF_UP flag.
	Up bool `json:"up"`
}

// InspectedMount is one mount of the container's mount namespace as
// CRIU recorded it.
type InspectedMount struct {
	ID       uint32 `json:"id"`
	ParentID uint32 `json:"parent_id"`
	// Mountpoint is where it is mounted, in the container.
	Mountpoint string `json:"mountpoint"`
	// FSType is the file system type ("proc", "tmpfs", "overlayfs",
	// "cgroup2", ..., or the kernel's name for ones CRIU calls "auto").
	FSType string `json:"fstype"`
	Source string `json:"source"`
	// Root is the mounted subtree of its file system ("/" for all of it).
	Root    string `json:"root"`
	Options string `json:"options,omitempty"`
	// External is a mount from outside the container (a bind mount the
	// runtime set up), which a restore must be given a source for.
	External bool `json:"external"`
}

// maxArgsBytes bounds the command line read from the images, so that a
// corrupt mm image cannot make us read gigabytes.
const maxArgsBytes = 64 << 10

// Task states CRIU records in core-PID.img (compel's task states).
var taskStates = map[uint32]string{1: "alive", 2: "dead", 3: "stopped", 6: "zombie"}

// Inspect describes the checkpoint in image directory dir. It decodes
// CRIU's images with go-criu's crit package and checks each one's framing
// first: a missing, truncated or garbled image gives an error wrapping
// ErrBadImage that names the file.
func Inspect(dir string) (*Inspection, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", abs, fsutil.UnwrapPathError(err))
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory of checkpoint images", abs)
	}
	in := &inspector{
		dir:   abs,
		start: time.Now(),
		ins:   &Inspection{Dir: abs, PageSize: uint64(os.Getpagesize()), Processes: []InspectedProcess{}},
	}
	if err := in.run(); err != nil {
		return nil, err
	}
	return in.ins, nil
}

type inspector struct {
	dir   string
	start time.Time
	ins   *Inspection
	inv   *inventory.InventoryEntry
	// ids are the kernel-object ids of each live process.
	ids map[uint32]*criu_core.TaskKobjIdsEntry
	// files is files.img by file id.
	files map[uint32]*fdinfo.FileEntry
	// unixByIno are the unix sockets of files.img by inode, to name peers.
	unixByIno map[uint32]*fdinfo.FileEntry
}

func (in *inspector) warn(format string, args ...any) {
	in.ins.Warnings = append(in.ins.Warnings, fmt.Sprintf(format, args...))
}

func (in *inspector) run() error {
	m, err := manifest.Read(in.dir)
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(in.dir, manifest.File), err)
	}
	in.ins.Manifest = m
	if m != nil && m.State != manifest.StateComplete {
		in.warn("the manifest says the checkpoint never finished: the images may be partial")
	}
	if _, err := os.Stat(filepath.Join(in.dir, "inventory.img")); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %s holds no checkpoint (no inventory.img)", ErrBadImage, in.dir)
	}
	invs, err := in.decode("inventory.img", "INVENTORY", &inventory.InventoryEntry{})
	if err != nil {
		return err
	}
	if len(invs) != 1 {
		return in.bad("inventory.img", "has %d entries, want 1", len(invs))
	}
	in.inv = invs[0].(*inventory.InventoryEntry)
	in.ins.ImageVersion = in.inv.GetImgVersion()
	in.ins.LSM = map[inventory.Lsmtype]string{
		inventory.Lsmtype_NO_LSM: "none", inventory.Lsmtype_SELINUX: "selinux", inventory.Lsmtype_APPARMOR: "apparmor",
	}[in.inv.GetLsmtype()]

	if err := in.processes(); err != nil {
		return err
	}
	if err := in.openFiles(); err != nil {
		return err
	}
	if err := in.workingDirs(); err != nil {
		return err
	}
	in.namespaces()
	if err := in.interfaces(); err != nil {
		return err
	}
	if err := in.mounts(); err != nil {
		return err
	}
	return in.dumpStats()
}

// maxInspectTime bounds an inspection (every image is bounded too, see
// imageLimits; this bounds their number times their limits).
const maxInspectTime = 30 * time.Second

// inTime refuses to read image name once the inspection took too long.
func (in *inspector) inTime(name string) error {
	if d := time.Since(in.start); d > maxInspectTime {
		return in.bad(name, "not read: the inspection took %v, more than runcr's limit of %v (too many images)", d.Round(time.Millisecond), maxInspectTime)
	}
	return nil
}

// bad is an ErrBadImage error naming the image file.
func (in *inspector) bad(name, format string, args ...any) error {
	return badImage(in.dir, name, format, args...)
}

func (in *inspector) decode(name, want string, entryType proto.Message) ([]proto.Message, error) {
	if err := in.inTime(name); err != nil {
		return nil, err
	}
	return DecodeImage(in.dir, name, want, entryType)
}

func badImage(dir, name, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrBadImage, filepath.Join(dir, name), fmt.Sprintf(format, args...))
}

// maxArgsPagemapEntries: the command line is read from the dumped memory
// only when the pagemap has at most this many entries (crit's reader
// holds them all in memory).
const maxArgsPagemapEntries = 1 << 16

// scanImage streams the entries of image file dir/name, which must carry
// magic want, within its limits (imageLimits), to fn; an error from fn or
// from the framing becomes an ErrBadImage naming the file.
func scanImage(dir, name, want string, fn func(msg []byte) error) error {
	f, err := fsutil.OpenRegular(filepath.Join(dir, name))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %s: missing (%w)", ErrBadImage, filepath.Join(dir, name), os.ErrNotExist)
		}
		return err
	}
	defer f.Close()
	s, err := newImageScanner(f, want)
	if err != nil {
		return badImage(dir, name, "%v", err)
	}
	for {
		msg, err := s.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err == nil {
			err = fn(msg)
		}
		if err != nil {
			return badImage(dir, name, "%v", err)
		}
	}
}

// DecodeImage reads image file dir/name, which must carry magic want,
// with crit and returns its entries (see decodeCriuImage).
func DecodeImage(dir, name, want string, entryType proto.Message) ([]proto.Message, error) {
	img, err := decodeCriuImage(dir, name, want, entryType)
	if err != nil {
		return nil, err
	}
	msgs := make([]proto.Message, 0, len(img.Entries))
	for _, e := range img.Entries {
		msgs = append(msgs, e.Message)
	}
	return msgs, nil
}

// decodeCriuImage reads image file dir/name, which must carry magic want,
// with crit. It checks the framing first (crit trusts the entry sizes it
// reads) and turns a panic in crit into an error. A missing file gives an
// error that is also os.ErrNotExist.
func decodeCriuImage(dir, name, want string, entryType proto.Message) (_ *crit.CriuImage, err error) {
	f, err := fsutil.OpenRegular(filepath.Join(dir, name))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s: missing (%w)", ErrBadImage, filepath.Join(dir, name), os.ErrNotExist)
		}
		return nil, err
	}
	defer f.Close()
	if err := checkFraming(f, want); err != nil {
		return nil, badImage(dir, name, "%v", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			err = badImage(dir, name, "cannot be decoded (crit: %v)", r)
		}
	}()
	img, err := crit.New(f, nil, "", false, false).Decode(entryType)
	if err != nil {
		return nil, badImage(dir, name, "cannot be decoded: %v", err)
	}
	return img, nil
}

// readStats reads CRIU's statistics file dir/name (stats-dump or
// stats-restore) with crit.
func readStats(dir, name string) (*critstats.StatsEntry, error) {
	entries, err := DecodeImage(dir, name, "STATS", &critstats.StatsEntry{})
	if err != nil {
		return nil, err
	}
	if len(entries) != 1 {
		return nil, badImage(dir, name, "has %d entries, want 1", len(entries))
	}
	return entries[0].(*critstats.StatsEntry), nil
}

// processes reads the process tree and each process's memory.
func (in *inspector) processes() error {
	entries, err := in.decode("pstree.img", "PSTREE", &pstree.PstreeEntry{})
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		return in.bad("pstree.img", "lists no process")
	}
	// Check what crit's ExplorePs assumes without checking: unique pids,
	// one root, every parent in the tree, a core image with a task core
	// per process.
	byPID := map[uint32]*pstree.PstreeEntry{}
	roots := 0
	for _, e := range entries {
		p := e.(*pstree.PstreeEntry)
		if _, dup := byPID[p.GetPid()]; dup || p.GetPid() == 0 {
			return in.bad("pstree.img", "lists pid %d twice or as 0", p.GetPid())
		}
		byPID[p.GetPid()] = p
		if p.GetPpid() == 0 {
			roots++
		}
	}
	if roots != 1 {
		return in.bad("pstree.img", "has %d root processes, want 1", roots)
	}
	cores := map[uint32]*criu_core.CoreEntry{}
	for pid, p := range byPID {
		if _, ok := byPID[p.GetPpid()]; !ok && p.GetPpid() != 0 {
			return in.bad("pstree.img", "the parent %d of pid %d is not in the tree", p.GetPpid(), pid)
		}
		name := fmt.Sprintf("core-%d.img", pid)
		cs, err := in.decode(name, "CORE", &criu_core.CoreEntry{})
		if err != nil {
			return err
		}
		if len(cs) == 0 || cs[0].(*criu_core.CoreEntry).GetTc() == nil {
			return in.bad(name, "has no task core")
		}
		cores[pid] = cs[0].(*criu_core.CoreEntry)
	}

	root, err := in.explorePs()
	if err != nil {
		return err
	}
	in.ids = map[uint32]*criu_core.TaskKobjIdsEntry{}
	var walk func(t *crit.PsTree, depth int) error
	walk = func(t *crit.PsTree, depth int) error {
		tc := cores[t.PID].GetTc()
		p := InspectedProcess{
			PID:     t.PID,
			PPID:    byPID[t.PID].GetPpid(),
			PGID:    t.PgID,
			SID:     t.SID,
			Depth:   depth,
			Threads: len(byPID[t.PID].GetThreads()),
			State:   taskStates[tc.GetTaskState()],
			Comm:    t.Comm,
		}
		if p.State == "" {
			p.State = "state " + strconv.FormatUint(uint64(tc.GetTaskState()), 10)
		}
		// Only live tasks have ids, mm and pagemap images; zombies
		// have a core only.
		if p.State == "alive" || p.State == "stopped" {
			if err := in.memory(&p); err != nil {
				return err
			}
		}
		in.ins.Memory.add(p.Memory)
		in.ins.Processes = append(in.ins.Processes, p)
		slices.SortFunc(t.Children, func(a, b *crit.PsTree) int { return int(a.PID) - int(b.PID) })
		for _, c := range t.Children {
			if err := walk(c, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(root, 0)
}

// explorePs builds the tree with crit, whose panics (it indexes without
// checks) become errors.
func (in *inspector) explorePs() (root *crit.PsTree, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = in.bad("pstree.img", "crit cannot build the process tree from it and the core images: %v", r)
		}
	}()
	root, err = crit.New(nil, nil, in.dir, false, false).ExplorePs()
	if err != nil {
		return nil, in.bad("pstree.img", "crit cannot build the process tree: %v", err)
	}
	if root == nil {
		return nil, in.bad("pstree.img", "has no root process")
	}
	return root, nil
}

// memory fills in p's memory and command line from its ids, mm, pagemap
// and pages images.
func (in *inspector) memory(p *InspectedProcess) error {
	name := fmt.Sprintf("ids-%d.img", p.PID)
	ids, err := in.decode(name, "IDS", &criu_core.TaskKobjIdsEntry{})
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return in.bad(name, "is empty")
	}
	in.ids[p.PID] = ids[0].(*criu_core.TaskKobjIdsEntry)

	name = fmt.Sprintf("mm-%d.img", p.PID)
	mms, err := in.decode(name, "MM", &mm.MmEntry{})
	if err != nil {
		return err
	}
	if len(mms) == 0 {
		return in.bad(name, "is empty")
	}
	mmEntry := mms[0].(*mm.MmEntry)
	for _, v := range mmEntry.GetVmas() {
		if v.GetEnd() < v.GetStart() {
			return in.bad(name, "has a mapping ending (%#x) before it starts (%#x)", v.GetEnd(), v.GetStart())
		}
		p.Memory.MappedBytes += v.GetEnd() - v.GetStart()
	}

	name = fmt.Sprintf("pagemap-%d.img", p.PID)
	if _, err := os.Stat(filepath.Join(in.dir, name)); errors.Is(err, os.ErrNotExist) {
		where := ""
		if m := in.ins.Manifest; m != nil && m.Options.PageServer != "" {
			where = " (the pages went to the page server " + m.Options.PageServer + ")"
		}
		in.warn("pid %d: no %s: its memory is not in this directory%s", p.PID, name, where)
		return nil
	}
	// Streamed, not decoded whole: a pagemap may list millions of runs.
	// Their entries are kept for the command line only when few.
	var (
		pagesID     uint32
		present     uint64
		onlyPresent = true
		entries     []*pagemap.PagemapEntry
		i           int
	)
	if err := in.inTime(name); err != nil {
		return err
	}
	err = scanImage(in.dir, name, "PAGEMAP", func(msg []byte) error {
		defer func() { i++ }()
		if i == 0 {
			var head pagemap.PagemapHead
			if err := proto.Unmarshal(msg, &head); err != nil || head.PagesId == nil {
				return errors.New("does not start with a pagemap header")
			}
			pagesID = head.GetPagesId()
			return nil
		}
		pe := &pagemap.PagemapEntry{}
		if err := proto.Unmarshal(msg, pe); err != nil {
			return fmt.Errorf("entry %d is not a pagemap entry: %w", i, err)
		}
		if len(entries) < maxArgsPagemapEntries {
			entries = append(entries, pe)
		} else {
			onlyPresent = false // too many to keep for the command line
		}
		n := nrPages(pe)
		if n > math.MaxUint64/in.ins.PageSize-p.Memory.Pages {
			return errors.New("lists more pages than an address space holds")
		}
		p.Memory.Pages += n
		switch flags := pagemapFlags(pe); {
		case flags&PagemapParent != 0:
			p.Memory.PagesInParent += n
			onlyPresent = false
		case flags&PagemapPresent != 0:
			present += n // PE_LAZY as well: lazy-able, but in the image
		case flags&PagemapLazy != 0:
			p.Memory.PagesLazy += n
			onlyPresent = false
		}
		if n > math.MaxUint32 {
			onlyPresent = false // too many for crit's reader to count
		}
		return nil
	})
	if err != nil {
		return err
	}
	if i == 0 {
		return in.bad(name, "has no header")
	}
	p.Memory.Bytes = p.Memory.Pages * in.ins.PageSize

	pagesName := fmt.Sprintf("pages-%d.img", pagesID)
	fi, err := os.Stat(filepath.Join(in.dir, pagesName))
	switch {
	case errors.Is(err, os.ErrNotExist):
		if present > 0 {
			in.warn("pid %d: %s lists %d pages but there is no %s", p.PID, name, present, pagesName)
		}
		return nil
	case err != nil:
		return err
	case uint64(fi.Size()) < present*in.ins.PageSize:
		return in.bad(pagesName, "truncated: %d bytes, %s lists %d pages (%d bytes)", fi.Size(), name, present, present*in.ins.PageSize)
	}
	in.readEnv(p, mmEntry)
	if !onlyPresent {
		// crit's memory reader counts every pagemap entry as present in
		// pages-ID.img, so it would read the wrong page.
		in.warn("pid %d: command line not read: part of the memory is in parent images or lazy", p.PID)
		return nil
	}
	args, err := in.readArgs(p.PID, mmEntry, entries)
	if err != nil {
		in.warn("pid %d: command line not read: %v", p.PID, err)
		return nil
	}
	p.Args = args
	return nil
}

// CRIU's pagemap entry flags (criu/include/pagemap.h).
const (
	PagemapParent  = 1 << 0
	PagemapLazy    = 1 << 1
	PagemapPresent = 1 << 2
)

// pagemapFlags reads an entry's flags, taking images older than the flags
// field as CRIU does: in the parent if in_parent, else present.
func pagemapFlags(pe *pagemap.PagemapEntry) uint32 {
	if pe.Flags != nil {
		return pe.GetFlags()
	}
	if pe.GetInParent() {
		return PagemapParent
	}
	return PagemapPresent
}

// readArgs reads the command line of pid from its dumped memory with
// crit's memory reader. The reader counts pages with the compat field
// (see nrPages), so its entries get their real counts first.
func (in *inspector) readArgs(pid uint32, m *mm.MmEntry, entries []*pagemap.PagemapEntry) (_ []string, err error) {
	start, end := m.GetMmArgStart(), m.GetMmArgEnd()
	if end <= start {
		return nil, fmt.Errorf("mm-%d.img gives an empty argument area", pid)
	}
	if end-start > maxArgsBytes {
		end = start + maxArgsBytes
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("crit: %v", r)
		}
	}()
	mr, err := crit.NewMemoryReader(in.dir, pid, int(in.ins.PageSize))
	if err != nil {
		return nil, err
	}
	read := mr.GetPagemapEntries()
	if len(read) != len(entries) {
		return nil, fmt.Errorf("pagemap-%d.img changed while being read", pid)
	}
	for i, pe := range read {
		pe.NrPages = proto.Uint32(uint32(nrPages(entries[i])))
	}
	buf, err := mr.GetMemPages(start, end)
	if err != nil {
		return nil, err
	}
	raw := bytes.TrimRight(buf.Bytes(), "\x00")
	if len(raw) == 0 {
		return nil, errors.New("the argument area is not in the images")
	}
	return strings.Split(string(raw), "\x00"), nil
}

// readEnv reads the environment of p from its dumped memory, following
// pages kept in parent images.
func (in *inspector) readEnv(p *InspectedProcess, m *mm.MmEntry) {
	start, end := m.GetMmEnvStart(), m.GetMmEnvEnd()
	if end <= start {
		return
	}
	if err := in.inTime(fmt.Sprintf("pages of pid %d", p.PID)); err != nil {
		in.warn("pid %d: environment not read: %v", p.PID, err)
		return
	}
	pm, err := OpenProcessMemory(in.dir, p.PID)
	if err != nil {
		in.warn("pid %d: environment not read: %v", p.PID, err)
		return
	}
	defer pm.Close()
	raw, found, err := pm.ReadRange(start, end, maxArgsBytes)
	if err != nil || !found {
		if err == nil {
			err = errors.New("the environment area is not in the images")
		}
		in.warn("pid %d: environment not read: %v", p.PID, err)
		return
	}
	for _, v := range bytes.Split(bytes.TrimRight(raw, "\x00"), []byte{0}) {
		if len(v) > 0 {
			p.Env = append(p.Env, string(v))
		}
	}
}

// workingDirs reads each live process's working directory from
// fs-PID.img and files.img.
func (in *inspector) workingDirs() error {
	if in.files == nil {
		return nil
	}
	for i := range in.ins.Processes {
		p := &in.ins.Processes[i]
		if _, ok := in.ids[p.PID]; !ok {
			continue
		}
		name := fmt.Sprintf("fs-%d.img", p.PID)
		if _, err := os.Stat(filepath.Join(in.dir, name)); errors.Is(err, os.ErrNotExist) {
			continue
		}
		entries, err := in.decode(name, "FS", &fs.FsEntry{})
		if err != nil {
			return err
		}
		if len(entries) == 0 {
			return in.bad(name, "is empty")
		}
		cwd := entries[0].(*fs.FsEntry).GetCwdId()
		if f, ok := in.files[cwd]; ok && f.GetReg() != nil {
			p.Cwd = f.GetReg().GetName()
		} else {
			in.warn("pid %d: %s names working directory %d, which files.img does not hold", p.PID, name, cwd)
		}
	}
	return nil
}

// interfaces reads the network interfaces of the root process's network
// namespace when it is the container's own.
func (in *inspector) interfaces() error {
	if len(in.ins.Processes) == 0 {
		return nil
	}
	ids, ok := in.ids[in.ins.Processes[0].PID]
	if !ok || ids.GetNetNsId() == 0 || (in.inv.GetRootIds() != nil && in.inv.GetRootIds().GetNetNsId() == ids.GetNetNsId()) {
		return nil
	}
	name := fmt.Sprintf("netdev-%d.img", ids.GetNetNsId())
	if _, err := os.Stat(filepath.Join(in.dir, name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	entries, err := in.decode(name, "NETDEV", &netdev.NetDeviceEntry{})
	if err != nil {
		return err
	}
	for _, e := range entries {
		d := e.(*netdev.NetDeviceEntry)
		iface := InspectedInterface{Name: d.GetName(), Type: strings.ToLower(d.GetType().String()), MTU: d.GetMtu(), Up: d.GetFlags()&syscall.IFF_UP != 0}
		if _, known := netdev.NdType_name[int32(d.GetType())]; !known {
			iface.Type = "type " + strconv.FormatUint(uint64(d.GetType()), 10)
		}
		if a := d.GetAddress(); len(a) > 0 {
			iface.MAC = net.HardwareAddr(a).String()
		}
		in.ins.Interfaces = append(in.ins.Interfaces, iface)
	}
	return nil
}

// fdKind is CRIU's name of a file kind, in lower case ("reg", "pipe",
// "unixsk", ...).
func fdKind(t fdinfo.FdTypes) string {
	return strings.ToLower(t.String())
}

// openFiles reads each descriptor table (fdinfo-ID.img) once and looks
// its files up in files.img.
func (in *inspector) openFiles() error {
	in.ins.Files = FilesSummary{ByKind: map[string]int{}, RegularFiles: []OpenFile{}, Sockets: []OpenSocket{}}
	if len(in.ids) == 0 {
		return nil
	}
	entries, err := in.decode("files.img", "FILES", &fdinfo.FileEntry{})
	if err != nil {
		return err
	}
	in.files = map[uint32]*fdinfo.FileEntry{}
	in.unixByIno = map[uint32]*fdinfo.FileEntry{}
	for _, e := range entries {
		f := e.(*fdinfo.FileEntry)
		in.files[f.GetId()] = f
		if u := f.GetUsk(); u != nil {
			in.unixByIno[u.GetIno()] = f
		}
	}
	seen := map[uint32]bool{}
	for _, p := range in.ins.Processes {
		ids, ok := in.ids[p.PID]
		if !ok {
			continue
		}
		// Images since CRIU 1.x keep one descriptor table per files id;
		// older ones one per pid.
		table := ids.GetFilesId()
		if !in.inv.GetFdinfoPerId() {
			table = p.PID
		}
		if seen[table] {
			continue
		}
		seen[table] = true
		name := fmt.Sprintf("fdinfo-%d.img", table)
		fds, err := in.decode(name, "FDINFO", &fdinfo.FdinfoEntry{})
		if err != nil {
			return err
		}
		for _, e := range fds {
			fd := e.(*fdinfo.FdinfoEntry)
			in.addFile(p.PID, fd)
		}
	}
	return nil
}

func (in *inspector) addFile(pid uint32, fd *fdinfo.FdinfoEntry) {
	s := &in.ins.Files
	s.Descriptors++
	s.ByKind[fdKind(fd.GetType())]++
	f := in.files[fd.GetId()]
	switch fd.GetType() {
	case fdinfo.FdTypes_REG:
		path := f.GetReg().GetName()
		if path == "" {
			path = "(unknown)"
		}
		s.RegularFiles = append(s.RegularFiles, OpenFile{PID: pid, FD: fd.GetFd(), Path: path})
	case fdinfo.FdTypes_UNIXSK:
		u := f.GetUsk()
		sk := OpenSocket{PID: pid, FD: fd.GetFd(), Kind: "unix", Type: sockType(u.GetType()), State: tcpState(u.GetState()), Local: unixName(u.GetName())}
		if peer := u.GetPeer(); peer != 0 {
			sk.Peer = "(outside)"
			if o, ok := in.unixByIno[peer]; ok {
				if sk.Peer = unixName(o.GetUsk().GetName()); sk.Peer == "" {
					sk.Peer = "(unnamed)"
				}
			}
		}
		s.Sockets = append(s.Sockets, sk)
	case fdinfo.FdTypes_INETSK:
		i := f.GetIsk()
		sk := OpenSocket{PID: pid, FD: fd.GetFd(), Kind: "inet", Type: sockType(i.GetType()), State: tcpState(i.GetState())}
		switch i.GetFamily() {
		case syscall.AF_INET:
			sk.Family = "ipv4"
		case syscall.AF_INET6:
			sk.Family = "ipv6"
		}
		sk.Protocol = map[uint32]string{
			syscall.IPPROTO_TCP: "tcp", syscall.IPPROTO_UDP: "udp", syscall.IPPROTO_UDPLITE: "udplite",
			syscall.IPPROTO_ICMP: "icmp", syscall.IPPROTO_ICMPV6: "icmpv6", syscall.IPPROTO_RAW: "raw",
		}[i.GetProto()]
		sk.Local = hostPort(i.GetSrcAddr(), i.GetSrcPort())
		if i.GetDstPort() != 0 {
			sk.Peer = hostPort(i.GetDstAddr(), i.GetDstPort())
		}
		s.Sockets = append(s.Sockets, sk)
	case fdinfo.FdTypes_NETLINKSK:
		nl := f.GetNlsk()
		s.Sockets = append(s.Sockets, OpenSocket{PID: pid, FD: fd.GetFd(), Kind: "netlink", Protocol: strconv.FormatUint(uint64(nl.GetProtocol()), 10)})
	case fdinfo.FdTypes_PACKETSK:
		pk := f.GetPsk()
		s.Sockets = append(s.Sockets, OpenSocket{PID: pid, FD: fd.GetFd(), Kind: "packet", Type: sockType(pk.GetType())})
	}
}

func sockType(t uint32) string {
	return map[uint32]string{
		syscall.SOCK_STREAM: "stream", syscall.SOCK_DGRAM: "dgram", syscall.SOCK_SEQPACKET: "seqpacket",
		syscall.SOCK_RAW: "raw", syscall.SOCK_RDM: "rdm", syscall.SOCK_PACKET: "packet",
	}[t]
}

// tcpState names the kernel's socket states (include/net/tcp_states.h),
// which unix sockets use as well.
func tcpState(s uint32) string {
	names := []string{
		"", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT",
		"CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV",
	}
	if int(s) < len(names) {
		return names[s]
	}
	return strconv.FormatUint(uint64(s), 10)
}

// unixName shows an abstract name (leading NUL) as "@name".
func unixName(b []byte) string {
	if len(b) > 0 && b[0] == 0 {
		return "@" + strings.ReplaceAll(string(b[1:]), "\x00", "@")
	}
	return string(b)
}

// hostPort formats an address CRIU keeps as 32-bit words holding the
// bytes in network order.
func hostPort(words []uint32, port uint32) string {
	ip := make(net.IP, 4*len(words))
	for i, w := range words {
		binary.LittleEndian.PutUint32(ip[4*i:], w)
	}
	host := "*"
	if len(ip) == net.IPv4len || len(ip) == net.IPv6len {
		host = ip.String()
	}
	return net.JoinHostPort(host, strconv.FormatUint(uint64(port), 10))
}

// namespaces compares the root process's namespaces with CRIU's own,
// which inventory.img records.
func (in *inspector) namespaces() {
	in.ins.Namespaces = []InspectedNamespace{}
	if len(in.ins.Processes) == 0 {
		return
	}
	ids, ok := in.ids[in.ins.Processes[0].PID]
	if !ok {
		return
	}
	host := in.inv.GetRootIds()
	for _, ns := range []struct {
		kind string
		get  func(*criu_core.TaskKobjIdsEntry) uint32
	}{
		{"pid", (*criu_core.TaskKobjIdsEntry).GetPidNsId},
		{"net", (*criu_core.TaskKobjIdsEntry).GetNetNsId},
		{"mnt", (*criu_core.TaskKobjIdsEntry).GetMntNsId},
		{"ipc", (*criu_core.TaskKobjIdsEntry).GetIpcNsId},
		{"uts", (*criu_core.TaskKobjIdsEntry).GetUtsNsId},
		{"user", (*criu_core.TaskKobjIdsEntry).GetUserNsId},
		{"cgroup", (*criu_core.TaskKobjIdsEntry).GetCgroupNsId},
		{"time", (*criu_core.TaskKobjIdsEntry).GetTimeNsId},
	} {
		id := ns.get(ids)
		if id == 0 {
			continue // not recorded (kernel or CRIU without it)
		}
		in.ins.Namespaces = append(in.ins.Namespaces, InspectedNamespace{Kind: ns.kind, ID: id, Own: host == nil || ns.get(host) != id})
	}
}

// dumpStats reads stats-dump, falling back on the manifest's copy (CRIU
// writes the file to the work directory; runcr copies it here).
func (in *inspector) dumpStats() error {
	st, err := ReadDumpStats(in.dir)
	switch {
	case err == nil:
		in.ins.Dump = st.Report()
	case errors.Is(err, os.ErrNotExist):
		if m := in.ins.Manifest; m != nil && m.DumpStats != nil {
			in.ins.Dump = m.DumpStats.Report()
		}
	default:
		return err
	}
	if in.ins.Dump != nil { // an engine archive keeps stats-dump beside checkpoint/
		in.ins.Dump.Profile = inspectedProfile(in.ins.Dump, in.ins.Manifest, in.dir)
	}
	return nil
}

// mounts reads the root process's mount namespace (mountpoints-ID.img).
// There is none when the container shared the host's.
func (in *inspector) mounts() error {
	in.ins.Mounts = []InspectedMount{}
	if len(in.ins.Processes) == 0 {
		return nil
	}
	ids, ok := in.ids[in.ins.Processes[0].PID]
	if !ok || ids.GetMntNsId() == 0 {
		return nil
	}
	name := fmt.Sprintf("mountpoints-%d.img", ids.GetMntNsId())
	if _, err := os.Stat(filepath.Join(in.dir, name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	entries, err := in.decode(name, "MNTS", &mnt.MntEntry{})
	if err != nil {
		return err
	}
	for _, e := range entries {
		m := e.(*mnt.MntEntry)
		fstype := strings.ToLower(mnt.Fstype(m.GetFstype()).String())
		if m.GetFsname() != "" {
			fstype = m.GetFsname()
		} else if _, known := mnt.Fstype_name[int32(m.GetFstype())]; !known {
			fstype = "type " + strconv.FormatUint(uint64(m.GetFstype()), 10)
		}
		in.ins.Mounts = append(in.ins.Mounts, InspectedMount{
			ID: m.GetMntId(), ParentID: m.GetParentMntId(), Mountpoint: m.GetMountpoint(), FSType: fstype,
			Source: m.GetSource(), Root: m.GetRoot(), Options: m.GetOptions(), External: m.GetExtKey() != "" || m.GetExtMount(),
		})
	}
	// CRIU lists children first; a mountpoint sorts after its parent's.
	slices.SortStableFunc(in.ins.Mounts, func(a, b InspectedMount) int { return strings.Compare(a.Mountpoint, b.Mountpoint) })
	return nil
}

// inspectedProfile is the profile inspect shows for a checkpoint in dir:
// the one its manifest recorded, or else CRIU's phases from its dump.log
// (a checkpoint made by runc or an older runcr).
func inspectedProfile(d *manifest.DumpReport, m *manifest.Manifest, dir string) *manifest.FrozenProfile {
	if d == nil {
		return nil
	}
	if m != nil && m.DumpStats != nil && m.DumpStats.Profile != nil {
		return m.DumpStats.Profile
	}
	return manifest.DumpLogProfile(filepath.Join(dir, "dump.log"))
}
