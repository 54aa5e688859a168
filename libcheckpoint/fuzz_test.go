package libcheckpoint

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runcr/runcr/libcheckpoint/archive"
)

// FuzzCheckpointOptions: validation never panics, every refusal is
// ErrInvalidOption naming a flag, and what Validate accepts maps cleanly.
func FuzzCheckpointOptions(f *testing.F) {
	f.Add("soft", "network", "../parent", "127.0.0.1:27", -1)
	f.Add("bogus", "pid", "/abs", "host", 3)
	f.Add("", "", "", "[::1]:65535", -2)
	f.Fuzz(func(t *testing.T, mode, ns, parent, pageServer string, statusFD int) {
		o := NewCheckpointOptions()
		o.ManageCgroupsMode = CgroupMode(mode)
		if ns != "" {
			o.EmptyNamespaces = strings.Split(ns, ",")
		}
		o.ParentPath = parent
		o.PageServer = pageServer
		o.StatusFD = statusFD
		err := o.Validate()
		if err != nil {
			if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "--") {
				t.Fatalf("refusal %q is not an ErrInvalidOption naming a flag", err)
			}
			return
		}
		c, err := o.criuOpts()
		if err != nil {
			t.Fatalf("Validate accepted what CriuOpts refused: %v", err)
		}
		if pageServer != "" && (c.PageServer.Port <= 0 || c.PageServer.Address == "") {
			t.Fatalf("page server %q mapped to %+v", pageServer, c.PageServer)
		}
	})
}

// FuzzRestoreOptions: the same for restore.
func FuzzRestoreOptions(f *testing.F) {
	f.Add("ignore", "network", "apparmor:p", "pre")
	f.Add("x", "ipc", "selinux:", "/abs")
	f.Fuzz(func(t *testing.T, mode, ns, lsm, parent string) {
		o := RestoreOptions{LSMProfile: lsm, ParentPath: parent}
		o.ManageCgroupsMode = CgroupMode(mode)
		if ns != "" {
			o.EmptyNamespaces = strings.Split(ns, ",")
		}
		if err := o.Validate(); err != nil {
			if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "--") {
				t.Fatalf("refusal %q is not an ErrInvalidOption naming a flag", err)
			}
			return
		}
		if _, err := o.criuOpts(); err != nil {
			t.Fatalf("Validate accepted what CriuOpts refused: %v", err)
		}
	})
}

// FuzzValidateID: ids that pass are ones libcontainer accepts and can't
// escape the root.
func FuzzValidateID(f *testing.F) {
	for _, s := range []string{"ok", "..", "a/b", "", "x\x00y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if validateID(id) != nil {
			return
		}
		if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\\\x00") {
			t.Fatalf("validateID accepted %q", id)
		}
	})
}

// FuzzDecodeManifest: decoding never panics, and what it accepts has a
// version this runcr reads and a known state.
func FuzzDecodeManifest(f *testing.F) {
	f.Add([]byte(`{"version":1,"state":"complete","container_id":"c","completed":"2025-01-02T03:04:05Z"}`))
	f.Add([]byte(`{"version":1,"state":"incomplete","options":{"empty_ns":["network"]}}`))
	f.Add([]byte(`{"version":2,"state":"complete"}`))
	f.Add([]byte(`{"version":0,"state":"complete"}`))
	f.Add([]byte(`{"version":1,"state":"done"}`))
	f.Add([]byte(`{"version":1e400}`))
	f.Add([]byte(`{"version":1,"state":"complete","dump_stats":{"pages_written":-1}}`))
	f.Add([]byte(`{"version":1,"state":"complete"} trailing`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeManifest(data)
		if err != nil {
			if m != nil {
				t.Fatalf("DecodeManifest returned a manifest and the error %v", err)
			}
			if !strings.Contains(err.Error(), ManifestFile) {
				t.Fatalf("error %q does not name %s", err, ManifestFile)
			}
			return
		}
		if m == nil {
			t.Fatal("DecodeManifest returned neither a manifest nor an error")
		}
		if m.Version < 1 || m.Version > ManifestVersion {
			t.Fatalf("accepted version %d (reads 1..%d)", m.Version, ManifestVersion)
		}
		if m.State != ManifestComplete && m.State != ManifestIncomplete {
			t.Fatalf("accepted unknown state %q", m.State)
		}
	})
}

