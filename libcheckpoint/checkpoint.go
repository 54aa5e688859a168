package libcheckpoint

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/runcr/runcr/libcheckpoint/internal/criuhost"
	"github.com/runcr/runcr/libcheckpoint/internal/fsutil"
	"github.com/runcr/runcr/libcheckpoint/manifest"
)

// CheckpointResult says what a successful checkpoint produced.
type CheckpointResult struct {
	// ImagePath is the absolute image directory.
	ImagePath string
	// LogPath is CRIU's dump.log.
	LogPath string
	// Destroyed is true when the container was removed after the dump
	// (neither --leave-running nor --pre-dump).
	Destroyed bool
	// Manifest is what was written to the image directory's ManifestFile.
	Manifest *Manifest
	// Archive is the file --export wrote, or "". When the images were
	// in a temporary directory, it is gone and ImagePath is "".
	Archive string
}

// Checkpoint dumps container id with CRIU into opts.ImagePath. Bad options
// and a container in the wrong state are refused before CRIU runs; when CRIU
// fails, the container keeps running (CRIU thaws it) and the error quotes
// the log. Only after a successful dump is the container destroyed, unless
// LeaveRunning or PreDump. When ctx ends before CRIU has finished the
// dump, CRIU is stopped and the container is left running (an error
// wrapping ErrCriuTimeout); once the dump is whole, it completes.
func (rt *Runtime) Checkpoint(ctx context.Context, id string, opts CheckpointOptions) (_ *CheckpointResult, err error) {
	plan, err := planCheckpoint(opts)
	if err != nil {
		return nil, err
	}
	criuOpts := plan.rpc
	if err := rt.checkCriuOnPath(); err != nil {
		return nil, err
	}
	container, err := rt.load(id)
	if err != nil {
		return nil, err
	}
	unlock, err := rt.lockContainer(id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	status, err := container.Status()
	if err != nil {
		return nil, fmt.Errorf("container %q: %w", id, err)
	}
	if status == libcontainer.Created || status == libcontainer.Stopped {
		return nil, fmt.Errorf("%w: container %q is %s; only a running or paused container can be checkpointed%s", ErrContainerState, id, status, stateAdvice(id, status))
	}
	var export *exportFile
	if opts.Export != "" {
		if export, err = startExport(&opts); err != nil {
			return nil, err
		}
		defer func() { export.finish(err) }()
	}
	if err := prepareCheckpointPaths(&opts, criuOpts); err != nil {
		return nil, err
	}
	if opts.StatusFD >= 0 {
		if err := checkWritableFD(opts.StatusFD); err != nil {
			return nil, err
		}
	}
	session, err := rt.prepareCriu(ctx, container)
	if err != nil {
		return nil, err
	}
	defer session.close()
	// libcontainer checks CRIU's memory tracking for --pre-dump only; a
	// dump on top of a parent needs it as well (CRIU's --track-mem).
	if opts.ParentPath != "" && !opts.PreDump {
		if err := requireCriuFeature(ctx, "mem_dirty_track", "--parent-path (incremental dumps need soft-dirty memory tracking)"); err != nil {
			return nil, err
		}
	}

	if opts.LazyPages {
		if works, why := lazyMigrationWorks(ctx); !works {
			return nil, errLazyBroken(why)
		}
	}

	res := &CheckpointResult{ImagePath: criuOpts.ImagesDirectory, LogPath: logPath(criuOpts, "dump.log")}
	// An "incomplete" manifest first: if runcr is killed during the dump,
	// it stays and restore refuses the half-written images.
	record := rt.newManifest(container, opts)
	if err := manifest.Write(res.ImagePath, record); err != nil {
		return nil, invalid("image-path", "%v", err)
	}
	guard := newDumpGuard(filepath.Join(rt.root(), id), session.criuPath)
	// Frozen by runcr, CRIU needn't wait for the freezer (freeze.go); a
	// container paused by its owner stays as CRIU finds it.
	var frozen *preFreeze
	var clock downtimeClock // frozenprofile.go
	if status == libcontainer.Running && !opts.LazyPages {
		clock.froze()
		frozen = freezeForCriu(container)
	}
	defer frozen.release()
	if err := checkMountsForCriu(container, fmt.Sprintf("checkpoint of container %q", id)); err != nil {
		thawUnlessPaused(container, status == libcontainer.Paused)
		os.Remove(filepath.Join(res.ImagePath, ManifestFile))
		return nil, err
	}
	frozen.shareWithCriu()
	// A container that CRIU ends is down for the whole checkpoint: its
	// memory images are hashed as CRIU writes them (digest_tail.go). One
	// that runs on only pauses while frozen: hashed once thawed. Not a
	// page server's (see below).
	var tail *manifest.ImageTail
	if opts.PageServer == "" && !opts.LeaveRunning && !opts.PreDump {
		tail = manifest.StartImageTail(res.ImagePath, logrus.Debugf)
		defer tail.Finish()
	}
	stopWatch := session.watch(ctx, guard.abort)
	// The images hold the container's memory, secrets included: CRIU
	// creates them with its umask, so keep them private to their owner.
	err = session.run(func() error { return container.Checkpoint(criuOpts) }, 0o077, true)
	stopWatch()
	if err != nil {
		if !guard.postDump() || !dumpFinished(res.LogPath) {
			thawUnlessPaused(container, status == libcontainer.Paused)
			os.Remove(filepath.Join(res.ImagePath, ManifestFile))
			switch {
			case errors.Is(ctx.Err(), context.DeadlineExceeded):
				return nil, fmt.Errorf("checkpoint of container %q into %s: %w; the container was left running and no checkpoint was made",
					id, res.ImagePath, criuhost.TimeoutError(context.Cause(ctx), "the dump"))
			case ctx.Err() != nil:
				return nil, fmt.Errorf("%w (%w): container %q was left running; no checkpoint was made", ErrInterrupted, context.Cause(ctx), id)
			}
			return nil, criuFailure(fmt.Sprintf("checkpoint of container %q into %s", id, res.ImagePath), err, res.LogPath)
		}
		// Only CRIU's last answer was lost: the dump is whole.
		logrus.Warnf("checkpoint of container %q: %v after CRIU finished the dump; keeping it", id, err)
	}
	keepsRunning := opts.LeaveRunning || opts.PreDump
	if keepsRunning {
		// CRIU refroze what it found frozen; if thawing fails, the thaw
		// guard has a go when released. Thawed first: nothing below
		// needs the container stopped (frozenprofile.go).
		thawUnlessPaused(container, status == libcontainer.Paused)
		if frozen != nil {
			clock.thawed()
		}
	}
	copyStats(criuOpts, "stats-dump")
	if frozen != nil || opts.CallerFroze {
		// Restored, the container must run, as it did before runcr froze it.
		warnIf(recordThawed(res.ImagePath), "container %q will be restored frozen from %s (resume it then)", id, res.ImagePath)
	}
	record.State = ManifestComplete
	record.Completed = time.Now().UTC()
	record.Versions.CRIU = criuVersionFromLog(res.LogPath)
	if st, err := ReadDumpStats(res.ImagePath); err == nil {
		record.DumpStats = st
		st.Profile = manifest.BuildFrozenProfile(res.LogPath, st, clock.stopped())
	} else {
		logrus.Debugf("no CRIU dump statistics: %v", err)
	}
	// CRIU is done (and, without --leave-running, has ended the
	// processes): what the tail has not hashed is hashed now, at no
	// frozen time. Not with a page server, which writes its pagemap and
	// pages into the directory itself, when it likes.
	digestStart := time.Now()
	var images map[string]ImageFile
	var derr error
	if opts.PageServer == "" {
		images, derr = manifest.DigestImagesTailed(res.ImagePath, tail.Finish())
	}
	if derr != nil {
		// The dump is good; it is only not protected by digests.
		logrus.Warnf("checkpoint of container %q: hashing its images in %s failed: %v; the manifest records no digests, so restore cannot check them", id, res.ImagePath, derr)
		images = nil
	}
	record.Images = images
	for _, f := range images {
		record.ImagesSize += f.Size
	}
	logrus.Debugf("hashing %d bytes of images took %v", record.ImagesSize, time.Since(digestStart))
	if err := manifest.Write(res.ImagePath, record); err != nil {
		// The dump is good, but without a complete manifest restore would
		// refuse it: keep the container rather than destroy it.
		if !keepsRunning {
			thawUnlessPaused(container, status == libcontainer.Paused)
		}
		return nil, fmt.Errorf("container %q was dumped but %w; the container was left running", id, err)
	}
	res.Manifest = record
	if !keepsRunning {
		// CRIU has killed the processes; drop the state and cgroups.
		if err := container.Destroy(); err != nil {
			logrus.Warnf("container %q was checkpointed but removing its state failed: %v", id, err)
		} else {
			res.Destroyed = true
		}
	}
	if export != nil {
		if err := export.write(res.ImagePath, bundleConfig(record), opts.Compress, opts.Progress); err != nil {
			return nil, &ExportError{Archive: export.path, ImagePath: res.ImagePath, ContainerID: id, LeftRunning: opts.LeaveRunning, Err: err}
		}
		res.Archive = export.path
		if export.tmpImages != "" {
			res.ImagePath = ""
		}
	}
	return res, nil
}

// bundleConfig is the bundle's config.json for an archive, or "" if the
// bundle is not known or the file is gone.
func bundleConfig(m *Manifest) string {
	if m.Bundle == "" {
		return ""
	}
	path := filepath.Join(m.Bundle, "config.json")
	if _, err := os.Stat(path); err != nil {
		logrus.Warnf("the archive holds no config.json: %v", err)
		return ""
	}
	return path
}

// newManifest describes the checkpoint about to be made, as incomplete.
func (rt *Runtime) newManifest(c *libcontainer.Container, opts CheckpointOptions) *Manifest {
	m := &Manifest{
		Version:     ManifestVersion,
		State:       ManifestIncomplete,
		ContainerID: c.ID(),
		Versions: ManifestVersions{
			Runcr:        rt.Version,
			Libcontainer: libcontainerVersion(),
			Kernel:       kernelRelease(),
		},
		Options: manifestOptions(opts),
		Created: time.Now().UTC(),
	}
	if st, err := c.State(); err == nil {
		m.InheritedFDs = externalFDs(st.InitProcessPid)
	}
	config := c.Config()
	m.Rootfs = config.Rootfs
	for _, label := range config.Labels {
		if b, ok := strings.CutPrefix(label, "bundle="); ok {
			m.Bundle = b
		}
	}
	if m.Bundle != "" {
		path := filepath.Join(m.Bundle, "config.json")
		if d, err := manifest.FileDigest(path); err == nil {
			m.ConfigDigest = d
		} else {
			logrus.Debugf("no digest of the bundle's config.json: %v", err)
		}
		if shape, err := manifest.ReadConfigShape(path); err == nil {
			m.ConfigShape = shape
		}
	}
	return m
}

// thawUnlessPaused makes sure a container that was running before the
// checkpoint is thawed after it: CRIU leaves frozen what runcr froze for it
// (freeze.go) after a dump that kept it running or failed, and one that is
// killed or crashes leaves the freezer cgroup frozen. A container its owner
// had paused (wasPaused) stays paused.
func thawUnlessPaused(c *libcontainer.Container, wasPaused bool) {
	if wasPaused {
		return
	}
	if st, err := c.Status(); err == nil && st == libcontainer.Paused {
		warnIf(c.Resume(), "thawing container %q after the checkpoint", c.ID())
	}
}

// stateAdvice says what to do about a container that can't be checkpointed.
func stateAdvice(id string, status libcontainer.Status) string {
	switch status {
	case libcontainer.Created:
		return fmt.Sprintf("; start it first (`runcr start %s`)", id)
	case libcontainer.Stopped:
		return "; its processes have exited, so there is nothing to checkpoint"
	}
	return ""
}

// prepareCheckpointPaths resolves the image, work and parent directories,
// creating the first two private (0700) as CRIU writes memory there.
func prepareCheckpointPaths(opts *CheckpointOptions, c *libcontainer.CriuOpts) error {
	cwd, err := os.Getwd()
	if err != nil {
		return err
	}
	if c.ImagesDirectory, err = absPath(opts.ImagePath, filepath.Join(cwd, "checkpoint")); err != nil {
		return invalid("image-path", "%v", err)
	}
	if c.ImagesDirectory, err = makePrivateDir("image-path", c.ImagesDirectory); err != nil {
		return err
	}
	if c.WorkDirectory, err = privateWorkDir(opts.WorkPath); err != nil {
		return err
	}
	if opts.ParentPath != "" {
		parent := filepath.Join(c.ImagesDirectory, opts.ParentPath)
		// A chain of checkpoints lives in one directory (../pre1, as the
		// engines pass it); a parent elsewhere is a mistake or a way to
		// make CRIU read, and with --auto-dedup punch holes in, any dir.
		base := filepath.Dir(c.ImagesDirectory)
		switch rel, err := filepath.Rel(base, parent); {
		case parent == c.ImagesDirectory:
			return invalid("parent-path", "%q is the image directory itself; give the directory of an earlier --pre-dump, e.g. ../pre1", opts.ParentPath)
		case err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../"):
			return invalid("parent-path", "%q leads to %s, outside %s where --image-path is; keep the pre-dump next to the image directory and give it as ../NAME", opts.ParentPath, parent, base)
		}
		fi, err := os.Stat(parent)
		switch {
		case err != nil:
			return invalid("parent-path", "%s: %v; give the directory of an earlier --pre-dump, relative to --image-path", parent, fsutil.UnwrapPathError(err))
		case !fi.IsDir():
			return invalid("parent-path", "%s is not a directory; give the directory of an earlier --pre-dump, relative to --image-path", parent)
		}
	}
	return nil
}

// privateWorkDir resolves --work-path and makes it a private directory;
// empty stays empty (CRIU then works in the image directory).
func privateWorkDir(workPath string) (string, error) {
	if workPath == "" {
		return "", nil
	}
	dir, err := absPath(workPath, "")
	if err != nil {
		return "", invalid("work-path", "%v", err)
	}
	return makePrivateDir("work-path", dir)
}

// makePrivateDir creates dir (and parents) mode 0700, or checks that an
// existing one is safe to write memory images to, and returns the
// directory CRIU is to use. The images hold the container's memory, so
// an existing dir must be owned by the caller's effective uid and not be
// writable by its group or others (they could plant links in it for CRIU
// to write through, or swap files). A symbolic link at the final component
// is followed only when nobody else could have planted or swapped it (see
// trustedLink): engines keep such links (containerd's bundle/work), while
// one planted in a shared directory such as /tmp would redirect the images.
// The link is resolved once and the real directory returned, so swapping
// it later changes nothing. Links in the parent components are followed,
// as for any path (/var/run -> /run).
func makePrivateDir(flag, dir string) (string, error) {
	if fi, err := os.Lstat(dir); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		real, err := followTrustedLink(flag, dir, fi)
		if err != nil {
			return "", err
		}
		dir = real
	} else if err == nil && !fi.IsDir() {
		return "", invalid(flag, "%s exists and is not a directory; give a new path or a directory", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", invalid(flag, "cannot create %s: %v; give a directory you can create or write", dir, fsutil.UnwrapPathError(err))
	}
	// Check what is there now without following a link planted since.
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	// With O_DIRECTORY, a link gives ENOTDIR rather than ELOOP.
	if fi, lerr := os.Lstat(dir); err != nil && lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
		return "", errSymlinkDir(flag, dir, "it appeared while runcr was creating the directory")
	}
	switch {
	case errors.Is(err, unix.ELOOP):
		return "", errSymlinkDir(flag, dir, "it appeared while runcr was creating the directory")
	case errors.Is(err, unix.ENOTDIR):
		return "", invalid(flag, "%s is not a directory; give a directory for the images", dir)
	case err != nil:
		return "", invalid(flag, "%s: %v", dir, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", invalid(flag, "%s: %v", dir, err)
	}
	if uid := os.Geteuid(); int(st.Uid) != uid {
		return "", invalid(flag, "%s is owned by uid %d, not by uid %d running runcr; the images hold the container's memory, so give a directory of your own (or a new path)", dir, st.Uid, uid)
	}
	if st.Mode&0o022 != 0 {
		return "", invalid(flag, "%s is writable by its group or others (mode %04o); the images hold the container's memory, so `chmod go-w` it or give a private directory", dir, st.Mode&0o7777)
	}
	if err := unix.Faccessat(unix.AT_FDCWD, dir, unix.W_OK, unix.AT_EACCESS); err != nil {
		return "", invalid(flag, "%s is not writable: %v; give a directory you can write", dir, err)
	}
	return dir, nil
}

// followTrustedLink resolves the symbolic link at dir (link is its Lstat)
// if trustedLink allows it and it leads to an existing directory.
func followTrustedLink(flag, dir string, link os.FileInfo) (string, error) {
	if why := untrustedLink(dir, link); why != "" {
		return "", errSymlinkDir(flag, dir, why)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", errSymlinkDir(flag, dir, fmt.Sprintf("it leads nowhere (%v)", fsutil.UnwrapPathError(err)))
	}
	if fi, err := os.Stat(real); err != nil || !fi.IsDir() {
		return "", invalid(flag, "%s is a symbolic link to %s, which is not a directory; give a directory for the images", dir, real)
	}
	return real, nil
}

// untrustedLink says why the link at path could have been planted or
// swapped by someone other than the caller, or "" if it could not: it is
// owned by the caller's effective uid, and the directory holding it is
// owned by the caller or root and either not writable by its group or
// others, or sticky (then only the link's owner may replace it). This is
// the kernel's protected_symlinks rule, made strict.
func untrustedLink(path string, link os.FileInfo) string {
	uid := os.Geteuid()
	if st, ok := link.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != uid {
		owner := -1
		if ok {
			owner = int(st.Uid)
		}
		return fmt.Sprintf("the link is owned by uid %d, not by uid %d running runcr", owner, uid)
	}
	parent := filepath.Dir(path)
	var st unix.Stat_t
	if err := unix.Stat(parent, &st); err != nil {
		return fmt.Sprintf("its directory %s cannot be checked: %v", parent, err)
	}
	if int(st.Uid) != uid && st.Uid != 0 {
		return fmt.Sprintf("its directory %s is owned by uid %d", parent, st.Uid)
	}
	if st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0 {
		return fmt.Sprintf("its directory %s is writable by others (mode %04o), who could swap it", parent, st.Mode&0o7777)
	}
	return ""
}

func errSymlinkDir(flag, dir, why string) error {
	return invalid(flag, "%s is a symbolic link and %s; runcr does not follow a link someone else could have planted at the image or work path (it would redirect the container's memory), so give the real directory", dir, why)
}

// checkWritableFD checks that fd is open for writing, as CRIU will write
// to it only after the container is frozen.
func checkWritableFD(fd int) error {
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return invalid("status-fd", "file descriptor %d is not open: %v", fd, err)
	}
	if flags&(unix.O_WRONLY|unix.O_RDWR) == 0 {
		return invalid("status-fd", "file descriptor %d is not open for writing", fd)
	}
	return nil
}

// copyStats puts CRIU's statistics file, which it writes to the work
// directory, into the image directory as well, where some engines look.
func copyStats(c *libcontainer.CriuOpts, name string) {
	if c.WorkDirectory == "" || c.WorkDirectory == c.ImagesDirectory {
		return
	}
	data, err := os.ReadFile(filepath.Join(c.WorkDirectory, name))
	if err != nil {
		return
	}
	warnIf(os.WriteFile(filepath.Join(c.ImagesDirectory, name), data, 0o600), "copying %s to the image directory", name)
}

func logPath(c *libcontainer.CriuOpts, name string) string {
	if c.WorkDirectory != "" {
		return filepath.Join(c.WorkDirectory, name)
	}
	return filepath.Join(c.ImagesDirectory, name)
}
