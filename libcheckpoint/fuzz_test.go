package libcheckpoint

import (
	"errors"
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
