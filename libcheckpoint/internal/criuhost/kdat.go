package criuhost

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// CRIU probes the kernel each time it starts (iptables, network namespaces,
// mounts, a breakpoint fork: 30 to 130 ms on the test VMs) unless it can
// load the results from /run/criu.kdat. It loads that file from any file
// system, checking only its size and two magic numbers (the second is
// CRIU's build time; nothing names the boot or the kernel), and it saves
// the file only when /run is a tmpfs, so that the file dies with the boot.
// Where /run is not a tmpfs, runcr keeps the cache for the CRIU it starts
// itself, with the same guarantee: the file lives on a small tmpfs of
// runcr's own (made once per boot and criu binary, keyed to both), and it
// is bind-mounted onto /run/criu.kdat only in a mount namespace private to
// the thread that starts CRIU (criuSession.run). Other programs' CRIU, and
// runc's, see the host's /run as it was: runcr changes nothing for them.
// After a reboot the tmpfs is gone and the cache is made afresh, so no
// CRIU loads a cache from another boot or kernel; a different criu binary
// (an upgrade) gets a new cache, because the key names the binary.
const (
	kdatRunDir = "/run"
	// kdatFile is CRIU's cache path: KDAT_RUNDIR (default /run) at build.
	kdatFile = kdatRunDir + "/criu.kdat"
	// kdatDir is runcr's tmpfs holding the cache and the key it was
	// made for.
	kdatDir = "/run/runcr/kdat"
	// kdatFailed holds the key for which making the cache failed.
	kdatFailed = kdatDir + ".failed"
)

// KdatSetup says what EnsureKdatCache found or did.
type KdatSetup int

const (
	KdatNotNeeded KdatSetup = iota // /run is a tmpfs (CRIU caches itself) or not root
	KdatReady                      // runcr's cache for this boot and criu is ready
	KdatMade                       // it was (re)made just now
)