// FuzzImportArchive: whatever the bytes, importArchive never panics,
// never creates anything outside its target or anything but regular files
// in it, and leaves the target empty when it refuses.
func FuzzImportArchive(f *testing.F) {
	good := manifestEntry(f, ManifestComplete)
	small := makeTar(f, reg("inventory.img", []byte("inv")), reg("pages-1.img", bytes.Repeat([]byte("p"), 3000)), good)
	f.Add(small)
	f.Add(compress(f, small, CompressZstd))
	f.Add(compress(f, small, CompressGzip))
	f.Add(makeTar(f, reg("../escape", []byte("x")), good))
	f.Add(makeTar(f, reg("/abs", []byte("x")), good))
	f.Add(makeTar(f, entry{tar.Header{Typeflag: tar.TypeSymlink, Name: "l", Linkname: ".."}, nil}, reg("l/x", []byte("x")), good))
	f.Add(makeTar(f, entry{tar.Header{Typeflag: tar.TypeLink, Name: "h", Linkname: "../outside/secret"}, nil}, good))
	f.Add(compress(f, makeTar(f, entry{tar.Header{Typeflag: tar.TypeChar, Name: "c", Devmajor: 1, Devminor: 3}, nil}, good), CompressZstd))
	f.Add(makeTar(f, reg("a", []byte("1")), reg("a", []byte("2")), good))
	// One sandbox per worker and a fresh target per input: an input costs
	// a few file operations, which keeps minimizing inputs quick.
	s := newSandbox(f)
	if err := os.Remove(s.target); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		target, err := os.MkdirTemp(s.parent, "target")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(target)
		s := s
		s.target = target
		_, err = archive.ImportWithin(bytes.NewReader(data), s.target, 1<<20)
		s.check(t, err != nil)
	})
}

// FuzzEngineArchive: an engine archive's import never panics and leaves
// its two directories empty when it refuses; the same bytes taken as a
// rootfs-diff.tar never change anything outside the rootfs, and nothing
// at all when refused.
func FuzzEngineArchive(f *testing.F) {
	inv := reg("checkpoint/inventory.img", []byte("inv"))
	f.Add(makeTar(f, dirEntry("checkpoint/"), inv, reg("config.dump", []byte("{}")), reg("etc/x", []byte("x"))))
	f.Add(compress(f, makeTar(f, inv, reg("checkpoint/../x", nil)), CompressZstd))
	f.Add(makeTar(f, entry{tar.Header{Typeflag: tar.TypeSymlink, Name: "l", Linkname: "../.."}, nil}, reg("l/x", []byte("x"))))
	f.Add(makeTar(f, reg("uplink/secret", []byte("x")), reg("etc/.wh..wh..opq", nil)))
	f.Add(compress(f, makeTar(f, entry{tar.Header{Typeflag: tar.TypeLink, Name: "h", Linkname: "../secret"}, nil}), CompressGzip))
	f.Fuzz(func(t *testing.T, data []byte) {
		images, meta := t.TempDir(), t.TempDir()
		if _, err := importEngineArchive(bytes.NewReader(data), images, meta, 1<<20); err != nil {
			for _, d := range []string{images, meta} {
				if names, _ := os.ReadDir(d); len(names) != 0 {
					t.Fatalf("refused (%v) but %s holds %v", err, d, names)
				}
			}
		}
		rootfs, secret := rootfsSandbox(t)
		outside := snapshot(t, filepath.Dir(secret))
		before := snapshot(t, rootfs)
		if err := os.WriteFile(filepath.Join(meta, engineRootfsDiff), data, 0o600); err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(meta, engineDeletedFiles))
		spec, err := loadSpec(filepath.Dir(rootfs))
		if err != nil {
			t.Fatal(err)
		}
		err = (&engineImport{metaDir: meta, maxDiff: 1 << 20}).applyToBundle(filepath.Dir(rootfs), spec)
		if err != nil && errors.Is(err, ErrBadArchive) && snapshot(t, rootfs) != before {
			t.Fatalf("refused (%v) but the rootfs changed", err)
		}
		if data, _ := os.ReadFile(secret); string(data) != "secret" {
			t.Fatal("the secret outside the rootfs changed")
		}
		// Outside the rootfs: only the rootfs itself may differ.
		strip := func(s string) string {
			var keep []string
			for _, l := range strings.Split(s, "\n") {
				if !strings.Contains(l, rootfs+"/") {
					keep = append(keep, l)
				}
			}
			return strings.Join(keep, "\n")
		}
		if strip(snapshot(t, filepath.Dir(secret))) != strip(outside) {
			t.Fatalf("something outside the rootfs changed")
		}
	})
}
