package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runcr/runcr/libcheckpoint/internal/fsutil"
)

// File is the name of the manifest runcr writes into every image
// directory it makes. runc's image directories have none.
const File = "runcr-manifest.json"

// Version is the version of the manifest format this package
// writes; it reads this version and refuses newer ones.
const Version = 1

// MaxSize bounds the manifest read into memory.
const MaxSize = 16 << 20

// The other files runcr keeps in an image directory, which are not CRIU
// images: an archive's copy of the bundle's config.json, and the size
// declaration that leads the archives runcr writes (read, not unpacked).
const (
	BundleConfigFile = "config.json"
	SizesFile        = ".runcr-sizes.json"
)

// Manifest states. A checkpoint writes "incomplete" before CRIU starts and
// replaces it with "complete" only after CRIU succeeded and its statistics
// are read; a failed checkpoint removes it. One left "incomplete" means the
// checkpoint was killed midway, and restore refuses it.
const (
	StateIncomplete = "incomplete"
	StateComplete   = "complete"
)

// ErrIncomplete: the image directory holds a checkpoint that did
// not finish.
var ErrIncomplete = errors.New("checkpoint is incomplete")

// Manifest describes a checkpoint: what was dumped, from where, by what,
// and how. It is JSON in File in the image directory.
type Manifest struct {
	// Version is Version of the writer.
	Version int `json:"version"`
	// State is StateIncomplete or StateComplete.
	State string `json:"state"`
	// ContainerID is the id the container had.
	ContainerID string `json:"container_id"`
	// Bundle is the container's bundle directory (absolute), where restore
	// finds config.json when not told otherwise.
	Bundle string `json:"bundle,omitempty"`
	// ConfigDigest is "sha256:<hex>" of the bundle's config.json at
	// checkpoint time; restore warns when it changed.
	ConfigDigest string `json:"config_digest,omitempty"`
	// ConfigSpecDigest is "sha256:<hex>" of that config.json with what an
	// engine sets up anew for every restore left out (the paths of the
	// namespaces to join: Podman makes a new network namespace each time),
	// so restore warns only about changes that matter.
	ConfigSpecDigest string `json:"config_spec_digest,omitempty"`
	// ConfigShape is what of config.json CRIU restores against; restore
	// warns when it differs (written since runcr compares only this:
	// engines rewrite the rest, sources and hostname included, at every
	// restore).
	ConfigShape *ConfigShape `json:"config_shape,omitempty"`
	// Rootfs is the container's root file system on the host.
	Rootfs string `json:"rootfs,omitempty"`
	// Versions of the software that made the checkpoint.
	Versions Versions `json:"versions"`
	// Options are the checkpoint options used.
	Options Options `json:"options"`
	// Created is when the checkpoint started.
	Created time.Time `json:"created"`
	// Completed is when it finished (zero while incomplete).
	Completed time.Time `json:"completed,omitzero"`
	// DumpStats are CRIU's statistics of the dump (stats-dump).
	DumpStats *DumpStats `json:"dump_stats,omitempty"`
	// InheritedFDs are the pipes and sockets the container's init held
	// at descriptors 3 and up, by number ("pipe:[INODE]"), which restore
	// --preserve-fds reattaches to the descriptors it is given.
	InheritedFDs map[int]string `json:"inherited_fds,omitempty"`
	// Images are the image files by name, with their sizes and digests
	// (digest.go), recorded when the checkpoint completed; nil in
	// manifests older than digests.
	Images map[string]ImageFile `json:"images,omitempty"`
	// ImagesSize is the sum of Images' sizes.
	ImagesSize int64 `json:"images_size,omitempty"`
}

// Versions records the versions of runcr, libcontainer, CRIU and
// the kernel a checkpoint was made with.
type Versions struct {
	Runcr        string `json:"runcr,omitempty"`
	Libcontainer string `json:"libcontainer,omitempty"`
	CRIU         string `json:"criu,omitempty"`
	Kernel       string `json:"kernel,omitempty"`
}

// Options are the checkpoint options a manifest records; the
// "must match" ones are applied again by a restore that doesn't give them.
type Options struct {
	ImagePath         string   `json:"image_path,omitempty"`
	WorkPath          string   `json:"work_path,omitempty"`
	ParentPath        string   `json:"parent_path,omitempty"`
	LeaveRunning      bool     `json:"leave_running,omitempty"`
	TCPEstablished    bool     `json:"tcp_established,omitempty"`
	TCPSkipInFlight   bool     `json:"tcp_skip_in_flight,omitempty"`
	ExtUnixSockets    bool     `json:"ext_unix_sk,omitempty"`
	ShellJob          bool     `json:"shell_job,omitempty"`
	FileLocks         bool     `json:"file_locks,omitempty"`
	LinkRemap         bool     `json:"link_remap,omitempty"`
	ManageCgroupsMode string   `json:"manage_cgroups_mode,omitempty"`
	EmptyNamespaces   []string `json:"empty_ns,omitempty"`
	AutoDedup         bool     `json:"auto_dedup,omitempty"`
	LazyPages         bool     `json:"lazy_pages,omitempty"`
	PageServer        string   `json:"page_server,omitempty"`
	PreDump           bool     `json:"pre_dump,omitempty"`
}

