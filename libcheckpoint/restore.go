package libcheckpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/specconv"
	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/runcr/runcr/libcheckpoint/image"
	"github.com/runcr/runcr/libcheckpoint/internal/fsutil"
	"github.com/runcr/runcr/libcheckpoint/manifest"
)

// Stdio is what a restored container's standard streams are connected to:
// inherited directly when detached, copied to and from when in the
// foreground. Nil fields mean the calling process's own.
type Stdio struct {
	In, Out, Err *os.File
}

func (s Stdio) orDefault() Stdio {
	if s.In == nil {
		s.In = os.Stdin
	}
	if s.Out == nil {
		s.Out = os.Stdout
	}
	if s.Err == nil {
		s.Err = os.Stderr
	}
	return s
}

// Restored describes a container CRIU has just restored.
type Restored struct {
	// ID is the container's id.
	ID string
	// Pid is the host pid of its init process.
	Pid int
	// WorkPath is the directory holding CRIU's restore.log and
	// stats-restore: the work directory, or the image directory when there
	// is none (a temporary one is gone by now after restore --import).
	WorkPath string
	// Stats are CRIU's restore statistics, read before any temporary
	// images are removed; StatsErr says why they couldn't be read.
	Stats    *RestoreStats
	StatsErr error
}

// Restore creates container id from the bundle and restores its processes
// from opts.ImagePath. Detached, it returns 0 once the container runs;
// otherwise it waits, forwarding signals, and returns the container's exit
// status. On failure nothing is left under the root: the half-made
// container is destroyed and the images are untouched. ctx bounds the
// waits on CRIU: when it ends first, CRIU is stopped and the restore fails
// (an error wrapping ErrCriuTimeout); the foreground wait for the
// container is not bounded by it. opts.Stdio are the container's stdio
// and opts.OnRestored is told of the restore once it is done.
func (rt *Runtime) Restore(ctx context.Context, id string, opts RestoreOptions) (_ int, err error) {
	if err := opts.Validate(); err != nil {
		return -1, err
	}
	if err := validateID(id); err != nil {
		return -1, err
	}
	if err := rt.checkCriuOnPath(); err != nil {
		return -1, err
	}
	var imported *importedImages
	if opts.Import != "" {
		// Before unpacking what may be gigabytes: is the id free?
		if _, err := os.Stat(filepath.Join(rt.root(), id)); err == nil {
			return -1, fmt.Errorf("%w: %q under --root %s; restore under another id or delete that container first", ErrContainerExists, id, rt.root())
		}
		if imported, err = importImages(&opts); err != nil {
			return -1, err
		}
		defer func() { imported.finish(err) }()
	}
	// An engine's archive may hold runcr's manifest (runcr was the
	// engine's runtime); the bundle it names is the engine's, not one to
	// restore into.
	engine := imported != nil && imported.engine != nil
	manifest, err := applyManifest(&opts, !engine)
	if errors.Is(err, ErrIncompleteCheckpoint) && rt.isBusy(manifest.ContainerID) {
		return -1, fmt.Errorf("%w: --image-path: the checkpoint of %q is still writing these images; restore once it is done", ErrBusy, manifest.ContainerID)
	}
	if err != nil {
		return -1, err
	}
	stdio := opts.Stdio.orDefault()
	dirs, err := prepareRestorePaths(&opts)
	if err != nil {
		return -1, err
	}
	plan, err := planRestore(opts, manifest, dirs, dupHigh)
	if err != nil {
		return -1, err
	}
	defer plan.release()
	if err := plan.linkParent(); err != nil {
		return -1, err
	}
	if engine {
		if _, err := os.Stat(filepath.Join(opts.Bundle, "config.json")); err != nil {
			return -1, invalid("bundle", "%s has no config.json: %v; restoring an engine's archive needs a bundle whose config.json has the checkpointed container's mounts and namespaces. The archive's %s is the config the container ran with, but it names the engine's rootfs, bind mount sources and network namespace, which are gone or the engine's: runcr does not use it as it is; adapt a copy of it (root.path, bind mount sources, namespace paths, cgroupsPath) into the bundle",
				opts.Bundle, fsutil.UnwrapPathError(err), engineSpecDump)
		}
	}
	spec, err := loadSpec(opts.Bundle)
	if err != nil {
		return -1, err
	}
	if !engine {
		warnIfConfigChanged(manifest, opts.Bundle)
	}
	// Before CRIU reads a byte, after the bounded checks of the images'
	// structure (prepareRestorePaths): the images are the ones the
	// checkpoint wrote (an import checked them as it unpacked them).
	if imported == nil || !imported.verified {
		if err := verifyRestoreImages(plan.rpc.ImagesDirectory, manifest); err != nil {
			return -1, fmt.Errorf("restore of container %q failed before CRIU ran: %w", id, err)
		}
	}
	r := &restorer{
		opts:       opts,
		stdio:      stdio,
		terminal:   spec.Process.Terminal,
		onRestored: opts.OnRestored,
	}
	if err := r.checkTerminal(); err != nil {
		return -1, err
	}
	if imported != nil {
		r.afterRestore = append(r.afterRestore, imported.criuDone)
	}
	config, criuConf, err := rt.libcontainerConfig(id, spec, opts, plan)
	if err != nil {
		return -1, err
	}
	if engine {
		if err := imported.engine.applyToBundle(opts.Bundle, spec); err != nil {
			return -1, fmt.Errorf("--import %s: %w", imported.engine.archive, err)
		}
	}
	// After the rootfs diff of an engine archive: it may have planted
	// the symlink.
	if err := checkCriuMountKeys(config, fmt.Sprintf("restore of container %q", id)); err != nil {
		return -1, err
	}
	session, err := rt.prepareCriu(ctx, nil)
	if err != nil {
		return -1, err
	}
	defer session.close()
	r.criu = session

	container, err := libcontainer.Create(rt.root(), id, config)
	if errors.Is(err, libcontainer.ErrExist) {
		return -1, fmt.Errorf("%w: %q under --root %s; restore under another id or delete that container first", ErrContainerExists, id, rt.root())
	}
	if err != nil {
		return -1, fmt.Errorf("creating container %q: %w", id, err)
	}
	r.container = container
	tellCriuVersion(ctx, container)
	// Create made the state directory, so a second restore of this id
	// already fails with ErrContainerExists; the lock keeps a checkpoint
	// of the half-restored container out.
	unlock, err := rt.lockContainer(id)
	if err != nil {
		r.destroy()
		return -1, err
	}
	r.afterRestore = append(r.afterRestore, unlock)
	if criuConf != nil {
		if err := criuConf.write(); err != nil {
			unlock()
			r.destroy()
			return -1, err
		}
		r.afterRestore = append(r.afterRestore, criuConf.dropRestoreOnly)
	}
	return r.run(ctx, plan.rpc, logPath(plan.rpc, "restore.log"))
}

