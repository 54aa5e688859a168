package libcheckpoint

import (
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/crit"
	criu_core "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-core"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fown"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/inventory"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/mm"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pagemap"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pipe"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pstree"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/regfile"
	sk_inet "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-inet"
	sk_opts "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-opts"
	sk_unix "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-unix"
	critstats "github.com/checkpoint-restore/go-criu/v7/crit/images/stats"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/vma"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/runcr/runcr/libcheckpoint/image"
	"github.com/runcr/runcr/libcheckpoint/manifest"
)

var (
	u32 = proto.Uint32
	u64 = proto.Uint64
)

// writeImage encodes msgs into dir/name with crit, as CRIU would.
func writeImage(t *testing.T, dir, name, magic string, msgs ...proto.Message) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img := &crit.CriuImage{Magic: magic}
	for _, m := range msgs {
		img.Entries = append(img.Entries, &crit.CriuEntry{Message: m})
	}
	if err := crit.New(nil, f, "", false, false).Encode(img); err != nil {
		t.Fatalf("encoding %s: %v", name, err)
	}
}

func kobjIDs(files, pidNS, netNS uint32) *criu_core.TaskKobjIdsEntry {
	return &criu_core.TaskKobjIdsEntry{
		VmId: u32(1), FilesId: u32(files), FsId: u32(1), SighandId: u32(1),
		PidNsId: u32(pidNS), NetNsId: u32(netNS), MntNsId: u32(3), IpcNsId: u32(4),
		UtsNsId: u32(5), UserNsId: u32(6), CgroupNsId: u32(7),
	}
}

func core(state uint32, comm string) *criu_core.CoreEntry {
	return &criu_core.CoreEntry{
		Mtype: criu_core.CoreEntry_X86_64.Enum(),
		Tc: &criu_core.TaskCoreEntry{
			TaskState: u32(state), ExitCode: u32(0), Personality: u32(0), Flags: u32(0),
			BlkSigset: u64(0), Comm: proto.String(comm),
		},
	}
}

func mmEntry(argStart, argEnd uint64, vmas ...[2]uint64) *mm.MmEntry {
	m := &mm.MmEntry{
		MmStartCode: u64(0), MmEndCode: u64(0), MmStartData: u64(0), MmEndData: u64(0),
		MmStartStack: u64(0), MmStartBrk: u64(0), MmBrk: u64(0),
		MmArgStart: u64(argStart), MmArgEnd: u64(argEnd), MmEnvStart: u64(0), MmEnvEnd: u64(0),
		ExeFileId: u32(1),
	}
	for _, v := range vmas {
		m.Vmas = append(m.Vmas, &vma.VmaEntry{
			Start: u64(v[0]), End: u64(v[1]), Pgoff: u64(0), Shmid: u64(0),
			Prot: u32(3), Flags: u32(0x22), Status: u32(1), Fd: proto.Int64(-1),
		})
	}
	return m
}

// pagemapEntry is an entry as CRIU 4 writes it: the count in field 5
// (unknown to go-criu v7.2.0), compat_nr_pages 0.
func pagemapEntry(vaddr, pages uint64, flags uint32) *pagemap.PagemapEntry {
	pe := &pagemap.PagemapEntry{Vaddr: u64(vaddr), NrPages: u32(0), Flags: u32(flags)}
	b := protowire.AppendTag(nil, 5, protowire.VarintType)
	pe.ProtoReflect().SetUnknown(protowire.AppendVarint(b, pages))
	return pe
}

func fownEntry() *fown.FownEntry {
	return &fown.FownEntry{Uid: u32(0), Euid: u32(0), Signum: u32(0), PidType: u32(0), Pid: u32(0)}
}

func skOpts() *sk_opts.SkOptsEntry {
	return &sk_opts.SkOptsEntry{SoSndbuf: u32(1), SoRcvbuf: u32(1), SoSndTmoSec: u64(0), SoSndTmoUsec: u64(0), SoRcvTmoSec: u64(0), SoRcvTmoUsec: u64(0)}
}

func unixSocket(id, ino, peer uint32, name string) *fdinfo.FileEntry {
	return &fdinfo.FileEntry{Type: fdinfo.FdTypes_UNIXSK.Enum(), Id: u32(id), Usk: &sk_unix.UnixSkEntry{
		Id: u32(id), Ino: u32(ino), Type: u32(unix.SOCK_STREAM), State: u32(1), Flags: u32(0), Uflags: u32(0),
		Backlog: u32(0), Peer: u32(peer), Fown: fownEntry(), Opts: skOpts(), Name: []byte(name),
	}}
}

