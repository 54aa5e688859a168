package libcheckpoint

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/mnt"
	"github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
)

// dir is a directory entry of a hand-made tar.
func dirEntry(name string) entry {
	return entry{tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}, nil}
}

// engineArchiveEntries are the entries of an engine archive around the
// crafted checkpoint in imagesDir: Podman's when engine is "podman", a
// CRI's (containerd) when "containerd", CRI-O's when "cri-o".
func engineArchiveEntries(t *testing.T, imagesDir, engine string, rootfsDiff []byte, deleted []string) []entry {
	t.Helper()
	es := []entry{dirEntry("checkpoint/")}
	names, err := os.ReadDir(imagesDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(imagesDir, n.Name()))
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, reg("checkpoint/"+n.Name(), data))
	}
	var cfg, spec any
	switch engine {
	case "podman":
		cfg = map[string]any{
			"id": "0123456789abcdef", "name": "web", "rootfsImageName": "localhost/app:1",
			"runtime": "runc", "createdTime": "2026-01-02T03:04:05Z", "checkpointedTime": nil,
		}
		spec = map[string]any{
			"annotations": map[string]string{"io.container.manager": "libpod"},
			"mounts":      []map[string]any{{"destination": "/etc/hosts", "type": "bind", "source": "/x/hosts"}},
		}
	case "containerd":
		cfg = map[string]any{
			"id": "c0ffee", "name": "k8s-name", "rootfsImageName": "docker.example/app:2",
			"runtime": "io.containerd.runc.v2", "createdTime": "2026-01-02T03:04:05Z", "checkpointedTime": "2026-01-02T04:00:00Z",
		}
		spec = map[string]any{"annotations": map[string]string{
			"io.kubernetes.cri.container-name": "app", "io.kubernetes.cri.sandbox-name": "app-pod",
			"io.kubernetes.cri.sandbox-namespace": "prod", "org.criu.checkpoint.criu.version": "4.1",
		}}
	case "cri-o":
		cfg = map[string]any{"id": "beef", "name": "k8s_app", "runtime": "crun"}
		spec = map[string]any{"annotations": map[string]string{
			"io.container.manager": "cri-o", "io.kubernetes.cri-o.Metadata": `{"name":"app"}`,
			"io.kubernetes.pod.name": "pod-1", "io.kubernetes.pod.namespace": "default",
		}}
	}
	js := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	es = append(es, reg("config.dump", js(cfg)), reg("spec.dump", js(spec)),
		reg("dump.log", []byte("(00.000000) Version: 4.2.1 (gitid 0)\n")))
	if rootfsDiff != nil {
		es = append(es, reg("rootfs-diff.tar", rootfsDiff))
	}
	if deleted != nil {
		es = append(es, reg("deleted.files", js(deleted)))
	}
	es = append(es, dirEntry("artifacts/"), reg("artifacts/x", []byte("skipped")))
	return es
}

func writeArchive(t *testing.T, data []byte) string {
	p := filepath.Join(t.TempDir(), "ckpt.tar")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDetectArchiveLayout(t *testing.T) {
	dir, config, _ := imageFixture(t)
	runcr := exportBytes(t, dir, config, CompressZstd)
	for name, tc := range map[string]struct {
		data []byte
		want ArchiveLayout
	}{
		"runcr zstd":      {runcr, LayoutRuncr},
		"podman zstd":     {compress(t, makeTar(t, reg("stats-dump", []byte("s")), dirEntry("checkpoint/"), reg("checkpoint/inventory.img", nil)), CompressZstd), LayoutEngine},
		"containerd ./":   {makeTar(t, dirEntry("./"), reg("./config.dump", []byte("{}"))), LayoutEngine},
		"artifacts first": {compress(t, makeTar(t, dirEntry("artifacts/"), reg("x", nil)), CompressGzip), LayoutEngine},
		"runcr hand-made": {makeTar(t, dirEntry("./"), reg("./dump.log", nil), reg("./inventory.img", nil)), LayoutRuncr},
		"nothing telling": {makeTar(t, reg("dump.log", nil)), LayoutRuncr},
	} {
		got, err := DetectArchiveLayout(bytes.NewReader(tc.data))
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", name, got, err, tc.want)
		}
	}
	if _, err := DetectArchiveLayout(strings.NewReader("PK\x03\x04 zip")); !errors.Is(err, ErrBadArchive) {
		t.Errorf("zip: %v", err)
	}
}