// errChdir: inDir could not enter the directory.
var errChdir = errors.New("cannot enter the directory")

// inDir calls fn on an OS thread of its own (unshare CLONE_FS) whose
// working directory is dir; the thread ends with it.
func inDir(dir string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread's cwd is its own
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("a working directory of its own for the thread: %w", err)
			return
		}
		if err := unix.Chdir(dir); err != nil {
			errc <- fmt.Errorf("%w %s: %w", errChdir, dir, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// applyManifest reads the manifest of the images, if they have one (runc's
// have none), refuses a checkpoint that never finished or is only a
// pre-dump (the manifest comes back with ErrIncompleteCheckpoint, so the
// caller can tell a checkpoint still running), and fills in the bundle,
// when neither --bundle is given nor the working directory is a bundle.
// The options that must match the dump (CRIU fails without them) reach
// CRIU from the manifest through planRestore.
func applyManifest(opts *RestoreOptions, bundleFromManifest bool) (*Manifest, error) {
	cwd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	dir, err := absPath(opts.ImagePath, filepath.Join(cwd, "checkpoint"))
	if err != nil {
		return nil, invalid("image-path", "%v", err)
	}
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, invalid("image-path", "%s: %v", dir, err)
	}
	if m == nil {
		return nil, nil
	}
	if m.State != ManifestComplete {
		return m, fmt.Errorf("%w: --image-path %s: the checkpoint of %q begun at %s never finished (the dump failed or runcr was killed); the images may be partial, make a new checkpoint",
			ErrIncompleteCheckpoint, dir, m.ContainerID, m.Created.Format(time.RFC3339))
	}
	if m.Options.PreDump {
		return nil, invalid("image-path", "%s holds a --pre-dump (memory only) of %q; restore the checkpoint made on top of it", dir, m.ContainerID)
	}
	if opts.Bundle == "" && m.Bundle != "" && bundleFromManifest {
		if _, err := os.Stat(filepath.Join(cwd, "config.json")); err != nil {
			logrus.Debugf("restoring with the bundle the manifest names: %s", m.Bundle)
			opts.Bundle = m.Bundle
		}
	}
	return m, nil
}

// verifyRestoreImages checks the images of --image-path (default
// ./checkpoint) against the manifest's digests.
func verifyRestoreImages(imagePath string, m *Manifest) error {
	if m == nil || m.Images == nil {
		return nil
	}
	cwd, err := os.Getwd()
	if err != nil {
		return err
	}
	dir, err := absPath(imagePath, filepath.Join(cwd, "checkpoint"))
	if err != nil {
		return invalid("image-path", "%v", err)
	}
	start := time.Now()
	if err := VerifyImages(dir, m); err != nil {
		return fmt.Errorf("--image-path: %w", err)
	}
	logrus.Debugf("verifying %d bytes of images took %v", m.ImagesSize, time.Since(start))
	return nil
}

// warnIfConfigChanged warns when the bundle's config.json differs from
// the checkpoint's in what CRIU restores against (ConfigShape): restore goes
// on, but CRIU may fail or the container come back with other mounts. What
// engines write anew for every restore (sources, hostname, environment,
// annotations, namespace paths) is no change worth a warning. Manifests
// of older runcr have only digests, compared without namespace paths.
func warnIfConfigChanged(m *Manifest, bundle string) {
	if m == nil {
		return
	}
	path := filepath.Join(bundle, "config.json")
	if m.ConfigShape != nil {
		now, err := manifest.ReadConfigShape(path)
		if err != nil {
			return // loadSpec reports an unreadable config
		}
		if d := m.ConfigShape.Differences(now); len(d) > 0 {
			logrus.Warnf("%s changed since the checkpoint of %q in what CRIU restores (%s); restoring with it as it is now", path, m.ContainerID, strings.Join(d, "; "))
		}
		return
	}
	if m.ConfigDigest == "" {
		return
	}
	d, err := manifest.FileDigest(path)
	if err != nil || d == m.ConfigDigest {
		return
	}
	if m.ConfigSpecDigest != "" {
		if sd, err := manifest.ConfigSpecDigest(path); err == nil && sd == m.ConfigSpecDigest {
			logrus.Debugf("%s differs from the checkpoint's only in the paths of namespaces to join", path)
			return
		}
	}
	logrus.Warnf("%s changed since the checkpoint of %q (digest %s, was %s); restoring with it as it is now", path, m.ContainerID, d, m.ConfigDigest)
}

// prepareRestorePaths makes every path absolute before the bundle's
// directory becomes the reference for relative paths, checks that the
// images are there, and returns the image and work directories.
func prepareRestorePaths(opts *RestoreOptions) (criuDirs, error) {
	var d criuDirs
	cwd, err := os.Getwd()
	if err != nil {
		return d, err
	}
	if d.images, err = absPath(opts.ImagePath, filepath.Join(cwd, "checkpoint")); err != nil {
		return d, invalid("image-path", "%v", err)
	}
	fi, err := os.Stat(d.images)
	switch {
	case err != nil:
		return d, invalid("image-path", "%s: %v; give the directory `runcr checkpoint --image-path` wrote", d.images, fsutil.UnwrapPathError(err))
	case !fi.IsDir():
		return d, invalid("image-path", "%s is not a directory", d.images)
	}
	if _, err := os.Stat(filepath.Join(d.images, "inventory.img")); err != nil {
		return d, invalid("image-path", "%s holds no checkpoint (no inventory.img); give the directory `runcr checkpoint --image-path` wrote", d.images)
	}
	if err := image.CheckPagesComplete(d.images); err != nil {
		return d, err
	}
	if err := checkImageMountKeys(d.images); err != nil {
		return d, err
	}
	if err := checkFrozenRestore(d.images, string(opts.ManageCgroupsMode)); err != nil {
		return d, err
	}
	if d.work, err = privateWorkDir(opts.WorkPath); err != nil {
		return d, err
	}
	if opts.Bundle, err = absPath(opts.Bundle, cwd); err != nil {
		return d, invalid("bundle", "%v", err)
	}
	if opts.PidFile != "" {
		if opts.PidFile, err = absPath(opts.PidFile, ""); err != nil {
			return d, invalid("pid-file", "%v", err)
		}
		if fi, err := os.Stat(filepath.Dir(opts.PidFile)); err != nil || !fi.IsDir() {
			return d, invalid("pid-file", "directory %s does not exist; create it or choose another path", filepath.Dir(opts.PidFile))
		}
	}
	for fd := 3; fd < 3+opts.PreserveFDs; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return d, invalid("preserve-fds", "file descriptor %d (of %d after stdio) is not open: %v", fd, opts.PreserveFDs, err)
		}
	}
	if opts.ConsoleSocket != "" {
		if opts.ConsoleSocket, err = absPath(opts.ConsoleSocket, ""); err != nil {
			return d, invalid("console-socket", "%v", err)
		}
	}
	return d, nil
}