func fd(id, n uint32, t fdinfo.FdTypes) *fdinfo.FdinfoEntry {
	return &fdinfo.FdinfoEntry{Id: u32(id), Flags: u32(0), Type: t.Enum(), Fd: u32(n)}
}

const testPage = 4096

// craftCheckpoint writes a small checkpoint as CRIU 4 would: pid 1 ("sh",
// command line in its memory) with child 7 (two threads, memory partly in
// a parent image) and a zombie child 9. regPath is the regular file pid 1
// has open.
func craftCheckpoint(t *testing.T, dir, regPath string) {
	if os.Getpagesize() != testPage {
		t.Skipf("the crafted images assume %d-byte pages", testPage)
	}
	writeImage(t, dir, "inventory.img", "INVENTORY", &inventory.InventoryEntry{
		ImgVersion: u32(2), FdinfoPerId: proto.Bool(true), RootIds: kobjIDs(0, 1, 2),
		Lsmtype: inventory.Lsmtype_APPARMOR.Enum(),
	})
	writeImage(t, dir, "pstree.img", "PSTREE",
		&pstree.PstreeEntry{Pid: u32(1), Ppid: u32(0), Pgid: u32(1), Sid: u32(1), Threads: []uint32{1}},
		&pstree.PstreeEntry{Pid: u32(9), Ppid: u32(1), Pgid: u32(1), Sid: u32(1), Threads: []uint32{9}},
		&pstree.PstreeEntry{Pid: u32(7), Ppid: u32(1), Pgid: u32(1), Sid: u32(1), Threads: []uint32{7, 8}},
	)
	writeImage(t, dir, "core-1.img", "CORE", core(1, "sh"))
	writeImage(t, dir, "core-7.img", "CORE", core(1, "sleep"))
	writeImage(t, dir, "core-9.img", "CORE", core(6, "true"))
	// pid 1 has its own pid namespace (11, not the host's 1); both share
	// the host's net namespace (2).
	writeImage(t, dir, "ids-1.img", "IDS", kobjIDs(10, 11, 2))
	writeImage(t, dir, "ids-7.img", "IDS", kobjIDs(20, 11, 2))

	// pid 1: 3 pages at 0x10000 in pages-1.img; its arguments start 100
	// bytes into the second page.
	args := "sh\x00-c\x00echo hi there\x00"
	argStart := uint64(0x10000 + testPage + 100)
	writeImage(t, dir, "mm-1.img", "MM", mmEntry(argStart, argStart+uint64(len(args)), [2]uint64{0x10000, 0x10000 + 8*testPage}))
	writeImage(t, dir, "pagemap-1.img", "PAGEMAP", &pagemap.PagemapHead{PagesId: u32(1)},
		pagemapEntry(0x10000, 1, image.PagemapPresent),
		pagemapEntry(0x10000+testPage, 2, image.PagemapPresent|image.PagemapLazy))
	pages := make([]byte, 3*testPage)
	copy(pages[testPage+100:], args)
	if err := os.WriteFile(filepath.Join(dir, "pages-1.img"), pages, 0o600); err != nil {
		t.Fatal(err)
	}
	// pid 7: 2 pages here, 4 in the parent images; an old-style entry
	// (compat count, no flags).
	writeImage(t, dir, "mm-7.img", "MM", mmEntry(0x20000, 0x20010, [2]uint64{0x20000, 0x20000 + 16*testPage}))
	writeImage(t, dir, "pagemap-7.img", "PAGEMAP", &pagemap.PagemapHead{PagesId: u32(2)},
		pagemapEntry(0x20000, 4, image.PagemapParent),
		&pagemap.PagemapEntry{Vaddr: u64(0x20000 + 4*testPage), NrPages: u32(2)})
	if err := os.WriteFile(filepath.Join(dir, "pages-2.img"), make([]byte, 2*testPage), 0o600); err != nil {
		t.Fatal(err)
	}

	writeImage(t, dir, "files.img", "FILES",
		&fdinfo.FileEntry{Type: fdinfo.FdTypes_REG.Enum(), Id: u32(1), Reg: &regfile.RegFileEntry{
			Id: u32(1), Flags: u32(0), Pos: u64(0), Fown: fownEntry(), Name: proto.String(regPath),
		}},
		&fdinfo.FileEntry{Type: fdinfo.FdTypes_PIPE.Enum(), Id: u32(2), Pipe: &pipe.PipeEntry{
			Id: u32(2), PipeId: u32(77), Flags: u32(0), Fown: fownEntry(),
		}},
		unixSocket(3, 300, 400, "/run/app.sock"),
		unixSocket(4, 400, 300, "\x00abstract"),
		unixSocket(5, 500, 999, ""),
		&fdinfo.FileEntry{Type: fdinfo.FdTypes_INETSK.Enum(), Id: u32(6), Isk: &sk_inet.InetSkEntry{
			Id: u32(6), Ino: u32(600), Family: u32(unix.AF_INET), Type: u32(unix.SOCK_STREAM),
			Proto: u32(unix.IPPROTO_TCP), State: u32(10), SrcPort: u32(8080), DstPort: u32(0),
			Flags: u32(0), Backlog: u32(128), SrcAddr: []uint32{0x0100007f}, // 127.0.0.1
			Fown: fownEntry(), Opts: skOpts(),
		}},
		&fdinfo.FileEntry{Type: fdinfo.FdTypes_INETSK.Enum(), Id: u32(7), Isk: &sk_inet.InetSkEntry{
			Id: u32(7), Ino: u32(700), Family: u32(unix.AF_INET6), Type: u32(unix.SOCK_STREAM),
			Proto: u32(unix.IPPROTO_TCP), State: u32(1), SrcPort: u32(443), DstPort: u32(50000),
			Flags: u32(0), Backlog: u32(0), SrcAddr: []uint32{0, 0, 0, 0x01000000}, // ::1
			DstAddr: []uint32{0x000080fe, 0, 0, 0x02000000}, // fe80::2
			Fown:    fownEntry(), Opts: skOpts(),
		}},
	)
	writeImage(t, dir, "fdinfo-10.img", "FDINFO",
		fd(2, 0, fdinfo.FdTypes_PIPE), fd(2, 1, fdinfo.FdTypes_PIPE), fd(1, 3, fdinfo.FdTypes_REG),
		fd(3, 4, fdinfo.FdTypes_UNIXSK), fd(4, 5, fdinfo.FdTypes_UNIXSK), fd(6, 6, fdinfo.FdTypes_INETSK))
	writeImage(t, dir, "fdinfo-20.img", "FDINFO",
		fd(2, 1, fdinfo.FdTypes_PIPE), fd(5, 3, fdinfo.FdTypes_UNIXSK), fd(7, 4, fdinfo.FdTypes_INETSK))
	writeImage(t, dir, "stats-dump", "STATS", &critstats.StatsEntry{Dump: &critstats.DumpStatsEntry{
		FreezingTime: u32(1500), FrozenTime: u32(25250), MemdumpTime: u32(3000), MemwriteTime: u32(1000),
		PagesScanned: u64(40), PagesSkippedParent: u64(4), PagesWritten: u64(5), PagesLazy: u64(0),
	}})
}