func TestInspectEngineArchives(t *testing.T) {
	images := t.TempDir()
	craftCheckpoint(t, images, "/data/log.txt")
	writeImage(t, images, "mountpoints-3.img", "MNTS", mntEntries()...)
	diff := makeTar(t, dirEntry("etc/"), reg("etc/added", []byte("hello")),
		entry{tar.Header{Typeflag: tar.TypeSymlink, Name: "etc/link", Linkname: "added"}, nil},
		reg("etc/.wh.motd", nil))
	for _, tc := range []struct {
		engine, wantEngine, name, pod, ns, image, criu string
		diff                                           []byte
		deleted                                        []string
	}{
		{"podman", EnginePodman, "web", "", "", "localhost/app:1", "4.2.1", diff, []string{"/var/gone", "/etc/x"}},
		{"containerd", EngineContainerd, "app", "app-pod", "prod", "docker.example/app:2", "4.1", compress(t, diff, CompressGzip), nil},
		{"cri-o", EngineCRIO, "app", "pod-1", "default", "", "4.2.1", nil, []string{}},
	} {
		t.Run(tc.engine, func(t *testing.T) {
			path := writeArchive(t, compress(t, makeTar(t, engineArchiveEntries(t, images, tc.engine, tc.diff, tc.deleted)...), CompressZstd))
			ins, err := InspectPath(path)
			if err != nil {
				t.Fatal(err)
			}
			e := ins.Engine
			if e == nil {
				t.Fatal("no engine info")
			}
			if e.Engine != tc.wantEngine || e.ContainerName != tc.name || e.PodName != tc.pod || e.PodNamespace != tc.ns || e.Image != tc.image || e.CRIUVersion != tc.criu {
				t.Errorf("engine info %+v", e)
			}
			if ins.Dir != path || len(ins.Processes) != 3 || ins.Processes[0].Comm != "sh" || e.CheckpointBytes == 0 {
				t.Errorf("inspection dir %s, %d processes", ins.Dir, len(ins.Processes))
			}
			if e.Checkpointed == nil || e.Created == nil && tc.engine != "cri-o" {
				t.Errorf("times %v %v", e.Created, e.Checkpointed)
			}
			if len(e.Skipped) != 1 || e.Skipped[0] != "artifacts/x" {
				t.Errorf("skipped %q", e.Skipped)
			}
			if len(ins.Mounts) != 3 || ins.Mounts[0].Mountpoint != "/" || ins.Mounts[2].FSType != "proc" || !ins.Mounts[1].External {
				t.Errorf("mounts %+v", ins.Mounts)
			}
			if tc.diff == nil {
				if e.RootfsDiff != nil {
					t.Errorf("rootfs diff %+v", e.RootfsDiff)
				}
			} else if d := e.RootfsDiff; d == nil || d.Files != 1 || d.Dirs != 1 || d.Symlinks != 1 || d.Whiteouts != 1 || d.ContentBytes != 5 ||
				strings.Join(d.Paths, ",") != "etc/,etc/added,etc/link -> added,etc/motd (deleted)" {
				t.Errorf("rootfs diff %+v", d)
			}
			if e.DeletedFilesCount != len(tc.deleted) || (len(tc.deleted) == 2 && e.DeletedFiles[0] != "var/gone") {
				t.Errorf("deleted %d %q", e.DeletedFilesCount, e.DeletedFiles)
			}
		})
	}
}

