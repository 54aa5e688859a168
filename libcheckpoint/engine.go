package libcheckpoint

import (
	"archive/tar"
	"bufio"
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

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"

	"github.com/runcr/runcr/libcheckpoint/archive"
	"github.com/runcr/runcr/libcheckpoint/internal/fsutil"
	"github.com/runcr/runcr/libcheckpoint/manifest"
)

// Container engines export checkpoints in another layout than runcr's
// archives (Podman's `container checkpoint --export`, the CRI's
// CheckpointContainer of CRI-O and containerd, which kubelet and
// `crictl checkpoint --export` drive): one tar, compressed or not, with
//
//	checkpoint/            CRIU's image directory
//	config.dump            the engine's container configuration (JSON)
//	spec.dump              the OCI spec the container ran with (JSON)
//	rootfs-diff.tar        the container's changes to its image's rootfs
//	deleted.files          what it deleted there (JSON list; Podman, CRI-O)
//	stats-dump, dump.log, network.status, status, status.dump, ctr.log,
//	container.log, bind.mounts, devshm-checkpoint.tar, artifacts/, ...
//
// Whether the archive is runcr's or an engine's is told by its entries:
// checkpoint/ and the *.dump files are found in engine archives only.
// Which engine wrote it is told by spec.dump's io.container.manager
// annotation ("libpod" Podman, "cri-o" CRI-O, none for containerd, whose
// CRI plugin sets io.kubernetes.cri.* annotations).

// ArchiveLayout is the layout of a checkpoint archive.
type ArchiveLayout string

const (
	// LayoutRuncr is runcr's own (checkpoint --export): flat image files,
	// the manifest last.
	LayoutRuncr ArchiveLayout = "runcr"
	// LayoutEngine is a container engine's (Podman, CRI-O, containerd):
	// checkpoint/ and the engine's metadata files.
	LayoutEngine ArchiveLayout = "engine"
)

// The engines an engine archive can come from, as EngineInfo.Engine names
// them.
const (
	EnginePodman     = "Podman"
	EngineCRIO       = "CRI-O"
	EngineContainerd = "containerd"
)

// Names in engine archives (checkpointctl's lib/metadata.go lists them).
const (
	engineCheckpointDir = "checkpoint"
	engineConfigDump    = "config.dump"
	engineSpecDump      = "spec.dump"
	engineRootfsDiff    = "rootfs-diff.tar"
	engineDeletedFiles  = "deleted.files"
	engineDumpLog       = "dump.log"
	engineStatsDump     = "stats-dump"
)

// engineOnlyNames are top-level names that only engine archives have.
var engineOnlyNames = map[string]bool{
	engineConfigDump: true, engineSpecDump: true, engineRootfsDiff: true, engineDeletedFiles: true,
	"network.status": true, "status.dump": true, "bind.mounts": true, "devshm-checkpoint.tar": true,
	"pod.options": true, "pod.dump": true,
}

const (
	// maxEngineJSON bounds a metadata file decoded into memory.
	maxEngineJSON = 16 << 20
	// maxRootfsEntries bounds the entries of a rootfs diff.
	maxRootfsEntries = 1 << 20
	// maxListedPaths bounds the paths an inspection lists.
	maxListedPaths = 200
)

// DetectArchiveLayout reads tar headers from r (compressed or not) until
// an entry tells whose layout the archive has. An archive with no telling
// entry is taken as runcr's, whose import then says what is missing.
func DetectArchiveLayout(r io.Reader) (ArchiveLayout, error) {
	dr, release, err := archive.Decompressor(bufio.NewReaderSize(r, archive.ImportBufSize))
	if err != nil {
		return "", err
	}
	defer release()
	tr := tar.NewReader(dr)
	for {
		hdr, err := tr.Next()
		if err != nil {
			return LayoutRuncr, nil // runcr's import reports a damaged archive
		}
		name := strings.TrimPrefix(hdr.Name, "./")
		top, _, nested := strings.Cut(strings.TrimSuffix(name, "/"), "/")
		switch {
		case top == engineCheckpointDir || engineOnlyNames[top] || ((nested || hdr.Typeflag == tar.TypeDir) && top != "." && top != ""):
			return LayoutEngine, nil
		case top == ManifestFile || top == ArchiveConfigFile || strings.HasSuffix(top, ".img"):
			return LayoutRuncr, nil
		}
	}
}

