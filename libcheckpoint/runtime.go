package libcheckpoint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/checkpoint-restore/go-criu/v7"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/runcr/runcr/libcheckpoint/internal/criuhost"
	"github.com/runcr/runcr/libcheckpoint/internal/fsutil"

	// Lets libcontainer's cgroup managers apply device rules on restore,
	// as runc does.
	_ "github.com/opencontainers/cgroups/devices"
)

// DefaultRoot is runc's default state directory for root; runcr shares it
// so that runc and runcr see the same containers.
const DefaultRoot = "/run/runc"

// Runtime holds the global settings under which containers are found and
// created; they mirror runc's global flags.
type Runtime struct {
	// Root is the container state directory shared with runc (--root).
	Root string
	// SystemdCgroup manages cgroups through systemd (--systemd-cgroup).
	SystemdCgroup bool
	// Rootless says, as in runc, whether cgroup permission errors are
	// ignored (--rootless true or false); nil is "auto": when not root
	// and not SystemdCgroup. As go-runc's Runc.Rootless.
	Rootless *bool
	// CriuPath is the criu binary to run (--criu); empty means "criu" on PATH.
	CriuPath string
	// Version is the calling program's version, recorded in manifests.
	Version string
}

func (rt *Runtime) root() string {
	if rt.Root == "" {
		return DefaultRoot
	}
	return rt.Root
}

// rootlessCgroups decides like runc's shouldUseRootlessCgroupManager,
// minus the systemd user-session probing runcr has no use for as root.
func (rt *Runtime) rootlessCgroups() bool {
	if rt.Rootless != nil {
		return *rt.Rootless
	}
	return os.Geteuid() != 0 && !rt.SystemdCgroup
}

// criuSession is what prepareCriu readied for the CRIU that libcontainer
// is about to start: the binary, the kernel feature cache that run shows
// it, and the thread run starts it from.
type criuSession struct {
	// criuPath is the criu binary libcontainer will run, the first on
	// PATH; empty when there is none.
	criuPath string
	// kdat is set when runcr's kernel feature cache is ready (kdat.go).
	kdat bool
	// released ends the thread run started CRIU on.
	released chan struct{}
	closed   sync.Once
}

// close ends the thread that started CRIU.
func (s *criuSession) close() {
	s.closed.Do(func() { close(s.released) })
}

// watch bounds the CRIU that start (run, or called directly) makes
// libcontainer start, by ctx: see criuhost.WatchCriu. abort tells CRIU to stop.
func (s *criuSession) watch(ctx context.Context, abort func() bool) (stop func()) {
	return criuhost.WatchCriu(ctx, s.criuPath, criuhost.KillGrace, abort)
}

// noUmask leaves the umask of the thread that starts CRIU as it is.
const noUmask = -1

// run calls start, which makes libcontainer start CRIU (Checkpoint or
// Restore), on an OS thread of its own whose file-system attributes are
// its own (unshare CLONE_FS), so that what CRIU inherits from it changes
// nothing for the rest of the process: umask, unless noUmask, and with
// withKdat the mount namespace in which runcr's kernel feature cache is
// CRIU's /run/criu.kdat (criuhost.ShowKdatCache). Without hooks only: libcontainer
// runs the OCI hooks from that thread, and they get the host's mount
// namespace, as under runc. The thread then stays until close: a restored
// container's init is its child (CRIU restores it as CRIU's sibling), and
// a parent-death signal the init had set is sent when that thread ends, as
// it would be when runc ends. The thread is never handed back to Go's
// scheduler: it ends with its goroutine.
func (s *criuSession) run(start func() error, umask int, withKdat bool) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("giving the thread that starts CRIU its own umask: %w", err)
			return
		}
		if umask != noUmask {
			unix.Umask(umask)
		}
		if withKdat && s.kdat {
			if err := criuhost.ShowKdatCache(); err != nil {
				logrus.Debugf("CRIU will probe the kernel: no kernel feature cache for it: %v", err)
			}
		}
		errc <- start()
		<-s.released
	}()
	return <-errc
}