// DumpStats are CRIU's dump statistics; times in microseconds.
type DumpStats struct {
	FreezingTime         uint32 `json:"freezing_time"`
	FrozenTime           uint32 `json:"frozen_time"`
	MemdumpTime          uint32 `json:"memdump_time"`
	MemwriteTime         uint32 `json:"memwrite_time"`
	PagesScanned         uint64 `json:"pages_scanned"`
	PagesSkippedParent   uint64 `json:"pages_skipped_parent"`
	PagesWritten         uint64 `json:"pages_written"`
	PagesLazy            uint64 `json:"pages_lazy,omitempty"`
	IrmapResolve         uint32 `json:"irmap_resolve,omitempty"`
	ShpagesScanned       uint64 `json:"shpages_scanned,omitempty"`
	ShpagesSkippedParent uint64 `json:"shpages_skipped_parent,omitempty"`
	ShpagesWritten       uint64 `json:"shpages_written,omitempty"`
	// Profile is where the time the container was stopped went
	// (profile.go); runcr's, not CRIU's.
	Profile *FrozenProfile `json:"frozen_profile,omitempty"`
}

// RestoreStats are CRIU's restore statistics; times in microseconds.
type RestoreStats struct {
	PagesCompared   uint64 `json:"pages_compared"`
	PagesSkippedCow uint64 `json:"pages_skipped_cow"`
	ForkingTime     uint32 `json:"forking_time"`
	RestoreTime     uint32 `json:"restore_time"`
	PagesRestored   uint64 `json:"pages_restored"`
}

// Read reads dir's manifest. A directory without one (as runc
// makes them) gives (nil, nil).
func Read(dir string) (*Manifest, error) {
	f, err := fsutil.OpenRegular(filepath.Join(dir, File))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%s is more than runcr's limit of %d bytes for a manifest", File, MaxSize)
	}
	return Decode(data)
}

// Decode parses and checks a manifest.
func Decode(data []byte) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s is not valid JSON: %w", File, err)
	}
	switch {
	case m.Version < 1:
		return nil, fmt.Errorf("%s has no version", File)
	case m.Version > Version:
		return nil, fmt.Errorf("%s is version %d; this runcr reads up to version %d, use a newer runcr", File, m.Version, Version)
	case m.State != StateComplete && m.State != StateIncomplete:
		return nil, fmt.Errorf("%s has unknown state %q", File, m.State)
	}
	return &m, nil
}

// Write replaces dir's manifest atomically (temporary file,
// fsync, rename), so a reader sees the old one or the new one, whole.
func Write(dir string, m *Manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := fsutil.ReplaceFile(filepath.Join(dir, File), 0o600, func(f *os.File) error {
		_, err := f.Write(append(data, '\n'))
		return err
	}); err != nil {
		return fmt.Errorf("writing the manifest in %s: %w", dir, err)
	}
	return nil
}

// FileDigest returns "sha256:<hex>" of a file's content.
func FileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// ConfigSpecDigest is the digest of the OCI config at path with the
// namespace paths left out, in a canonical form (decoded generically, so
// fields this runtime-spec doesn't know still count; re-encoded with
// sorted keys).
func ConfigSpecDigest(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var config map[string]any
	if err := json.Unmarshal(data, &config); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if linux, ok := config["linux"].(map[string]any); ok {
		if namespaces, ok := linux["namespaces"].([]any); ok {
			for _, ns := range namespaces {
				if ns, ok := ns.(map[string]any); ok {
					delete(ns, "path")
				}
			}
		}
	}
	canonical, err := json.Marshal(config)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(canonical)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// ConfigShape is the part of a bundle's config.json that must match the
// dump for CRIU: the mounts (by type and destination, in order: CRIU
// restores the mount tree it dumped and fails on another), the namespaces
// (by type: engines join new ones at every restore) and whether the root
// is read-only. Sources, hostname, environment, annotations, cgroup paths
// and the rootfs path are left out: engines such as CRI-O and Podman
// write them anew for each restore.
type ConfigShape struct {
	RootReadonly bool     `json:"root_readonly"`
	Mounts       []string `json:"mounts"`
	Namespaces   []string `json:"namespaces"`
}

func ReadConfigShape(file string) (*ConfigShape, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	shape := &ConfigShape{Mounts: []string{}, Namespaces: []string{}}
	if spec.Root != nil {
		shape.RootReadonly = spec.Root.Readonly
	}
	for _, m := range spec.Mounts {
		typ := m.Type
		if typ == "" && (slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")) {
			typ = "bind"
		}
		shape.Mounts = append(shape.Mounts, typ+" "+path.Clean("/"+m.Destination))
	}
	if spec.Linux != nil {
		for _, ns := range spec.Linux.Namespaces {
			shape.Namespaces = append(shape.Namespaces, string(ns.Type))
		}
	}
	slices.Sort(shape.Namespaces)
	return shape, nil
}

// Differences says, for a person, how now differs from s.
func (s *ConfigShape) Differences(now *ConfigShape) []string {
	var d []string
	if s.RootReadonly != now.RootReadonly {
		d = append(d, fmt.Sprintf("root.readonly was %v, is %v", s.RootReadonly, now.RootReadonly))
	}
	if !slices.Equal(s.Mounts, now.Mounts) {
		added, removed := listDiff(s.Mounts, now.Mounts)
		switch {
		case len(added) == 0 && len(removed) == 0:
			d = append(d, "the mounts are in another order")
		default:
			if len(added) > 0 {
				d = append(d, "mounts added: "+strings.Join(added, ", "))
			}
			if len(removed) > 0 {
				d = append(d, "mounts removed: "+strings.Join(removed, ", "))
			}
		}
	}
	if !slices.Equal(s.Namespaces, now.Namespaces) {
		d = append(d, fmt.Sprintf("namespaces were %s, are %s", strings.Join(s.Namespaces, ","), strings.Join(now.Namespaces, ",")))
	}
	return d
}

// listDiff returns what of b is not in a and what of a is not in b.
func listDiff(a, b []string) (added, removed []string) {
	for _, x := range b {
		if !slices.Contains(a, x) {
			added = append(added, x)
		}
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			removed = append(removed, x)
		}
	}
	return added, removed
}