// DetectArchiveFileLayout is DetectArchiveLayout of the file at path.
func DetectArchiveFileLayout(path string) (ArchiveLayout, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return DetectArchiveLayout(f)
}

// engineArchive is what unpacking an engine archive found.
type engineArchive struct {
	// files are the top-level files unpacked into the metadata directory.
	files []ArchiveFile
	// skipped are entries not unpacked (other directories: artifacts/,
	// volumes/, a pre-checkpoint/ of a --with-previous export).
	skipped []string
	// checkpointBytes is the size of the files under checkpoint/.
	checkpointBytes int64
	// inventoryTime is the modification time of checkpoint/inventory.img.
	inventoryTime time.Time
}

// importEngineArchive unpacks an engine archive from r: the regular files
// under checkpoint/ into imageDir, the other top-level regular files into
// metaDir. It applies the rules of runcr's own archives (no absolute path,
// no "..", no links, devices or fifos where files are unpacked, no
// duplicates, at most limit bytes and archive.MaxEntries files), refuses a
// nested directory under checkpoint/ (CRIU's image directory is flat),
// skips other directories' entries, and needs checkpoint/inventory.img.
// On error the files it created are removed again and the error names the
// entry.
func importEngineArchive(r io.Reader, imageDir, metaDir string, limit int64) (_ *engineArchive, err error) {
	images, err := os.OpenRoot(imageDir)
	if err != nil {
		return nil, err
	}
	defer images.Close()
	meta, err := os.OpenRoot(metaDir)
	if err != nil {
		return nil, err
	}
	defer meta.Close()
	type created struct {
		root *os.Root
		name string
	}
	var made []created
	defer func() {
		if err != nil {
			for _, c := range made {
				_ = c.root.Remove(c.name)
			}
		}
	}()

	dr, release, err := archive.Decompressor(bufio.NewReaderSize(r, archive.ImportBufSize))
	if err != nil {
		return nil, err
	}
	defer release()
	tr := tar.NewReader(dr)
	buf := make([]byte, archive.ImportBufSize)
	ea := &engineArchive{}
	var total int64
	last := ""
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: reading the entry after %s: %w (the file is truncated or corrupt)", ErrBadArchive, archive.EntryDesc(last), err)
		}
		last = hdr.Name
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w: entry %q: %s", ErrBadArchive, hdr.Name, fmt.Sprintf(format, args...))
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		parts, err := engineEntryPath(hdr.Name)
		if err != nil {
			return nil, bad("%v", err)
		}
		var root *os.Root
		switch {
		case len(parts) == 0:
			continue // "." or "./"
		case len(parts) == 1 && parts[0] == engineCheckpointDir && hdr.Typeflag == tar.TypeDir:
			continue
		case parts[0] == engineCheckpointDir && len(parts) == 2:
			root = images
		case parts[0] == engineCheckpointDir:
			return nil, bad("is in a subdirectory of %s/; CRIU's image directory is flat", engineCheckpointDir)
		case len(parts) == 1 && hdr.Typeflag != tar.TypeDir:
			root = meta
		default:
			// Another directory (artifacts/, volumes/, pre-checkpoint/):
			// not needed to inspect or restore the checkpoint.
			if len(ea.skipped) < maxListedPaths && hdr.Typeflag != tar.TypeDir {
				ea.skipped = append(ea.skipped, strings.Join(parts, "/"))
			}
			continue
		}
		name := parts[len(parts)-1]
		if err := regularOnly(hdr); err != nil {
			return nil, bad("%v", err)
		}
		if len(made) >= archive.MaxEntries {
			return nil, bad("is one more than the %d files an archive may hold", archive.MaxEntries)
		}
		total += hdr.Size
		if hdr.Size < 0 || total > limit {
			return nil, bad("is %d bytes, which makes %d in all, more than the %d the target's file system has room for", hdr.Size, total, limit)
		}
		err = archive.WriteNew(root, name, tr, buf, nil)
		if errors.Is(err, os.ErrExist) {
			return nil, bad("is a duplicate entry")
		}
		made = append(made, created{root, name})
		if err != nil {
			return nil, bad("%v (the file is truncated or corrupt)", err)
		}
		if root == images {
			ea.checkpointBytes += hdr.Size
			if name == "inventory.img" {
				ea.inventoryTime = hdr.ModTime
			}
		} else {
			ea.files = append(ea.files, ArchiveFile{Name: name, Size: hdr.Size})
		}
	}
	if ea.inventoryTime.IsZero() {
		if _, err := images.Stat("inventory.img"); err != nil {
			return nil, fmt.Errorf("%w: no %s/inventory.img after %s: not a checkpoint archive of Podman, CRI-O or containerd, or it is truncated", ErrBadArchive, engineCheckpointDir, archive.EntryDesc(last))
		}
	}
	if n, err := io.CopyN(io.Discard, dr, archive.MaxTrailer+1); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: after the last entry: %w (the file is truncated or corrupt)", ErrBadArchive, err)
	} else if n > archive.MaxTrailer {
		return nil, fmt.Errorf("%w: more than %d bytes follow the end of the tar stream", ErrBadArchive, archive.MaxTrailer)
	}
	return ea, nil
}