// prepareCriu readies CRIU's start-up for one checkpoint, restore or
// check, within ctx: where /run is not a tmpfs, CRIU's kernel feature
// cache is readied for criuSession.run (see kdat.go); for a container
// about to be checkpointed (c not nil), libcontainer is told CRIU's
// version. It runs the criu first on PATH, as libcontainer does (see
// SetupProcess).
func (rt *Runtime) prepareCriu(ctx context.Context, c *libcontainer.Container) (*criuSession, error) {
	if err := rt.checkCriuOnPath(); err != nil {
		return nil, err
	}
	s := &criuSession{released: make(chan struct{})}
	criuPath, err := exec.LookPath("criu")
	if err != nil {
		// libcontainer reports the missing criu in its own words.
		return s, nil
	}
	s.criuPath = criuPath
	switch how, err := criuhost.EnsureKdatCache(ctx, criuPath); {
	case err != nil:
		logrus.Debugf("no CRIU kernel feature cache, CRIU will probe the kernel itself: %v", err)
	case how == criuhost.KdatMade:
		logrus.Debugf("CRIU kernel feature cache made for this boot: %s", criuhost.KdatCacheFile)
		s.kdat = true
	case how == criuhost.KdatReady:
		s.kdat = true
	}
	if c == nil {
		if ctx.Err() != nil {
			s.close()
			return nil, criuhost.TimeoutError(context.Cause(ctx), "CRIU's start-up probes, before anything was changed")
		}
		return s, nil
	}
	tellCriuVersion(ctx, c)
	if ctx.Err() != nil {
		s.close()
		return nil, criuhost.TimeoutError(context.Cause(ctx), "CRIU's start-up probes, before anything was changed")
	}
	return s, nil
}

// criuVersionCache remembers CRIU's version per criu binary and boot.
const criuVersionCache = "/run/runcr/criu-version"

// cachedCriuVersion is CRIU's version as libcontainer computes it (through
// go-criu's VERSION request, which starts a whole `criu swrk`: ~30 ms
// here), remembered per boot and criu binary.
func cachedCriuVersion(ctx context.Context, criuPath string) (int, error) {
	_, v, err := criuhost.CachedProbe(criuVersionCache, criuhost.KdatKey(criuPath), func() (bool, string, error) {
		ctx, cancel := context.WithTimeout(ctx, criuhost.ProbeTimeout)
		defer cancel()
		stop := criuhost.WatchCriu(ctx, criuPath, criuhost.KillGrace, criuhost.Stopping(criuhost.StopCriuConn(criuPath)))
		v, err := criu.MakeCriu().GetCriuVersion()
		stop()
		if ctx.Err() != nil {
			return false, "", criuhost.TimeoutError(context.Cause(ctx), "CRIU's version, from "+criuPath+" swrk")
		}
		if err != nil {
			return false, "", err
		}
		return true, strconv.Itoa(v), nil
	})
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(v)
}

// tellCriuVersion saves libcontainer its own VERSION request on c, after
// prepareCriu has readied the environment. libcontainer asks
// CRIU once per loaded Container and keeps the answer in the private field
// criuVersion, skipping the request when that is set; libcontainer offers
// no way to pass the version in, so the field is set by reflection. A
// libcontainer without that int field is left to ask (a unit test catches
// the rename).
func tellCriuVersion(ctx context.Context, c *libcontainer.Container) {
	criuPath, err := exec.LookPath("criu")
	if err != nil {
		return
	}
	v, err := cachedCriuVersion(ctx, criuPath)
	if err != nil || v <= 0 {
		return
	}
	if !setCriuVersion(c, v) {
		logrus.Debug("libcontainer.Container has no criuVersion field; it will ask CRIU itself")
	}
}

func setCriuVersion(c *libcontainer.Container, v int) bool {
	f := reflect.ValueOf(c).Elem().FieldByName("criuVersion")
	if !f.IsValid() || f.Kind() != reflect.Int {
		return false
	}
	reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().SetInt(int64(v))
	return true
}

// criuDir returns a directory whose "criu" is the given binary.
func criuDir(criuPath string) (string, func(), error) {
	path, err := filepath.Abs(criuPath)
	if err != nil {
		return "", nil, invalid("criu", "%v", err)
	}
	if err := unix.Access(path, unix.X_OK); err != nil {
		return "", nil, invalid("criu", "%s: %v; give the path of an executable criu binary", path, err)
	}
	if filepath.Base(path) == "criu" {
		return filepath.Dir(path), func() {}, nil
	}
	// PATH lookup needs the name "criu": offer it through a private link.
	tmp, err := os.MkdirTemp("", "runcr-criu-")
	if err != nil {
		return "", nil, err
	}
	if err := os.Symlink(path, filepath.Join(tmp, "criu")); err != nil {
		os.RemoveAll(tmp)
		return "", nil, err
	}
	return tmp, func() { os.RemoveAll(tmp) }, nil
}