func TestInspectCraftedCheckpoint(t *testing.T) {
	dir := t.TempDir()
	craftCheckpoint(t, dir, "/data/log.txt")
	ins, err := Inspect(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ins.Dir != dir || ins.Manifest != nil || ins.ImageVersion != 2 || ins.LSM != "apparmor" || ins.PageSize != testPage {
		t.Errorf("header: %+v", ins)
	}

	type proc struct {
		pid, ppid     uint32
		depth         int
		threads       int
		state, comm   string
		args          []string
		pages, parent uint64
	}
	var got []proc
	for _, p := range ins.Processes {
		got = append(got, proc{p.PID, p.PPID, p.Depth, p.Threads, p.State, p.Comm, p.Args, p.Memory.Pages, p.Memory.PagesInParent})
	}
	want := []proc{
		{1, 0, 0, 1, "alive", "sh", []string{"sh", "-c", "echo hi there"}, 3, 0},
		{7, 1, 1, 2, "alive", "sleep", nil, 6, 4}, // memory in a parent: no command line
		{9, 1, 1, 1, "zombie", "true", nil, 0, 0},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("processes:\n got  %+v\n want %+v", got, want)
	}
	if len(ins.Warnings) != 1 || !strings.Contains(ins.Warnings[0], "pid 7: command line not read") {
		t.Errorf("warnings: %q", ins.Warnings)
	}

	wantMem := MemoryUsage{Pages: 9, Bytes: 9 * testPage, PagesInParent: 4, MappedBytes: 24 * testPage}
	if ins.Memory != wantMem {
		t.Errorf("memory: got %+v, want %+v", ins.Memory, wantMem)
	}
	if p := ins.Processes[0].Memory; p.Bytes != 3*testPage || p.MappedBytes != 8*testPage {
		t.Errorf("memory of pid 1: %+v", p)
	}

	f := ins.Files
	if f.Descriptors != 9 || !reflect.DeepEqual(f.ByKind, map[string]int{"pipe": 3, "reg": 1, "unixsk": 3, "inetsk": 2}) {
		t.Errorf("files: %d descriptors, %v", f.Descriptors, f.ByKind)
	}
	if want := []OpenFile{{PID: 1, FD: 3, Path: "/data/log.txt"}}; !reflect.DeepEqual(f.RegularFiles, want) {
		t.Errorf("regular files: %+v", f.RegularFiles)
	}
	wantSk := []OpenSocket{
		{PID: 1, FD: 4, Kind: "unix", Type: "stream", State: "ESTABLISHED", Local: "/run/app.sock", Peer: "@abstract"},
		{PID: 1, FD: 5, Kind: "unix", Type: "stream", State: "ESTABLISHED", Local: "@abstract", Peer: "/run/app.sock"},
		{PID: 1, FD: 6, Kind: "inet", Family: "ipv4", Type: "stream", Protocol: "tcp", State: "LISTEN", Local: "127.0.0.1:8080"},
		{PID: 7, FD: 3, Kind: "unix", Type: "stream", State: "ESTABLISHED", Peer: "(outside)"},
		{PID: 7, FD: 4, Kind: "inet", Family: "ipv6", Type: "stream", Protocol: "tcp", State: "ESTABLISHED", Local: "[::1]:443", Peer: "[fe80::2]:50000"},
	}
	if !reflect.DeepEqual(f.Sockets, wantSk) {
		t.Errorf("sockets:\n got  %+v\n want %+v", f.Sockets, wantSk)
	}

	own := map[string]bool{}
	for _, ns := range ins.Namespaces {
		own[ns.Kind] = ns.Own
	}
	// The host's (inventory root_ids) are pid 1, net 2, the rest equal.
	if want := map[string]bool{"pid": true, "net": false, "mnt": false, "ipc": false, "uts": false, "user": false, "cgroup": false}; !reflect.DeepEqual(own, want) {
		t.Errorf("namespaces: %+v", ins.Namespaces)
	}

	wantDump := &DumpReport{FreezingMs: 1.5, FrozenMs: 25.25, MemdumpMs: 3, MemwriteMs: 1, PagesScanned: 40, PagesSkippedParent: 4, PagesWritten: 5}
	if !reflect.DeepEqual(ins.Dump, wantDump) {
		t.Errorf("dump stats: got %+v, want %+v", ins.Dump, wantDump)
	}
}

// An engine archive's checkpoint/ holds no stats-dump (the archive keeps
// it beside) and no manifest: inspect reports no statistics, not a crash.
func TestInspectWithoutStatsOrManifest(t *testing.T) {
	dir := t.TempDir()
	craftCheckpoint(t, dir, "/x")
	os.Remove(filepath.Join(dir, "stats-dump"))
	ins, err := Inspect(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ins.Dump != nil {
		t.Errorf("statistics out of nowhere: %+v", ins.Dump)
	}
}

// The manifest is reported as written; without stats-dump its statistics
// stand in.
func TestInspectManifest(t *testing.T) {
	dir := t.TempDir()
	craftCheckpoint(t, dir, "/x")
	os.Remove(filepath.Join(dir, "stats-dump"))
	m := &Manifest{
		Version: ManifestVersion, State: ManifestComplete, ContainerID: "web1", Bundle: "/srv/web",
		Options:   ManifestOptions{LeaveRunning: true},
		DumpStats: &DumpStats{FrozenTime: 12000, PagesWritten: 7},
	}
	if err := manifest.Write(dir, m); err != nil {
		t.Fatal(err)
	}
	ins, err := Inspect(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ins.Manifest == nil || ins.Manifest.ContainerID != "web1" || ins.Manifest.Bundle != "/srv/web" || !ins.Manifest.Options.LeaveRunning {
		t.Errorf("manifest: %+v", ins.Manifest)
	}
	if ins.Dump == nil || ins.Dump.FrozenMs != 12 || ins.Dump.PagesWritten != 7 {
		t.Errorf("dump stats from the manifest: %+v", ins.Dump)
	}
}

// crit caches files.img in package variables (ExploreFds and friends);
// Inspect must not, or a second checkpoint would show the first's files.
func TestInspectTwoCheckpointsInOneProcess(t *testing.T) {
	for _, path := range []string{"/first", "/second"} {
		dir := t.TempDir()
		craftCheckpoint(t, dir, path)
		ins, err := Inspect(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := ins.Files.RegularFiles[0].Path; got != path {
			t.Errorf("%s: regular file %q, want %q", dir, got, path)
		}
	}
}

// corruptCase damages one image file of a crafted checkpoint.
type corruptCase struct {
	name   string
	file   string
	damage func([]byte) []byte // nil: remove the file
}

func corruptCases() []corruptCase {
	garbage := func(n int) func([]byte) []byte {
		return func([]byte) []byte {
			b := make([]byte, n)
			rand.New(rand.NewSource(int64(n))).Read(b)
			return b
		}
	}
	cut := func(n int) func([]byte) []byte {
		return func(b []byte) []byte {
			if n < 0 {
				n += len(b)
			}
			return b[:n]
		}
	}
	// The right header, then garbage: crit reads a random entry size.
	headerThenGarbage := func(b []byte) []byte {
		return append(append([]byte{}, b[:8]...), garbage(64)(nil)...)
	}
	var cases []corruptCase
	for _, file := range []string{
		"inventory.img", "pstree.img", "core-1.img", "core-9.img", "ids-7.img", "mm-1.img",
		"pagemap-1.img", "files.img", "fdinfo-20.img", "stats-dump",
	} {
		cases = append(cases,
			corruptCase{"empty", file, cut(0)},
			corruptCase{"truncated in the header", file, cut(3)},
			corruptCase{"truncated after the header", file, cut(6)},
			corruptCase{"truncated by one byte", file, cut(-1)},
			corruptCase{"garbage", file, garbage(200)},
		)
		if file != "inventory.img" { // its header is 4 bytes
			cases = append(cases, corruptCase{"header then garbage", file, headerThenGarbage})
		}
	}
	return append(cases,
		corruptCase{"truncated", "pages-1.img", cut(testPage)},
		corruptCase{"missing", "core-7.img", nil},
		corruptCase{"missing", "fdinfo-10.img", nil},
	)
}

// A damaged image makes Inspect fail with ErrBadImage naming the file,
// never panic.
func TestInspectCorruptImages(t *testing.T) {
	for _, tc := range corruptCases() {
		t.Run(tc.file+"/"+tc.name, func(t *testing.T) {
			dir := t.TempDir()
			craftCheckpoint(t, dir, "/x")
			path := filepath.Join(dir, tc.file)
			switch tc.damage {
			case nil:
				os.Remove(path)
			default:
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, tc.damage(data), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			ins, err := Inspect(dir)
			if err == nil {
				t.Fatalf("no error; inspection %+v", ins)
			}
			if !errors.Is(err, ErrBadImage) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not wrap ErrBadImage and name %s", err, path)
			}
		})
	}
}

// Images that decode but contradict each other: what crit's ExplorePs and
// memory reader would index or dereference without checking.
func TestInspectInconsistentImages(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		write      func(t *testing.T, dir string)
	}{
		{"parent not in the tree", "pstree.img", func(t *testing.T, dir string) {
			writeImage(t, dir, "pstree.img", "PSTREE",
				&pstree.PstreeEntry{Pid: u32(1), Ppid: u32(0), Pgid: u32(1), Sid: u32(1)},
				&pstree.PstreeEntry{Pid: u32(7), Ppid: u32(5), Pgid: u32(1), Sid: u32(1)})
		}},
		{"no root", "pstree.img", func(t *testing.T, dir string) {
			writeImage(t, dir, "pstree.img", "PSTREE", &pstree.PstreeEntry{Pid: u32(1), Ppid: u32(7), Pgid: u32(1), Sid: u32(1)},
				&pstree.PstreeEntry{Pid: u32(7), Ppid: u32(1), Pgid: u32(1), Sid: u32(1)})
		}},
		{"another image under its name", "pstree.img", func(t *testing.T, dir string) {
			data, _ := os.ReadFile(filepath.Join(dir, "core-1.img"))
			if err := os.WriteFile(filepath.Join(dir, "pstree.img"), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"no processes", "pstree.img", func(t *testing.T, dir string) { writeImage(t, dir, "pstree.img", "PSTREE") }},
		{"core without entries", "core-7.img", func(t *testing.T, dir string) { writeImage(t, dir, "core-7.img", "CORE") }},
		{"pagemap without header", "pagemap-1.img", func(t *testing.T, dir string) { writeImage(t, dir, "pagemap-1.img", "PAGEMAP") }},
		{"more pages than pages-1.img holds", "pages-1.img", func(t *testing.T, dir string) {
			writeImage(t, dir, "pagemap-1.img", "PAGEMAP", &pagemap.PagemapHead{PagesId: u32(1)},
				pagemapEntry(0x10000, 1<<40, image.PagemapPresent))
		}},
		{"mapping ends before it starts", "mm-7.img", func(t *testing.T, dir string) {
			writeImage(t, dir, "mm-7.img", "MM", mmEntry(0, 0, [2]uint64{0x3000, 0x2000}))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			craftCheckpoint(t, dir, "/x")
			tc.write(t, dir)
			_, err := Inspect(dir)
			if path := filepath.Join(dir, tc.file); !errors.Is(err, ErrBadImage) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %v does not wrap ErrBadImage and name %s", err, path)
			}
		})
	}
}

// Random byte changes anywhere in the images never make Inspect panic; an
// error it gives wraps ErrBadImage.
func TestInspectRandomDamage(t *testing.T) {
	base := t.TempDir()
	craftCheckpoint(t, base, "/x")
	names, err := filepath.Glob(filepath.Join(base, "*"))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 300; i++ {
		dir := t.TempDir()
		for _, n := range names {
			data, err := os.ReadFile(n)
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Base(n) != "pages-1.img" && filepath.Base(n) != "pages-2.img" && rng.Intn(4) == 0 && len(data) > 0 {
				for k := 0; k < 1+rng.Intn(3); k++ {
					data[rng.Intn(len(data))] = byte(rng.Intn(256))
				}
			}
			if err := os.WriteFile(filepath.Join(dir, filepath.Base(n)), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := Inspect(dir); err != nil && !errors.Is(err, ErrBadImage) {
			t.Errorf("round %d: %v is not ErrBadImage", i, err)
		}
	}
}

func TestInspectNotACheckpoint(t *testing.T) {
	dir := t.TempDir()
	if _, err := Inspect(dir); !errors.Is(err, ErrBadImage) || !strings.Contains(err.Error(), "no inventory.img") {
		t.Errorf("empty directory: %v", err)
	}
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Inspect(file); err == nil || !strings.Contains(err.Error(), file) {
		t.Errorf("a file: %v", err)
	}
	if _, err := Inspect(filepath.Join(dir, "nope")); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing: %v", err)
	}
}

func TestReadStats(t *testing.T) {
	dir := t.TempDir()
	writeImage(t, dir, "stats-restore", "STATS", &critstats.StatsEntry{Restore: &critstats.RestoreStatsEntry{
		PagesCompared: u64(3), PagesSkippedCow: u64(2), ForkingTime: u32(2500), RestoreTime: u32(40000), PagesRestored: u64(800),
	}})
	st, err := ReadRestoreStats(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := st.Report(), (&RestoreReport{ForkingMs: 2.5, RestoreMs: 40, PagesRestored: 800, PagesCompared: 3, PagesSkippedCow: 2}); *got != *want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	// A restore's statistics are not a dump's.
	if err := os.Rename(filepath.Join(dir, "stats-restore"), filepath.Join(dir, "stats-dump")); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadDumpStats(dir); !errors.Is(err, ErrBadImage) {
		t.Errorf("stats-restore read as stats-dump: %v", err)
	}
	if _, err := ReadRestoreStats(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing stats-restore: %v", err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "stats-dump"))
	if err := os.WriteFile(filepath.Join(dir, "stats-dump"), data[:len(data)-2], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadDumpStats(dir); !errors.Is(err, ErrBadImage) || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("truncated stats-dump: %v", err)
	}
}

// Keep the fixture honest: it must be what crit itself reads.
func TestCraftedCheckpointReadsWithCrit(t *testing.T) {
	dir := t.TempDir()
	craftCheckpoint(t, dir, "/x")
	root, err := crit.New(nil, nil, dir, false, false).ExplorePs()
	if err != nil || root.PID != 1 || root.Comm != "sh" || len(root.Children) != 2 {
		t.Fatalf("ExplorePs: %+v, %v", root, err)
	}
}