// engineEntryPath splits an entry's name into its components, refusing
// absolute paths and "..". A leading "./" and a trailing "/" are dropped.
func engineEntryPath(name string) ([]string, error) {
	if strings.HasPrefix(name, "/") {
		return nil, errors.New("is an absolute path")
	}
	if strings.ContainsRune(name, 0) {
		return nil, errors.New("has a NUL byte in its name")
	}
	var parts []string
	for _, p := range strings.Split(name, "/") {
		switch p {
		case "", ".":
		case "..":
			return nil, errors.New("has \"..\": it would escape the target directory")
		default:
			parts = append(parts, p)
		}
	}
	return parts, nil
}

// regularOnly refuses anything but a regular file where an archive's
// files are unpacked.
func regularOnly(hdr *tar.Header) error {
	switch hdr.Typeflag {
	case tar.TypeReg:
		return nil
	case tar.TypeSymlink:
		return fmt.Errorf("is a symbolic link (to %q); only regular files are unpacked from a checkpoint archive", hdr.Linkname)
	case tar.TypeLink:
		return fmt.Errorf("is a hard link (to %q); only regular files are unpacked from a checkpoint archive", hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock:
		return errors.New("is a device node; only regular files are unpacked from a checkpoint archive")
	case tar.TypeFifo:
		return errors.New("is a fifo; only regular files are unpacked from a checkpoint archive")
	case tar.TypeDir:
		return errors.New("is a directory where a file is expected")
	}
	return fmt.Errorf("has type %q; only regular files are unpacked from a checkpoint archive", hdr.Typeflag)
}

// engineConfig is what runcr reads of config.dump: Podman's container
// config, and the reduced copy CRI-O and containerd write.
type engineConfig struct {
	ID              string    `json:"id"`
	Name            string    `json:"name"`
	RootfsImageName string    `json:"rootfsImageName"`
	RootfsImage     string    `json:"rootfsImage"`
	Runtime         string    `json:"runtime"`
	Pod             string    `json:"pod"`
	CreatedTime     time.Time `json:"createdTime"`
	// checkpointctl's field; Podman 4 leaves it null.
	CheckpointedTime *time.Time `json:"checkpointedTime"`
}

// engineSpec is what runcr reads of spec.dump.
type engineSpec struct {
	Annotations map[string]string `json:"annotations"`
	Mounts      []struct {
		Destination string   `json:"destination"`
		Type        string   `json:"type"`
		Options     []string `json:"options"`
	} `json:"mounts"`
	Linux *struct {
		Namespaces []struct {
			Type string `json:"type"`
			Path string `json:"path"`
		} `json:"namespaces"`
	} `json:"linux"`
}

// readEngineJSON decodes metaDir/name into v; a missing file is
// os.ErrNotExist.
func readEngineJSON(metaDir, name string, v any) error {
	root, err := os.OpenRoot(metaDir)
	if err != nil {
		return err
	}
	defer root.Close()
	f, err := root.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxEngineJSON+1))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if len(data) > maxEngineJSON {
		return fmt.Errorf("%s: more than %d bytes", name, maxEngineJSON)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: not valid JSON: %w", name, err)
	}
	return nil
}