// loadSpec reads and checks bundle/config.json.
func loadSpec(bundle string) (*specs.Spec, error) {
	path := filepath.Join(bundle, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, invalid("bundle", "%s: %v; give the bundle directory the container was created from", path, fsutil.UnwrapPathError(err))
	}
	var spec *specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, invalid("bundle", "%s is not a valid OCI config: %v", path, err)
	}
	if spec == nil || spec.Process == nil {
		return nil, invalid("bundle", "%s has no process", path)
	}
	p := spec.Process
	if p.Cwd == "" || !filepath.IsAbs(p.Cwd) {
		return nil, invalid("bundle", "%s: process.cwd %q must be an absolute path", path, p.Cwd)
	}
	if len(p.Args) == 0 {
		return nil, invalid("bundle", "%s: process.args must not be empty", path)
	}
	return spec, nil
}

// libcontainerConfig converts the spec as runc does. specconv resolves
// relative paths (rootfs, mount sources) against the working directory,
// and records it as the bundle: runc's is the bundle. The conversion runs
// in the bundle on a thread of its own (inDir); the process's working
// directory stays as it is. The plan's CRIU configuration file is named in
// the spec before the conversion, which turns the annotation into the
// label libcontainer reads; it is returned to be written (nil for none).
func (rt *Runtime) libcontainerConfig(id string, spec *specs.Spec, opts RestoreOptions, plan *criuPlan) (*configs.Config, *criuConfigFile, error) {
	criuConf := plan.criuConfig(filepath.Join(rt.root(), id), spec)
	var config *configs.Config
	err := inDir(opts.Bundle, func() (err error) {
		config, err = specconv.CreateLibcontainerConfig(&specconv.CreateOpts{
			CgroupName:       id,
			UseSystemdCgroup: rt.SystemdCgroup,
			NoPivotRoot:      opts.NoPivot,
			NoNewKeyring:     opts.NoNewKeyring,
			Spec:             spec,
			RootlessEUID:     os.Geteuid() != 0,
			RootlessCgroups:  rt.rootlessCgroups(),
		})
		return err
	})
	if errors.Is(err, errChdir) {
		return nil, nil, invalid("bundle", "%v", err)
	}
	if err != nil {
		return nil, nil, invalid("bundle", "%s/config.json: %v", opts.Bundle, err)
	}
	return config, criuConf, nil
}

