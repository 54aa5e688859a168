package libcheckpoint

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// CRIU probes the kernel each time it starts (iptables, network namespaces,
// mounts, a breakpoint fork: ~130 ms on the test VM) unless it can load the
// results from /run/criu.kdat. It loads that file from any file system,
// checking only its size and two magic numbers (the second is CRIU's build
// time; nothing names the boot or the kernel), and it saves the file only
// when /run is a tmpfs, so that the file dies with the boot. Where /run is
// not a tmpfs, runcr keeps the cache with the same guarantee: the file
// lives on a small tmpfs of runcr's own and is bind-mounted onto
// /run/criu.kdat over an empty placeholder. After a reboot neither mount
// exists, and CRIU finds the empty placeholder, calls it stale and probes
// afresh, so no CRIU can ever load a cache from another boot or kernel. A
// different criu binary (an upgrade) gets a new cache, because the key
// names the binary.
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

// kdatSetup says what ensureKdatCache found or did.
type kdatSetup int

const (
	kdatNotNeeded kdatSetup = iota // /run is a tmpfs (CRIU caches itself) or not root
	kdatReady                      // runcr's cache for this boot and criu is in place
	kdatMade                       // it was (re)made just now
)

// ensureKdatCache makes sure CRIU's kernel feature cache is usable for
// criuPath where /run is not a tmpfs. Best effort: on failure CRIU just
// probes on every run, as it would without runcr.
func ensureKdatCache(criuPath string) (kdatSetup, error) {
	if os.Geteuid() != 0 {
		// CRIU as non-root keeps its cache in $XDG_RUNTIME_DIR.
		return kdatNotNeeded, nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(kdatRunDir, &st); err != nil {
		return kdatNotNeeded, err
	}
	if st.Type == unix.TMPFS_MAGIC {
		return kdatNotNeeded, nil
	}
	key := kdatKey(criuPath)
	if key == "" {
		return kdatNotNeeded, errors.New("no boot id or criu binary to key the cache to")
	}
	if kdatInPlace(key) {
		return kdatReady, nil
	}
	// A failure is not retried on every run (it costs a criu start).
	if data, err := os.ReadFile(kdatFailed); err == nil && strings.TrimSpace(string(data)) == key {
		return kdatNotNeeded, errors.New("making the cache failed before in this boot with this criu (see " + kdatFailed + ")")
	}
	// Two runcrs may both find the cache missing; one makes it.
	if err := os.MkdirAll(filepath.Dir(kdatDir), 0o755); err != nil {
		return kdatNotNeeded, err
	}
	lock, err := os.OpenFile(kdatDir+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return kdatNotNeeded, err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return kdatNotNeeded, err
	}
	if kdatInPlace(key) {
		return kdatReady, nil
	}
	if err := makeKdatCache(criuPath, key); err != nil {
		_ = os.WriteFile(kdatFailed, []byte(key+"\n"+err.Error()+"\n"), 0o644)
		return kdatNotNeeded, err
	}
	return kdatMade, nil
}

// kdatKey names this boot and the criu binary (through symlinks, so that
// every link to one binary shares the cache).
func kdatKey(criuPath string) string {
	if p, err := filepath.EvalSymlinks(criuPath); err == nil {
		criuPath = p
	}
	return cacheKey(criuPath)
}

// kdatInPlace reports whether /run/criu.kdat is runcr's bind-mounted cache
// and was made for key: the key file matches and the cache file is the one
// on runcr's tmpfs, not the placeholder.
func kdatInPlace(key string) bool {
	data, err := os.ReadFile(filepath.Join(kdatDir, "key"))
	if err != nil || strings.TrimSpace(string(data)) != key {
		return false
	}
	var mounted, ours unix.Stat_t
	if unix.Stat(kdatFile, &mounted) != nil || unix.Stat(filepath.Join(kdatDir, "criu.kdat"), &ours) != nil {
		return false
	}
	return mounted.Dev == ours.Dev && mounted.Ino == ours.Ino && ours.Size > 0
}

// makeKdatCache has criu write a fresh cache onto runcr's tmpfs and
// bind-mounts it onto /run/criu.kdat.
func makeKdatCache(criuPath, key string) error {
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
	// Drop the old cache first: the key must never name a cache it wasn't
	// made for.
	for _, name := range []string{"key", "criu.kdat", "criu.kdat.tmp"} {
		if err := os.Remove(filepath.Join(kdatDir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := runCriuWithRunDir(criuPath, kdatDir); err != nil {
		return err
	}
	cache := filepath.Join(kdatDir, "criu.kdat")
	if fi, err := os.Stat(cache); err != nil || fi.Size() == 0 {
		return fmt.Errorf("criu wrote no kernel feature cache to %s", kdatDir)
	}
	// A cache bind-mounted earlier (another criu build) is replaced.
	for unix.Unmount(kdatFile, unix.MNT_DETACH) == nil {
	}
	// CRIU removes a cache it finds stale; make sure the placeholder
	// exists to mount on.
	f, err := os.OpenFile(kdatFile, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	if err := unix.Mount(cache, kdatFile, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind-mounting %s on %s: %w", cache, kdatFile, err)
	}
	if err := unix.Mount("", kdatFile, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		logrus.Debugf("kdat cache: can't make %s read-only: %v", kdatFile, err)
	}
	return os.WriteFile(filepath.Join(kdatDir, "key"), []byte(key+"\n"), 0o600)
}

// runCriuWithRunDir runs `criu check` with dir mounted on /run in a mount
// namespace of its own, so that CRIU sees a tmpfs /run and saves its cache
// there. The namespace belongs to one OS thread, which forks criu and is
// then thrown away (the goroutine ends without unlocking it).
func runCriuWithRunDir(criuPath, dir string) error {
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
			out, err := exec.Command(criuPath, "check", "--feature", "network_lock_nftables").CombinedOutput()
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