// engineInfo reads the metadata files of an unpacked engine archive;
// warnings are what could not be read without making it unusable.
func engineInfo(ea *engineArchive, imageDir, metaDir string, manifest *Manifest) (*EngineInfo, []string) {
	info := &EngineInfo{
		CheckpointBytes: ea.checkpointBytes,
		Files:           ea.files,
		Skipped:         ea.skipped,
		DeletedFiles:    []string{},
	}
	if info.Files == nil {
		info.Files = []ArchiveFile{}
	}
	var warnings []string
	var cfg engineConfig
	if err := readEngineJSON(metaDir, engineConfigDump, &cfg); err != nil {
		warnings = append(warnings, fmt.Sprintf("%s not read: %v", engineConfigDump, fsutil.UnwrapPathError(err)))
	}
	var spec engineSpec
	if err := readEngineJSON(metaDir, engineSpecDump, &spec); err != nil {
		warnings = append(warnings, fmt.Sprintf("%s not read: %v", engineSpecDump, fsutil.UnwrapPathError(err)))
	}
	a := spec.Annotations
	info.ContainerID, info.ContainerName, info.Runtime = cfg.ID, cfg.Name, cfg.Runtime
	info.Image = cfg.RootfsImageName
	if info.Image == "" {
		info.Image = cfg.RootfsImage
	}
	switch a["io.container.manager"] {
	case "libpod":
		info.Engine = EnginePodman
		info.PodName = cfg.Pod
	case "cri-o":
		info.Engine = EngineCRIO
		var md struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal([]byte(a["io.kubernetes.cri-o.Metadata"]), &md); err == nil && md.Name != "" {
			info.ContainerName = md.Name
		} else if n := a["io.kubernetes.cri-o.ContainerName"]; n != "" && info.ContainerName == "" {
			info.ContainerName = n
		}
		info.PodName = firstOf(a["io.kubernetes.pod.name"], a["io.kubernetes.cri-o.PodName"])
		info.PodNamespace = firstOf(a["io.kubernetes.pod.namespace"], a["io.kubernetes.cri-o.Namespace"])
	default:
		// As checkpointctl: what is neither Podman's nor CRI-O's is
		// containerd's (its CRI plugin sets io.kubernetes.cri.*).
		if a != nil || cfg.ID != "" {
			info.Engine = EngineContainerd
			info.ContainerName = firstOf(a["io.kubernetes.cri.container-name"], info.ContainerName)
			info.PodName = a["io.kubernetes.cri.sandbox-name"]
			info.PodNamespace = a["io.kubernetes.cri.sandbox-namespace"]
		}
	}
	// Annotations newer engines set (checkpointctl's lib/annotations.go).
	info.EngineVersion = a["org.criu.checkpoint.engine.version"]
	info.RuntimeVersion = a["org.criu.checkpoint.runtime.version"]
	info.CRIUVersion = a["org.criu.checkpoint.criu.version"]
	if info.ContainerName == "" {
		info.ContainerName = a["org.criu.checkpoint.container.name"]
	}
	if info.CRIUVersion == "" {
		info.CRIUVersion = firstOf(criuVersionFromLog(filepath.Join(metaDir, engineDumpLog)), criuVersionFromLog(filepath.Join(imageDir, engineDumpLog)))
	}
	if manifest != nil {
		// runcr was the engine's runtime: its manifest knows.
		info.CRIUVersion = firstOf(info.CRIUVersion, manifest.Versions.CRIU)
		if info.RuntimeVersion == "" && manifest.Versions.Runcr != "" {
			info.RuntimeVersion = "runcr " + manifest.Versions.Runcr
		}
	}
	if !cfg.CreatedTime.IsZero() {
		t := cfg.CreatedTime
		info.Created = &t
	}
	switch {
	case cfg.CheckpointedTime != nil && !cfg.CheckpointedTime.IsZero():
		t := *cfg.CheckpointedTime
		info.Checkpointed = &t
	case !ea.inventoryTime.IsZero():
		t := ea.inventoryTime
		info.Checkpointed = &t
	}

	if deleted, err := readDeletedFiles(metaDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		warnings = append(warnings, fmt.Sprintf("%s: %v; restore refuses this archive", engineDeletedFiles, err))
	} else {
		info.DeletedFilesCount = len(deleted)
		info.DeletedFiles = deleted[:min(len(deleted), maxListedPaths)]
	}
	diffPath := filepath.Join(metaDir, engineRootfsDiff)
	if fi, err := os.Lstat(diffPath); err == nil {
		plan, err := scanRootfsDiff(diffPath, 1<<62)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("%v; restore refuses this archive", err))
		}
		if plan != nil {
			plan.summary.Bytes = fi.Size()
			info.RootfsDiff = &plan.summary
		}
	}
	return info, warnings
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// readDeletedFiles reads deleted.files: a JSON list of paths in the
// container's rootfs, each returned relative to it ("etc/motd"). A path
// with ".." or naming the rootfs itself is refused, not cleaned up.
func readDeletedFiles(metaDir string) ([]string, error) {
	var list []string
	if err := readEngineJSON(metaDir, engineDeletedFiles, &list); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(list))
	for _, p := range list {
		rel, err := rootfsRelPath(p, true)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", p, err)
		}
		if rel == "." {
			return nil, fmt.Errorf("%q names the rootfs itself", p)
		}
		out = append(out, rel)
	}
	return out, nil
}