// writePidFile writes pid to path atomically (temporary file, rename), so
// a reader never sees a partial pid.
func writePidFile(path string, pid int) error {
	target, err := resolveOutput("pid-file", path)
	if err != nil {
		return err
	}
	if target.Through {
		f, err := openThrough("pid-file", path)
		if err != nil {
			return err
		}
		_, err = f.WriteString(strconv.Itoa(pid))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("--pid-file: %w", err)
		}
		return nil
	}
	if err := fsutil.ReplaceFile(target.Path, 0o644, func(f *os.File) error {
		_, err := f.WriteString(strconv.Itoa(pid))
		return err
	}); err != nil {
		return fmt.Errorf("--pid-file: %w", err)
	}
	return nil
}

func warnIf(err error, format string, args ...any) {
	if err != nil {
		logrus.Warnf(format+": %v", append(args, err)...)
	}
}

// linkParent makes sure CRIU finds the parent images: a dump on top of a
// pre-dump leaves a "parent" link in the image directory, which restore
// follows; --parent-path must agree with it, or supplies it when missing.
func linkParent(imageDir, parent string) error {
	target := filepath.Join(imageDir, parent)
	if fi, err := os.Stat(target); err != nil || !fi.IsDir() {
		return invalid("parent-path", "%s is not a directory of parent images", target)
	}
	link := filepath.Join(imageDir, "parent")
	if old, err := os.Readlink(link); err == nil {
		if filepath.Clean(filepath.Join(imageDir, old)) != filepath.Clean(target) {
			return invalid("parent-path", "%q differs from the parent the checkpoint was made on (%q)", parent, old)
		}
		return nil
	}
	if err := os.Symlink(parent, link); err != nil {
		return invalid("parent-path", "cannot link %s to %s: %v", link, parent, err)
	}
	return nil
}