// EnsureKdatCache makes sure CRIU's kernel feature cache is usable for
// criuPath where /run is not a tmpfs. Best effort: on failure CRIU just
// probes on every run, as it would without runcr.
func EnsureKdatCache(ctx context.Context, criuPath string) (KdatSetup, error) {
	if os.Geteuid() != 0 {
		// CRIU as non-root keeps its cache in $XDG_RUNTIME_DIR.
		return KdatNotNeeded, nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(kdatRunDir, &st); err != nil {
		return KdatNotNeeded, err
	}
	if st.Type == unix.TMPFS_MAGIC {
		return KdatNotNeeded, nil
	}
	key := KdatKey(criuPath)
	if key == "" {
		return KdatNotNeeded, errors.New("no boot id or criu binary to key the cache to")
	}
	if kdatReadyFor(key) {
		dropGlobalKdatMount()
		return KdatReady, nil
	}
	// A failure is not retried on every run (it costs a criu start).
	if data, err := os.ReadFile(kdatFailed); err == nil && strings.TrimSpace(string(data)) == key {
		return KdatNotNeeded, errors.New("making the cache failed before in this boot with this criu (see " + kdatFailed + ")")
	}
	// Two runcrs may both find the cache missing; one makes it.
	if err := os.MkdirAll(filepath.Dir(kdatDir), 0o755); err != nil {
		return KdatNotNeeded, err
	}
	lock, err := os.OpenFile(kdatDir+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return KdatNotNeeded, err
	}
	defer lock.Close()
	if err := flockWithin(lock, kdatLockWait); err != nil {
		return KdatNotNeeded, fmt.Errorf("%s: %w", lock.Name(), err)
	}
	if kdatReadyFor(key) {
		return KdatReady, nil
	}
	if err := makeKdatCache(ctx, criuPath, key); err != nil {
		if errors.Is(err, ErrCriuTimeout) {
			return KdatNotNeeded, err // a hang is not remembered as a failure
		}
		_ = os.WriteFile(kdatFailed, []byte(key+"\n"+err.Error()+"\n"), 0o644)
		return KdatNotNeeded, err
	}
	return KdatMade, nil
}

// kdatLockWait bounds the wait for another runcr that is making the cache.
// Making it is one short criu run, but the lock is one for every criu
// binary and that criu may be slow or hang (a test's fake criu, a broken
// upgrade): without a bound, every checkpoint and restore on the host
// would wait for it (under containerd's CRI until the shim's deadline
// cancels the restore). Past the bound CRIU just probes by itself.
var kdatLockWait = 5 * time.Second

// errLockBusy says flockWithin gave up.
var errLockBusy = errors.New("still locked by another process")

// flockWithin takes an exclusive flock on f, waiting at most d.
func flockWithin(f *os.File, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return err
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%w after %v", errLockBusy, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// KdatKey names this boot and the criu binary (through symlinks, so that
// every link to one binary shares the cache).
func KdatKey(criuPath string) string {
	if p, err := filepath.EvalSymlinks(criuPath); err == nil {
		criuPath = p
	}
	return CacheKey(criuPath)
}

// KdatCacheFile is runcr's cache, for bind-mounting onto kdatFile.
var KdatCacheFile = filepath.Join(kdatDir, "criu.kdat")

// kdatReadyFor reports whether runcr's tmpfs holds a cache made for key.
func kdatReadyFor(key string) bool {
	data, err := os.ReadFile(filepath.Join(kdatDir, "key"))
	if err != nil || strings.TrimSpace(string(data)) != key {
		return false
	}
	fi, err := os.Stat(KdatCacheFile)
	return err == nil && fi.Mode().IsRegular() && fi.Size() > 0
}

// dropGlobalKdatMount removes the bind mount of runcr's cache on the host's
// /run/criu.kdat that runcr versions before the private mount namespace
// left there for every CRIU on the host.
func dropGlobalKdatMount() {
	var mounted, ours unix.Stat_t
	if unix.Stat(kdatFile, &mounted) != nil || unix.Stat(KdatCacheFile, &ours) != nil {
		return
	}
	if mounted.Dev == ours.Dev && mounted.Ino == ours.Ino {
		for unix.Unmount(kdatFile, unix.MNT_DETACH) == nil {
		}
	}
}

// makeKdatCache has criu write a fresh cache onto runcr's tmpfs.
func makeKdatCache(ctx context.Context, criuPath, key string) error {
	if err := os.MkdirAll(kdatDir, 0o700); err != nil {
		return err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(kdatDir, &st); err != nil {
		return err
	}
	if st.Type != unix.TMPFS_MAGIC {
		if err := unix.Mount("runcr-kdat", kdatDir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0700,size=1m"); err != nil {
			return fmt.Errorf("mounting a tmpfs on %s: %w", kdatDir, err)
		}
	}
	dropGlobalKdatMount()
	// Drop the old cache first: the key must never name a cache it wasn't
	// made for.
	for _, name := range []string{"key", "criu.kdat", "criu.kdat.tmp"} {
		if err := os.Remove(filepath.Join(kdatDir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := runCriuWithRunDir(ctx, criuPath, kdatDir); err != nil {
		return err
	}
	if fi, err := os.Stat(KdatCacheFile); err != nil || fi.Size() == 0 {
		return fmt.Errorf("criu wrote no kernel feature cache to %s", kdatDir)
	}
	return os.WriteFile(filepath.Join(kdatDir, "key"), []byte(key+"\n"), 0o600)
}

// ShowKdatCache makes runcr's cache CRIU's /run/criu.kdat for the calling
// thread, which the caller has locked to its goroutine for good: the thread
// gets a mount namespace of its own in which the mount holding /run stops
// propagating to and from the host's (so that the bind mount stays here),
// and the cache is bind-mounted, read-only, onto /run/criu.kdat. Every
// other mount keeps its propagation, so what CRIU mounts and sees is as in
// the host's namespace.
func ShowKdatCache() error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare mount namespace: %w", err)
	}
	// The innermost mount point holding kdatFile; MS_SLAVE fails with
	// EINVAL on a path that is not a mount point.
	for dir := filepath.Dir(kdatFile); ; dir = filepath.Dir(dir) {
		err := unix.Mount("", dir, "", unix.MS_SLAVE, "")
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EINVAL) || dir == "/" {
			return fmt.Errorf("making %s a slave mount: %w", dir, err)
		}
	}
	// The mount point must exist. An empty file is what CRIU would find
	// anyway where it can't keep a cache: it calls it stale and probes.
	if f, err := os.OpenFile(kdatFile, os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
		f.Close()
	} else {
		return err
	}
	if err := unix.Mount(KdatCacheFile, kdatFile, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind-mounting %s on %s: %w", KdatCacheFile, kdatFile, err)
	}
	if err := unix.Mount("", kdatFile, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		logrus.Debugf("kdat cache: can't make %s read-only: %v", kdatFile, err)
	}
	return nil
}

// runCriuWithRunDir runs `criu check` with dir mounted on /run in a mount
// namespace of its own, so that CRIU sees a tmpfs /run and saves its cache
// there. The namespace belongs to one OS thread, which forks criu and is
// then thrown away (the goroutine ends without unlocking it).
func runCriuWithRunDir(ctx context.Context, criuPath, dir string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- func() error {
			if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
				return fmt.Errorf("unshare mount namespace: %w", err)
			}
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
				return err
			}
			if err := unix.Mount(dir, kdatRunDir, "", unix.MS_BIND, ""); err != nil {
				return err
			}
			// Any command makes CRIU initialise (and save) its kernel
			// data; this feature check is cheap.
			out, err := RunProbe(ctx, criuPath, "check", "--feature", "network_lock_nftables")
			if errors.Is(err, ErrCriuTimeout) {
				return err
			}
			if err != nil && !isExitError(err) {
				return fmt.Errorf("running %s check: %w: %s", criuPath, err, strings.TrimSpace(string(out)))
			}
			return nil
		}()
	}()
	return <-errc
}

func isExitError(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee)
}
