package libcheckpoint

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

// FuzzCheckpointOptions: validation never panics, every refusal is
// ErrInvalidOption naming a flag, and what Validate accepts maps cleanly.
func FuzzCheckpointOptions(f *testing.F) {
	f.Add("soft", "network", "../parent", "127.0.0.1:27", -1)
	f.Add("bogus", "pid", "/abs", "host", 3)
	f.Add("", "", "", "[::1]:65535", -2)
	f.Fuzz(func(t *testing.T, mode, ns, parent, pageServer string, statusFD int) {
		o := NewCheckpointOptions()
		o.ManageCgroupsMode = mode
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
		c, err := o.CriuOpts()
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
		o.ManageCgroupsMode = mode
		if ns != "" {
			o.EmptyNamespaces = strings.Split(ns, ",")
		}
		if err := o.Validate(); err != nil {
			if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "--") {
				t.Fatalf("refusal %q is not an ErrInvalidOption naming a flag", err)
			}
			return
		}
		if _, err := o.CriuOpts(); err != nil {
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
		_, err = importArchive(bytes.NewReader(data), s.target, 1<<20)
		s.check(t, err != nil)
	})
}
