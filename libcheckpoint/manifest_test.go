package libcheckpoint

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/runcr/runcr/libcheckpoint/manifest"
)

func TestDecodeManifest(t *testing.T) {
	for _, tc := range []struct {
		name, json, wantErr string
	}{
		{"complete", `{"version":1,"state":"complete","container_id":"c"}`, ""},
		{"incomplete", `{"version":1,"state":"incomplete"}`, ""},
		{"unknown fields are ignored", `{"version":1,"state":"complete","future":{"x":1}}`, ""},
		{"not json", `{"version":1,`, "not valid JSON"},
		{"no version", `{"state":"complete"}`, "no version"},
		{"newer", `{"version":2,"state":"complete"}`, "use a newer runcr"},
		{"unknown state", `{"version":1,"state":"half"}`, `unknown state "half"`},
		{"wrong types", `{"version":"1","state":"complete"}`, "not valid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := DecodeManifest([]byte(tc.json))
			if tc.wantErr == "" {
				if err != nil || m == nil {
					t.Fatalf("DecodeManifest: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestWriteManifestRoundTripPrivate(t *testing.T) {
	dir := t.TempDir()
	want := &Manifest{
		Version: ManifestVersion, State: ManifestComplete, ContainerID: "c1",
		Bundle: "/b", ConfigDigest: "sha256:00", Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Options:   ManifestOptions{TCPEstablished: true, EmptyNamespaces: []string{"network"}},
		DumpStats: &DumpStats{FrozenTime: 42, PagesWritten: 7},
	}
	if err := manifest.Write(dir, want); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("manifest mode %v, want 0600", fi.Mode().Perm())
	}
	got, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.ContainerID != "c1" || !got.Options.TCPEstablished || got.DumpStats.FrozenTime != 42 || !got.Created.Equal(want.Created) || !got.Completed.IsZero() {
		t.Errorf("round trip gave %+v", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestReadManifestAbsentIsNotAnError(t *testing.T) {
	m, err := ReadManifest(t.TempDir())
	if m != nil || err != nil {
		t.Fatalf("ReadManifest of a runc image dir = %v, %v; want nil, nil", m, err)
	}
}

// applyManifest is what lets restore go without --bundle.
func TestApplyManifest(t *testing.T) {
	images := t.TempDir()
	cwd := t.TempDir()
	t.Chdir(cwd)
	write := func(m Manifest) {
		t.Helper()
		m.Version = ManifestVersion
		if err := manifest.Write(images, &m); err != nil {
			t.Fatal(err)
		}
	}

	write(Manifest{
		State: ManifestComplete, ContainerID: "c", Bundle: "/the/bundle",
		Options: ManifestOptions{TCPEstablished: true, FileLocks: true},
	})
	opts := RestoreOptions{CommonOptions: CommonOptions{ImagePath: images}}
	if _, err := applyManifest(&opts, true); err != nil {
		t.Fatal(err)
	}
	// The must-match options reach CRIU from the manifest through
	// planRestore (TestCriuPlan), not through opts.
	if opts.Bundle != "/the/bundle" || opts.TCPEstablished || opts.FileLocks || opts.ShellJob || opts.ExtUnixSockets {
		t.Errorf("applied manifest gave %+v", opts)
	}

	// A given --bundle wins; so does a working directory that is a bundle.
	opts = RestoreOptions{CommonOptions: CommonOptions{ImagePath: images}, Bundle: "/mine"}
	if _, err := applyManifest(&opts, true); err != nil || opts.Bundle != "/mine" {
		t.Errorf("--bundle /mine became %q (%v)", opts.Bundle, err)
	}
	if err := os.WriteFile(filepath.Join(cwd, "config.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts = RestoreOptions{CommonOptions: CommonOptions{ImagePath: images}}
	if _, err := applyManifest(&opts, true); err != nil || opts.Bundle != "" {
		t.Errorf("a bundle as working directory was overridden with %q (%v)", opts.Bundle, err)
	}

	write(Manifest{State: ManifestIncomplete, ContainerID: "c"})
	opts = RestoreOptions{CommonOptions: CommonOptions{ImagePath: images}}
	if _, err := applyManifest(&opts, true); !errors.Is(err, ErrIncompleteCheckpoint) || !strings.Contains(err.Error(), "--image-path "+images) {
		t.Errorf("incomplete manifest: %v", err)
	}

	write(Manifest{State: ManifestComplete, ContainerID: "c", Options: ManifestOptions{PreDump: true}})
	if _, err := applyManifest(&opts, true); !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "pre-dump") {
		t.Errorf("pre-dump manifest: %v", err)
	}

	if err := os.WriteFile(filepath.Join(images, ManifestFile), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := applyManifest(&opts, true); !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "--image-path") {
		t.Errorf("corrupt manifest: %v", err)
	}
}

// go-criu's stats reader indexes without bounds checks: a truncated
// statistics file must be an error, not a panic.
func TestReadStatsTruncated(t *testing.T) {
	dir := t.TempDir()
	for _, data := range [][]byte{nil, {0x40}, {0x40, 0x59, 0x10, 0x55, 0x06, 0x33, 0x09, 0x57, 0xff, 0, 0, 0, 1}} {
		if err := os.WriteFile(filepath.Join(dir, "stats-dump"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadDumpStats(dir); err == nil {
			t.Errorf("stats-dump of %d bytes accepted", len(data))
		}
		if err := os.WriteFile(filepath.Join(dir, "stats-restore"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadRestoreStats(dir); err == nil {
			t.Errorf("stats-restore of %d bytes accepted", len(data))
		}
	}
}

func TestCriuVersionFromLog(t *testing.T) {
	log := filepath.Join(t.TempDir(), "dump.log")
	content := "(00.000000) Unable to get $HOME directory, local configuration file will not be used.\n(00.000012) Version: 4.2.1 (gitid 0)\n(00.000020) Running on host\n"
	if err := os.WriteFile(log, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if v := criuVersionFromLog(log); v != "4.2.1" {
		t.Errorf("criuVersionFromLog = %q, want 4.2.1", v)
	}
	if v := criuVersionFromLog(filepath.Join(t.TempDir(), "none")); v != "" {
		t.Errorf("missing log gave %q", v)
	}
}

// Restore warns about a config.json that changed in what CRIU restores
// against, not about what engines write anew for every restore.
func TestWarnIfConfigChanged(t *testing.T) {
	bundle := t.TempDir()
	path := filepath.Join(bundle, "config.json")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const atCheckpoint = `{"ociVersion":"1.3.0","process":{"args":["sh"],"env":["HOSTNAME=a"]},"hostname":"a","root":{"path":"/r1"},
		"mounts":[{"destination":"/proc","type":"proc","source":"proc"},{"destination":"/etc/hostname","type":"bind","source":"/u/1/hostname","options":["rbind"]},{"destination":"/data","source":"/srv","options":["rbind","ro"]}],
		"annotations":{"io.kubernetes.cri-o.Created":"1"},
		"linux":{"cgroupsPath":"a.slice","namespaces":[{"type":"pid"},{"type":"network","path":"/run/netns/a"}]},"x-unknown":1}`
	write(atCheckpoint)
	m := &Manifest{ContainerID: "c"}
	var err error
	if m.ConfigDigest, err = manifest.FileDigest(path); err != nil {
		t.Fatal(err)
	}
	if m.ConfigSpecDigest, err = manifest.ConfigSpecDigest(path); err != nil {
		t.Fatal(err)
	}
	if m.ConfigShape, err = manifest.ReadConfigShape(path); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	logrus.SetOutput(&out)
	t.Cleanup(func() { logrus.SetOutput(os.Stderr) })
	for _, tc := range []struct {
		name, config string
		old          bool
		warn         string // what the warning must say; "" for none
	}{
		{"unchanged", atCheckpoint, false, ""},
		{"what CRI-O writes anew: root path, hostname, HOSTNAME, sources, cgroups path, annotations, netns", `{"ociVersion":"1.3.0","process":{"args":["sh"],"env":["HOSTNAME=b"]},"hostname":"b","root":{"path":"/r2"},
			"mounts":[{"destination":"/proc","type":"proc","source":"proc"},{"destination":"/etc/hostname","type":"bind","source":"/u/2/hostname","options":["rbind"]},{"destination":"/data","source":"/srv2","options":["rbind","ro"]}],
			"annotations":{"io.kubernetes.cri-o.Created":"2","new":"x"},
			"linux":{"cgroupsPath":"b.slice","namespaces":[{"path":"/run/netns/b","type":"network"},{"type":"pid"}]},"x-unknown":2}`, false, ""},
		{"a mount more", `{"ociVersion":"1.3.0","process":{"args":["sh"]},"root":{"path":"/r1"},
			"mounts":[{"destination":"/proc","type":"proc","source":"proc"},{"destination":"/etc/hostname","type":"bind","source":"/u/1/hostname","options":["rbind"]},{"destination":"/data","source":"/srv","options":["rbind","ro"]},{"destination":"/extra","type":"tmpfs","source":"tmpfs"}],
			"linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/run/netns/a"}]}}`, false, "mounts added: tmpfs /extra"},
		{"a mount moved", `{"ociVersion":"1.3.0","process":{"args":["sh"]},"root":{"path":"/r1"},
			"mounts":[{"destination":"/proc","type":"proc","source":"proc"},{"destination":"/etc/hostname","type":"bind","source":"/u/1/hostname","options":["rbind"]},{"destination":"/data2","source":"/srv","options":["rbind","ro"]}],
			"linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/run/netns/a"}]}}`, false, "mounts added: bind /data2; mounts removed: bind /data"},
		{"a namespace fewer", `{"ociVersion":"1.3.0","process":{"args":["sh"]},"root":{"path":"/r1"},
			"mounts":[{"destination":"/proc","type":"proc","source":"proc"},{"destination":"/etc/hostname","type":"bind","source":"/u/1/hostname","options":["rbind"]},{"destination":"/data","source":"/srv","options":["rbind","ro"]}],
			"linux":{"namespaces":[{"type":"pid"}]}}`, false, "namespaces were network,pid, are pid"},
		{"read-only root", `{"ociVersion":"1.3.0","process":{"args":["sh"]},"root":{"path":"/r1","readonly":true},
			"mounts":[{"destination":"/proc","type":"proc","source":"proc"},{"destination":"/etc/hostname","type":"bind","source":"/u/1/hostname","options":["rbind"]},{"destination":"/data","source":"/srv","options":["rbind","ro"]}],
			"linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/run/netns/a"}]}}`, false, "root.readonly was false, is true"},
		{"older manifest without the shape: any change but namespace paths", `{"ociVersion":"1.3.0","process":{"args":["ls"]}}`, true, "changed since the checkpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out.Reset()
			write(tc.config)
			mm := *m
			if tc.old {
				mm.ConfigShape = nil
			}
			warnIfConfigChanged(&mm, bundle)
			got := out.String()
			if tc.warn == "" && got != "" {
				t.Errorf("warned: %q", got)
			}
			if tc.warn != "" && !strings.Contains(got, tc.warn) {
				t.Errorf("warning %q lacks %q", got, tc.warn)
			}
		})
	}
}