// rootfsRelPath turns a path in the rootfs into a clean relative one;
// absOK allows a leading "/" (deleted.files lists paths as the container
// sees them). ".." is refused.
func rootfsRelPath(p string, absOK bool) (string, error) {
	if p == "" {
		return "", errors.New("is empty")
	}
	if strings.ContainsRune(p, 0) {
		return "", errors.New("has a NUL byte")
	}
	if strings.HasPrefix(p, "/") && !absOK {
		return "", errors.New("is an absolute path")
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return "", errors.New("has \"..\": it would escape the rootfs")
		}
	}
	return path.Clean(strings.TrimLeft(p, "/")), nil
}

// engineImport is an engine archive restore --import unpacked: its images
// went to the image directory, its metadata to metaDir.
type engineImport struct {
	archive string
	metaDir string
	ea      *engineArchive
	// maxDiff, when set, bounds the rootfs diff's content below the
	// rootfs's free space (tests).
	maxDiff int64
}

// rootfsPath is the bundle's rootfs as spec names it.
func rootfsPath(bundle string, spec *specs.Spec) (string, error) {
	if spec.Root == nil || spec.Root.Path == "" {
		return "", invalid("bundle", "%s/config.json has no root.path; the archive's rootfs changes need a rootfs to go to", bundle)
	}
	p := spec.Root.Path
	if !filepath.IsAbs(p) {
		p = filepath.Join(bundle, p)
	}
	return p, nil
}