// validateID rejects ids libcontainer would refuse, with a message that
// says why, before any file is touched.
func validateID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: container id is empty; give the id of a container (see `runcr list`)", ErrInvalidOption)
	}
	if id == "." || id == ".." || strings.ContainsAny(id, "/\\") || strings.Trim(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.") != "" {
		return fmt.Errorf("%w: container id %q: %w; ids use only letters, digits, '_', '+', '-' and '.'", ErrInvalidOption, id, libcontainer.ErrInvalidID)
	}
	return nil
}

// load opens an existing container under the runtime's root.
func (rt *Runtime) load(id string) (*libcontainer.Container, error) {
	if err := validateID(id); err != nil {
		return nil, err
	}
	c, err := libcontainer.Load(rt.root(), id)
	if errors.Is(err, libcontainer.ErrNotExist) {
		return nil, fmt.Errorf("%w: %q under --root %s (see `runcr --root %s list`)", ErrNoSuchContainer, id, rt.root(), rt.root())
	}
	if err != nil {
		return nil, fmt.Errorf("loading container %q: %w", id, err)
	}
	return c, nil
}

// absPath makes p absolute against the working directory, with def
// standing in for an empty p.
func absPath(p, def string) (string, error) {
	if p == "" {
		p = def
	}
	if p == "" {
		return "", nil
	}
	return filepath.Abs(p)
}

// lockContainer takes an exclusive, non-blocking flock on the container's
// state directory for the length of a checkpoint or restore, so that a
// second one fails at once instead of racing the first (two CRIUs on one
// process tree would undo each other's freezing). The kernel drops the
// lock if runcr dies.
func (rt *Runtime) lockContainer(id string) (func(), error) {
	dir, err := os.Open(filepath.Join(rt.root(), id))
	if err != nil {
		return nil, fmt.Errorf("locking container %q: %w", id, err)
	}
	if err := unix.Flock(int(dir.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		dir.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %q is being checkpointed or restored by another runcr; try again when it is done", ErrBusy, id)
		}
		return nil, fmt.Errorf("locking container %q: %w", id, err)
	}
	return func() { dir.Close() }, nil
}

// isBusy tells whether another runcr holds container id's lock.
func (rt *Runtime) isBusy(id string) bool {
	if validateID(id) != nil {
		return false
	}
	unlock, err := rt.lockContainer(id)
	if err != nil {
		return errors.Is(err, ErrBusy)
	}
	unlock()
	return false
}

// criuAnswerTimeout bounds `criu --version` when checking --criu: a binary
// that never answers must not hang the command.
const criuAnswerTimeout = 5 * time.Second

// checkCriuBinary checks a --criu path up front: an executable regular
// file that answers `--version` as CRIU does, in time. Without it, a wrong
// path surfaced as an error about CRIU's RPC socket, a directory was
// ignored in favour of the criu on PATH, and a binary that never answered
// hung the command.
func checkCriuBinary(ctx context.Context, path string) error {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return invalid("criu", "%s: %v; give the path of a criu binary", path, fsutil.UnwrapPathError(err))
	case fi.IsDir():
		return invalid("criu", "%s is a directory; give the path of the criu binary itself", path)
	case !fi.Mode().IsRegular():
		return invalid("criu", "%s is not a regular file; give the path of a criu binary", path)
	}
	if err := unix.Access(path, unix.X_OK); err != nil {
		return invalid("criu", "%s: %v; give the path of an executable criu binary", path, err)
	}
	cmd, ctx, cancel := criuhost.Command(ctx, criuAnswerTimeout, path, "--version")
	defer cancel()
	out, err := cmd.Output()
	switch {
	case ctx.Err() != nil:
		return invalid("criu", "%s did not answer `--version` within %v; give the path of a working criu binary", path, criuAnswerTimeout)
	case err != nil:
		return invalid("criu", "%s --version failed (%v); give the path of a criu binary", path, err)
	case !bytes.Contains(out, []byte("Version:")):
		return invalid("criu", "%s --version does not answer as CRIU does (no \"Version:\" line); give the path of a criu binary", path)
	}
	return nil
}
