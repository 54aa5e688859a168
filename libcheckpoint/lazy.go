package libcheckpoint

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/runcr/runcr/libcheckpoint/internal/criuhost"
)

// Lazy migration needs more than the uffd-noncoop feature CRIU reports:
// on some kernel and CRIU combinations the dump side fails once the
// restore side asks for pages (seen here: CRIU 4.1 and 4.2 on Linux 6.18,
// "page-pipe: splice: -1: Bad file descriptor"), after the container was
// frozen and with a restore left hanging. So runcr tries a small lazy
// migration of a throwaway process once per boot and CRIU build, and
// refuses --lazy-pages before touching the container where it fails.
const lazyCache = "/run/runcr/lazy-pages"

// lazyMigrationWorks migrates a throwaway process lazily with the criu on
// PATH and reports whether it came back alive; the reason says why not.
func lazyMigrationWorks(ctx context.Context) (bool, string) {
	criuPath, err := exec.LookPath("criu")
	if err != nil {
		return false, "criu is not installed"
	}
	works, reason, _ := criuhost.CachedProbe(lazyCache, criuhost.CacheKey(criuPath), func() (bool, string, error) {
		works, reason := tryLazyMigration(ctx, criuPath)
		// Cut short by the caller, the trial proves nothing: not remembered.
		return works, reason, ctx.Err()
	})
	return works, reason
}

func tryLazyMigration(ctx context.Context, criuPath string) (bool, string) {
	dir, err := os.MkdirTemp("", "runcr-lazy-probe-")
	if err != nil {
		return false, err.Error()
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()

	// The throwaway process lives in a pid namespace of its own, as
	// container processes do: the lazy dump keeps the original alive while
	// the restore recreates it, so they must not compete for one pid.
	out, err := exec.Command("sh", "-c", "unshare --pid --fork setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $!").Output()
	if err != nil {
		return false, "starting a probe process: " + err.Error()
	}
	outer, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		return false, "starting a probe process: " + err.Error()
	}
	defer func() { _ = syscall.Kill(outer, syscall.SIGKILL) }()
	probePid := 0
	for i := 0; i < 100 && probePid == 0; i++ {
		if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", outer, outer)); err == nil {
			probePid, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if probePid == 0 {
		return false, "starting a probe process: no child of unshare"
	}
	defer func() { _ = syscall.Kill(probePid, syscall.SIGKILL) }()
	port, err := freePort()
	if err != nil {
		return false, err.Error()
	}
	ready, readyW, err := os.Pipe()
	if err != nil {
		return false, err.Error()
	}
	defer ready.Close()
	dump := exec.CommandContext(ctx, criuPath, "dump", "-t", strconv.Itoa(probePid), "-D", dir, "-o", "dump.log",
		"--lazy-pages", "--address", "127.0.0.1", "--port", strconv.Itoa(port), "--status-fd", "3")
	dump.ExtraFiles = []*os.File{readyW}
	if err := dump.Start(); err != nil {
		readyW.Close()
		return false, "criu dump: " + err.Error()
	}
	readyW.Close()
	dumpDone := make(chan error, 1)
	go func() { dumpDone <- dump.Wait() }()
	b := make([]byte, 1)
	if n, _ := ready.Read(b); n != 1 {
		<-dumpDone //nolint:errcheck // waited for, not read: dump.log says why it failed
		return false, "criu dump --lazy-pages never became ready: " + lastCriuError(dir, "dump.log")
	}
	lazy := exec.CommandContext(ctx, criuPath, "lazy-pages", "--page-server", "--address", "127.0.0.1", "--port", strconv.Itoa(port), "-D", dir, "-o", "lazy-pages.log")
	if err := lazy.Start(); err != nil {
		return false, "criu lazy-pages: " + err.Error()
	}
	defer func() {
		_ = lazy.Process.Kill()
		_ = lazy.Wait()
	}()
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(filepath.Join(dir, "lazy-pages.socket")); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	pidFile := filepath.Join(dir, "restored.pid")
	restore := exec.CommandContext(ctx, criuPath, "restore", "-D", dir, "-o", "restore.log", "--lazy-pages", "-d", "--pidfile", pidFile)
	restoreErr := restore.Run()
	restored := 0
	if data, err := os.ReadFile(pidFile); err == nil {
		restored, _ = strconv.Atoi(strings.TrimSpace(string(data)))
	}
	dumpErr := <-dumpDone
	alive := restored > 0 && syscall.Kill(restored, 0) == nil
	if restored > 0 {
		_ = syscall.Kill(restored, syscall.SIGKILL)
	}
	switch {
	case dumpErr != nil:
		return false, "criu dump --lazy-pages failed while serving pages: " + lastCriuError(dir, "dump.log", "restore.log")
	case restoreErr != nil:
		return false, "criu restore --lazy-pages failed: " + lastCriuError(dir, "restore.log", "dump.log")
	case !alive:
		return false, "the lazily restored process did not survive: " + lastCriuError(dir, "restore.log", "lazy-pages.log")
	}
	return true, ""
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lastCriuError returns the first telling error line of the given logs.
func lastCriuError(dir string, logs ...string) string {
	for _, name := range logs {
		if cause, _ := scanLog(filepath.Join(dir, name)); cause != "" {
			return cause
		}
	}
	return "no error in CRIU's logs"
}

// errLazyBroken wraps the refusal of --lazy-pages.
func errLazyBroken(reason string) error {
	return fmt.Errorf("%w: --lazy-pages refused before freezing the container: a trial lazy migration of a throwaway process fails on this host (%s); checkpoint without --lazy-pages", ErrUnsupported, reason)
}