// rootfsSandbox is a bundle rootfs with a secret next to it.
func rootfsSandbox(t *testing.T) (rootfs, secret string) {
	base := t.TempDir()
	rootfs = filepath.Join(base, "rootfs")
	for _, d := range []string{"etc", "bin"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(rootfs, "etc/motd"), []byte("motd"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin/vi"), []byte("vi"), 0o755); err != nil {
		t.Fatal(err)
	}
	secret = filepath.Join(base, "secret")
	if err := os.WriteFile(secret, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(rootfs, "abslink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../..", filepath.Join(rootfs, "uplink")); err != nil {
		t.Fatal(err)
	}
	loadTestSpec(t, base)
	return rootfs, secret
}

// snapshot lists what is under dir (names, types, contents).
func snapshot(t *testing.T, dir string) string {
	var b strings.Builder
	if err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		b.WriteString(p + " " + d.Type().String())
		if d.Type().IsRegular() {
			data, _ := os.ReadFile(p)
			b.Write(data)
		}
		b.WriteString("\n")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func applyEngine(t *testing.T, rootfs string, diff []byte, deleted []string) error {
	meta := t.TempDir()
	if diff != nil {
		if err := os.WriteFile(filepath.Join(meta, engineRootfsDiff), diff, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if deleted != nil {
		data, _ := json.Marshal(deleted)
		if err := os.WriteFile(filepath.Join(meta, engineDeletedFiles), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ei := &engineImport{archive: "a.tar", metaDir: meta}
	spec, err := loadSpec(filepath.Dir(rootfs))
	if err != nil {
		t.Fatal(err)
	}
	return ei.applyToBundle(filepath.Dir(rootfs), spec)
}

func TestApplyRootfsDiff(t *testing.T) {
	rootfs, secret := rootfsSandbox(t)
	diff := makeTar(t, dirEntry("./"), dirEntry("opt/"), reg("opt/d/f", []byte("deep")),
		entry{tar.Header{Typeflag: tar.TypeReg, Name: "etc/added", Mode: 0o640, Size: 2, ModTime: time.Unix(1e9, 0)}, []byte("hi")},
		entry{tar.Header{Typeflag: tar.TypeSymlink, Name: "etc/sh", Linkname: "/bin/busybox"}, nil},
		entry{tar.Header{Typeflag: tar.TypeLink, Name: "etc/added2", Linkname: "etc/added"}, nil},
		entry{tar.Header{Typeflag: tar.TypeFifo, Name: "tmp/fifo", Mode: 0o600}, nil},
		reg("etc/.wh.motd", nil),
		reg("bin/vi", []byte("new vi")))
	if err := applyEngine(t, rootfs, compress(t, diff, CompressGzip), []string{"/bin/vi", "/no/such"}); err != nil {
		t.Fatal(err)
	}
	read := func(p string) string { b, _ := os.ReadFile(filepath.Join(rootfs, p)); return string(b) }
	if read("opt/d/f") != "deep" || read("etc/added") != "hi" || read("etc/added2") != "hi" {
		t.Errorf("files: %q %q %q", read("opt/d/f"), read("etc/added"), read("etc/added2"))
	}
	if fi, err := os.Stat(filepath.Join(rootfs, "etc/added")); err != nil || fi.Mode().Perm() != 0o640 || !fi.ModTime().Equal(time.Unix(1e9, 0)) {
		t.Errorf("etc/added: %v %v", fi, err)
	}
	if l, _ := os.Readlink(filepath.Join(rootfs, "etc/sh")); l != "/bin/busybox" {
		t.Errorf("symlink %q", l)
	}
	if fi, err := os.Lstat(filepath.Join(rootfs, "tmp/fifo")); err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
		t.Errorf("fifo %v %v", fi, err)
	}
	for _, gone := range []string{"etc/motd", "bin/vi"} {
		if _, err := os.Lstat(filepath.Join(rootfs, gone)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s not deleted: %v", gone, err)
		}
	}
	if data, _ := os.ReadFile(secret); string(data) != "secret" {
		t.Error("secret changed")
	}
}

func TestApplyRootfsDiffOpaque(t *testing.T) {
	rootfs, _ := rootfsSandbox(t)
	diff := makeTar(t, dirEntry("etc/"), reg("etc/.wh..wh..opq", nil), reg("etc/only", []byte("1")))
	if err := applyEngine(t, rootfs, diff, nil); err != nil {
		t.Fatal(err)
	}
	names, _ := os.ReadDir(filepath.Join(rootfs, "etc"))
	if len(names) != 1 || names[0].Name() != "only" {
		t.Errorf("etc holds %v after an opaque whiteout", names)
	}
}

// TestApplyRootfsDiffRefuses: hostile diffs and deletions are refused
// before the rootfs changes, naming the entry.
func TestApplyRootfsDiffRefuses(t *testing.T) {
	big := tar.Header{Typeflag: tar.TypeReg, Name: "big", Size: 1 << 40}
	for _, tc := range []struct {
		name    string
		diff    []entry
		deleted []string
		want    string
	}{
		{"dot-dot", []entry{reg("etc/ok", nil), reg("../secret", []byte("x"))}, nil, `entry "../secret": has ".."`},
		{"dot-dot inside", []entry{reg("etc/../../secret", []byte("x"))}, nil, `has ".."`},
		{"absolute", []entry{reg("/etc/passwd", []byte("x"))}, nil, "is an absolute path"},
		{"through its own symlink", []entry{{tar.Header{Typeflag: tar.TypeSymlink, Name: "l", Linkname: "/"}, nil}, reg("l/etc/x", []byte("x"))}, nil, `goes through "l"`},
		{"through a rootfs symlink out", []entry{reg("etc/ok", nil), reg("uplink/secret", []byte("x"))}, nil, `"uplink"`},
		{"through an absolute rootfs symlink", []entry{reg("abslink/x", []byte("x"))}, nil, `"abslink"`},
		{"under its own file", []entry{reg("f", nil), reg("f/x", nil)}, nil, `under "f"`},
		{"hard link out", []entry{{tar.Header{Typeflag: tar.TypeLink, Name: "h", Linkname: "../secret"}, nil}}, nil, "hard link"},
		{"hard link to nothing", []entry{{tar.Header{Typeflag: tar.TypeLink, Name: "h", Linkname: "etc/none"}, nil}}, nil, "not in the rootfs"},
		{"char device", []entry{reg("etc/ok", nil), {tar.Header{Typeflag: tar.TypeChar, Name: "dev/mem", Devmajor: 1, Devminor: 1}, nil}}, nil, `entry "dev/mem": is a device node`},
		{"block device", []entry{{tar.Header{Typeflag: tar.TypeBlock, Name: "sda", Devmajor: 8}, nil}}, nil, "is a device node"},
		{"huge size", []entry{{big, nil}}, nil, "room for"},
		{"deleted dot-dot", nil, []string{"/etc/motd", "/../secret"}, `"/../secret"`},
		{"deleted rootfs", nil, []string{"/"}, "the rootfs itself"},
		{"deleted through a symlink out", nil, []string{"/uplink/secret"}, `"uplink"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rootfs, secret := rootfsSandbox(t)
			before := snapshot(t, filepath.Dir(rootfs))
			var diff []byte
			if tc.diff != nil {
				if tc.name == "huge size" {
					var buf bytes.Buffer
					tw := tar.NewWriter(&buf)
					if err := tw.WriteHeader(&big); err != nil {
						t.Fatal(err)
					}
					tw.Flush()
					diff = buf.Bytes()
				} else {
					diff = makeTar(t, tc.diff...)
				}
			}
			err := applyEngine(t, rootfs, diff, tc.deleted)
			if !errors.Is(err, ErrBadArchive) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v; want ErrBadArchive with %q", err, tc.want)
			}
			if after := snapshot(t, filepath.Dir(rootfs)); after != before {
				t.Errorf("the refusal changed files:\n%s\nwas\n%s", after, before)
			}
			if data, _ := os.ReadFile(secret); string(data) != "secret" {
				t.Error("secret changed")
			}
		})
	}
}

// TestImportEngineArchiveRefuses: the archive itself follows runcr's
// rules, and a refusal leaves both directories empty.
func TestImportEngineArchiveRefuses(t *testing.T) {
	inv := reg("checkpoint/inventory.img", []byte("inv"))
	for _, tc := range []struct {
		name    string
		entries []entry
		want    string
	}{
		{"escape", []entry{inv, reg("checkpoint/../../x", nil)}, `has ".."`},
		{"absolute", []entry{inv, reg("/etc/x", nil)}, "absolute"},
		{"symlink image", []entry{inv, {tar.Header{Typeflag: tar.TypeSymlink, Name: "checkpoint/pages-1.img", Linkname: "/etc/shadow"}, nil}}, "symbolic link"},
		{"device config", []entry{inv, {tar.Header{Typeflag: tar.TypeChar, Name: "config.dump", Devmajor: 1, Devminor: 3}, nil}}, "device node"},
		{"nested image dir", []entry{inv, reg("checkpoint/sub/x.img", nil)}, "flat"},
		{"duplicate", []entry{inv, reg("checkpoint/inventory.img", nil)}, "duplicate"},
		{"no inventory", []entry{reg("config.dump", []byte("{}"))}, "no checkpoint/inventory.img"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			images, meta := t.TempDir(), t.TempDir()
			_, err := importEngineArchive(bytes.NewReader(makeTar(t, tc.entries...)), images, meta, 1<<20)
			if !errors.Is(err, ErrBadArchive) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v; want ErrBadArchive with %q", err, tc.want)
			}
			for _, d := range []string{images, meta} {
				if names, _ := os.ReadDir(d); len(names) != 0 {
					t.Errorf("%s holds %v after the refusal", d, names)
				}
			}
		})
	}
}

func mntEntries() []proto.Message {
	m := func(id, parent uint32, fstype mnt.Fstype, mp, src string, ext string) *mnt.MntEntry {
		e := &mnt.MntEntry{
			Fstype: u32(uint32(fstype)), MntId: u32(id), RootDev: u32(1), ParentMntId: u32(parent), Flags: u32(0),
			Root: proto.String("/"), Mountpoint: proto.String(mp), Source: proto.String(src), Options: proto.String(""),
		}
		if ext != "" {
			e.ExtKey = proto.String(ext)
		}
		return e
	}
	// CRIU lists children first.
	return []proto.Message{
		m(3, 1, mnt.Fstype_UNSUPPORTED, "/etc/hosts", "/dev/vda", "/etc/hosts"),
		m(2, 1, mnt.Fstype_PROC, "/proc", "proc", ""),
		m(1, 0, mnt.Fstype_OVERLAYFS, "/", "overlay", ""),
	}
}

// loadTestSpec writes bundle/config.json with root.path "rootfs".
func loadTestSpec(t *testing.T, bundle string) *specs.Spec {
	spec := &specs.Spec{Root: &specs.Root{Path: "rootfs"}, Process: &specs.Process{Args: []string{"sh"}, Cwd: "/"}}
	data, _ := json.Marshal(spec)
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := loadSpec(bundle)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