// applyToBundle applies the archive's rootfs-diff.tar and deleted.files
// to the bundle's rootfs: everything is checked first, against the rootfs
// too, so that a refusal changes nothing.
func (ei *engineImport) applyToBundle(bundle string, spec *specs.Spec) error {
	rootfs, err := rootfsPath(bundle, spec)
	if err != nil {
		return err
	}
	warnMissingMounts(ei.metaDir, spec, bundle)
	deleted, err := readDeletedFiles(ei.metaDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: entry %q: %w", ErrBadArchive, engineDeletedFiles, err)
	}
	diffPath := filepath.Join(ei.metaDir, engineRootfsDiff)
	_, statErr := os.Lstat(diffPath)
	if len(deleted) == 0 && statErr != nil {
		return nil
	}
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return invalid("bundle", "the rootfs %s: %v", rootfs, fsutil.UnwrapPathError(err))
	}
	defer root.Close()
	plan := &rootfsDiffPlan{inRootfs: map[string]bool{}, made: map[string]diffKind{}}
	if statErr == nil {
		limit, err := archive.FreeSpace(rootfs)
		if err != nil {
			return err
		}
		if ei.maxDiff > 0 {
			limit = min(limit, ei.maxDiff)
		}
		if plan, err = scanRootfsDiff(diffPath, limit); err != nil {
			return err
		}
	}
	if err := plan.checkRootfs(root, deleted); err != nil {
		return err
	}
	start := time.Now()
	if statErr == nil {
		if err := applyRootfsDiff(diffPath, root, plan); err != nil {
			return fmt.Errorf("applying the rootfs changes to %s failed, which is left partly changed: %w", rootfs, err)
		}
	}
	if err := removeDeleted(root, deleted); err != nil {
		return fmt.Errorf("applying the rootfs changes to %s failed, which is left partly changed: %w", rootfs, err)
	}
	logrus.Debugf("applied %d rootfs entries and %d deletions to %s in %v", plan.summary.Entries, len(deleted), rootfs, time.Since(start))
	return nil
}

// warnMissingMounts warns about bind mounts of spec.dump the bundle lacks:
// CRIU restores a checkpoint's external (bind) mounts only when the
// config maps each of them to a source, and fails otherwise.
func warnMissingMounts(metaDir string, spec *specs.Spec, bundle string) {
	var dump engineSpec
	if readEngineJSON(metaDir, engineSpecDump, &dump) != nil {
		return
	}
	have := map[string]bool{}
	for _, m := range spec.Mounts {
		have[path.Clean(m.Destination)] = true
	}
	var missing []string
	for _, m := range dump.Mounts {
		if (m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")) && !have[path.Clean(m.Destination)] {
			missing = append(missing, m.Destination)
		}
	}
	if len(missing) > 0 {
		logrus.Warnf("%s/config.json lacks bind mounts the checkpointed container had (%s, see the archive's %s); CRIU cannot restore the checkpoint without a source for each", bundle, strings.Join(missing, " "), engineSpecDump)
	}
}

// finish removes the unpacked metadata.
func (ei *engineImport) finish() {
	warnIf(os.RemoveAll(ei.metaDir), "removing the temporary metadata directory")
}

// renamedError replaces a temporary directory's name in an error's text.
type renamedError struct {
	msg string
	err error
}

func (e *renamedError) Error() string { return e.msg }
func (e *renamedError) Unwrap() error { return e.err }

func renameInError(err error, old, new string) error {
	if err == nil {
		return nil
	}
	return &renamedError{strings.ReplaceAll(err.Error(), old, new), err}
}

// InspectPath inspects p: a checkpoint image directory, or an archive
// (runcr's, Podman's, CRI-O's or containerd's), unpacked with the checks
// of restore --import into a private temporary directory that is removed
// afterwards. For an engine archive the inspection has Engine set.
func InspectPath(p string) (*Inspection, error) {
	return InspectPathWith(p, InspectOptions{})
}

// InspectOptions are inspect's options.
type InspectOptions struct {
	// Verify checks the images against the digests of the manifest
	// (inspect --verify) and fails if there are none to check.
	Verify bool
}

// verifyDir checks the images of dir for inspect --verify.
func verifyDir(dir string) (*VerifyReport, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ManifestFile), err)
	}
	if m == nil || m.Images == nil {
		return nil, fmt.Errorf("--verify: %s has no image digests to check: it was made by runc, a container engine or a runcr older than digests (its images can still be restored)", dir)
	}
	if err := VerifyImages(dir, m); err != nil {
		return nil, err
	}
	return &VerifyReport{Files: len(m.Images), Bytes: m.ImagesSize, Algorithm: manifest.DigestAlgorithms(m)}, nil
}

// InspectPathWith is InspectPath with options.
func InspectPathWith(p string, opts InspectOptions) (*Inspection, error) {
	c, err := OpenCheckpoint(p, opts)
	if err != nil {
		return nil, err
	}
	c.Close()
	return c.Inspection, nil
}
