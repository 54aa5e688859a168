package libcheckpoint

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/crit"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// ManifestFile is the name of the manifest runcr writes into every image
// directory it makes. runc's image directories have none.
const ManifestFile = "runcr-manifest.json"

// ManifestVersion is the version of the manifest format this package
// writes; it reads this version and refuses newer ones.
const ManifestVersion = 1

// Manifest states. A checkpoint writes "incomplete" before CRIU starts and
// replaces it with "complete" only after CRIU succeeded and its statistics
// are read; a failed checkpoint removes it. One left "incomplete" means the
// checkpoint was killed midway, and restore refuses it.
const (
	ManifestIncomplete = "incomplete"
	ManifestComplete   = "complete"
)

// ErrIncompleteCheckpoint: the image directory holds a checkpoint that did
// not finish.
var ErrIncompleteCheckpoint = errors.New("checkpoint is incomplete")

// Manifest describes a checkpoint: what was dumped, from where, by what,
// and how. It is JSON in ManifestFile in the image directory.
type Manifest struct {
	// Version is ManifestVersion of the writer.
	Version int `json:"version"`
	// State is ManifestIncomplete or ManifestComplete.
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
	Versions ManifestVersions `json:"versions"`
	// Options are the checkpoint options used.
	Options ManifestOptions `json:"options"`
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

// ManifestVersions records the versions of runcr, libcontainer, CRIU and
// the kernel a checkpoint was made with.
type ManifestVersions struct {
	Runcr        string `json:"runcr,omitempty"`
	Libcontainer string `json:"libcontainer,omitempty"`
	CRIU         string `json:"criu,omitempty"`
	Kernel       string `json:"kernel,omitempty"`
}

// ManifestOptions are the checkpoint options a manifest records; the
// "must match" ones are applied again by a restore that doesn't give them.
type ManifestOptions struct {
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
	// (frozenprofile.go); runcr's, not CRIU's.
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

// manifestOptions records o as a manifest does.
func manifestOptions(o CheckpointOptions) ManifestOptions {
	return ManifestOptions{
		ImagePath:         o.ImagePath,
		WorkPath:          o.WorkPath,
		ParentPath:        o.ParentPath,
		LeaveRunning:      o.LeaveRunning,
		TCPEstablished:    o.TCPEstablished,
		TCPSkipInFlight:   o.TCPSkipInFlight,
		ExtUnixSockets:    o.ExtUnixSockets,
		ShellJob:          o.ShellJob,
		FileLocks:         o.FileLocks,
		LinkRemap:         o.LinkRemap,
		ManageCgroupsMode: o.ManageCgroupsMode,
		EmptyNamespaces:   o.EmptyNamespaces,
		AutoDedup:         o.AutoDedup,
		LazyPages:         o.LazyPages,
		PageServer:        o.PageServer,
		PreDump:           o.PreDump,
	}
}

// ReadManifest reads dir's manifest. A directory without one (as runc
// makes them) gives (nil, nil).
func ReadManifest(dir string) (*Manifest, error) {
	f, err := openImage(filepath.Join(dir, ManifestFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxManifestSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxManifestSize {
		return nil, fmt.Errorf("%s is more than runcr's limit of %d bytes for a manifest", ManifestFile, maxManifestSize)
	}
	return DecodeManifest(data)
}

// DecodeManifest parses and checks a manifest.
func DecodeManifest(data []byte) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s is not valid JSON: %w", ManifestFile, err)
	}
	switch {
	case m.Version < 1:
		return nil, fmt.Errorf("%s has no version", ManifestFile)
	case m.Version > ManifestVersion:
		return nil, fmt.Errorf("%s is version %d; this runcr reads up to version %d, use a newer runcr", ManifestFile, m.Version, ManifestVersion)
	case m.State != ManifestComplete && m.State != ManifestIncomplete:
		return nil, fmt.Errorf("%s has unknown state %q", ManifestFile, m.State)
	}
	return &m, nil
}

// writeManifest replaces dir's manifest atomically (temporary file,
// fsync, rename), so a reader sees the old one or the new one, whole.
func writeManifest(dir string, m *Manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := replaceFile(filepath.Join(dir, ManifestFile), func(f *os.File) error {
		_, err := f.Write(append(data, '\n'))
		return err
	}); err != nil {
		return fmt.Errorf("writing the manifest in %s: %w", dir, err)
	}
	return nil
}

// replaceFile replaces path, atomically, with what write puts in a new
// private (0600) file beside it, synced before the rename; on failure the
// new file is removed and path is left as it was.
func replaceFile(path string, write func(*os.File) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// fileDigest returns "sha256:<hex>" of a file's content.
func fileDigest(path string) (string, error) {
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

// configSpecDigest is the digest of the OCI config at path with the
// namespace paths left out, in a canonical form (decoded generically, so
// fields this runtime-spec doesn't know still count; re-encoded with
// sorted keys).
func configSpecDigest(path string) (string, error) {
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

// libcontainerVersion is the version of runc's module built into this
// binary, from the build information.
func libcontainerVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, d := range bi.Deps {
		if d.Path == "github.com/opencontainers/runc" {
			if d.Replace != nil {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return ""
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// criuVersionFromLog reads the version CRIU prints at the top of its log
// ("Version: 4.2.1 (gitid ...)"), which costs nothing, unlike asking a
// CRIU process.
func criuVersionFromLog(logFile string) string {
	f, err := os.Open(logFile)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for i := 0; i < 20 && sc.Scan(); i++ {
		if _, v, ok := strings.Cut(sc.Text(), "Version: "); ok {
			if sp := strings.IndexByte(v, ' '); sp > 0 {
				v = v[:sp]
			}
			return v
		}
	}
	return ""
}

// ReadDumpStats reads CRIU's stats-dump from dir. It decodes it with
// crit (see readStats): go-criu's stats package registers the same
// protobuf file as crit and the two cannot be linked together.
func ReadDumpStats(dir string) (*DumpStats, error) {
	st, err := readStats(dir, crit.StatsDump)
	if err != nil {
		return nil, err
	}
	s := st.GetDump()
	if s == nil {
		return nil, badImage(dir, crit.StatsDump, "holds no dump statistics")
	}
	return &DumpStats{
		FreezingTime:         s.GetFreezingTime(),
		FrozenTime:           s.GetFrozenTime(),
		MemdumpTime:          s.GetMemdumpTime(),
		MemwriteTime:         s.GetMemwriteTime(),
		PagesScanned:         s.GetPagesScanned(),
		PagesSkippedParent:   s.GetPagesSkippedParent(),
		PagesWritten:         s.GetPagesWritten(),
		PagesLazy:            s.GetPagesLazy(),
		IrmapResolve:         s.GetIrmapResolve(),
		ShpagesScanned:       s.GetShpagesScanned(),
		ShpagesSkippedParent: s.GetShpagesSkippedParent(),
		ShpagesWritten:       s.GetShpagesWritten(),
	}, nil
}

// ReadRestoreStats reads CRIU's stats-restore from dir.
func ReadRestoreStats(dir string) (*RestoreStats, error) {
	st, err := readStats(dir, crit.StatsRestore)
	if err != nil {
		return nil, err
	}
	s := st.GetRestore()
	if s == nil {
		return nil, badImage(dir, crit.StatsRestore, "holds no restore statistics")
	}
	return &RestoreStats{
		PagesCompared:   s.GetPagesCompared(),
		PagesSkippedCow: s.GetPagesSkippedCow(),
		ForkingTime:     s.GetForkingTime(),
		RestoreTime:     s.GetRestoreTime(),
		PagesRestored:   s.GetPagesRestored(),
	}, nil
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

func configShape(file string) (*ConfigShape, error) {
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

// differences says, for a person, how now differs from s.
func (s *ConfigShape) differences(now *ConfigShape) []string {
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
