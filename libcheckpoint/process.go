package libcheckpoint

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/runcr/runcr/libcheckpoint/internal/criuhost"
	"github.com/runcr/runcr/libcheckpoint/internal/fsutil"
)

// ProcessOptions are what SetupProcess sets for the whole process.
type ProcessOptions struct {
	// CriuPath is the criu binary to run instead of the first criu on
	// PATH (the command line's --criu); empty keeps PATH's.
	CriuPath string
	// LockNetworkWithNftables readies CRIU to lock a dumped container's
	// network with nftables where that works (one rule set, quicker than
	// iptables' rules per table) and no lock method was chosen in a CRIU
	// configuration: for a dump of a container whose network namespace
	// CRIU locks (Runtime.LocksNetwork). A restore follows the method its
	// images record.
	LockNetworkWithNftables bool
	// DumpCgroupYard, for a dump, lets CRIU read the container's cgroups
	// through the hierarchies mounted under /sys/fs/cgroup instead of
	// mounting each anew while the container is frozen (cgroupyard.go),
	// where they are all mounted there and no CRIU configuration was
	// named in CRIU_CONFIG_FILE.
	DumpCgroupYard bool
}

// SetupProcess readies the process environment for CRIU, once, before
// Checkpoint, Restore or CheckHost run. libcontainer starts `criu` from
// PATH with the process's own environment, so what CRIU must be told that
// way can only be told process-wide; SetupProcess is the one place in
// this package that changes the environment. It checks CriuPath (an
// executable regular file that answers --version as CRIU does, within ctx
// and 5 seconds) and puts it first on PATH through a private link named
// criu; sets CRIU_FAULT=130 where this host's hardware breakpoints don't
// fire (CRIU would hang with the container frozen) unless CRIU_FAULT is
// set already; and sets CRIU_CONFIG_FILE for LockNetworkWithNftables.
// undo restores the environment and removes the link. A program that
// doesn't call it runs the criu on PATH with its environment as it is.
func SetupProcess(ctx context.Context, o ProcessOptions) (undo func(), err error) {
	var undos []func()
	undoAll := func() {
		for i := len(undos) - 1; i >= 0; i-- {
			undos[i]()
		}
	}
	setenv := func(key, value string) {
		old, had := os.LookupEnv(key)
		os.Setenv(key, value)
		undos = append(undos, func() {
			if had {
				os.Setenv(key, old)
			} else {
				os.Unsetenv(key)
			}
		})
	}
	h := criuHost{path: os.Getenv("PATH")}
	var criuPath string
	var lookErr error
	if o.CriuPath != "" {
		path, err := filepath.Abs(o.CriuPath)
		if err != nil {
			return nil, invalid("criu", "%v", err)
		}
		if err := checkCriuBinary(ctx, path); err != nil {
			return nil, err
		}
		dir, cleanup, err := criuDir(path)
		if err != nil {
			return nil, err
		}
		undos = append(undos, cleanup)
		h.criuDir = dir
		// What PATH will find first once the plan is set.
		criuPath = filepath.Join(dir, "criu")
	} else {
		criuPath, lookErr = exec.LookPath("criu")
	}
	if _, set := os.LookupEnv("CRIU_FAULT"); !set && lookErr == nil {
		works, err := criuhost.CachedBreakpointsWork(criuPath)
		if err != nil {
			logrus.Debugf("hardware breakpoint probe failed, assuming they work: %v", err)
		} else if !works {
			logrus.Debug("hardware breakpoints don't fire on this host; CRIU will stop tasks by syscall tracing")
			h.noBreakpoints = true
		}
	}
	// runcr's own CRIU configuration, unless the user names one: the
	// nftables network lock, and for a dump the cgroup yard (cgroupyard.go).
	var lines []criuConfigLine
	if lookErr == nil && !networkLockConfigured() {
		if o.LockNetworkWithNftables {
			if works, why := nftablesLockWorks(ctx, criuPath); works {
				lines = append(lines, nftablesLock)
			} else {
				logrus.Debugf("CRIU will lock the network with iptables: nftables doesn't work here (%s)", why)
			}
		}
		if o.DumpCgroupYard {
			if yard := cgroupYardLine(); yard != "" {
				lines = append(lines, criuConfigLine{"cgroup-yard", yard})
			}
		}
	}
	if len(lines) > 0 {
		if conf, err := runcrCriuConfig(lines); err != nil {
			logrus.Debugf("CRIU gets none of runcr's configuration (%v): %v", lines, err)
		} else {
			h.criuConfig = conf
		}
	}
	for _, kv := range planProcess(h).env {
		key, value, _ := strings.Cut(kv, "=")
		setenv(key, value)
	}
	var once sync.Once
	return func() { once.Do(undoAll) }, nil
}

// LocksNetwork tells whether CRIU will lock the network of container id
// when it dumps it: only a network namespace of its own, which CRIU dumps
// (one given by path is external and not locked). False when the
// container can't be loaded: Checkpoint reports why.
func (rt *Runtime) LocksNetwork(id string) bool {
	c, err := rt.load(id)
	if err != nil {
		return false
	}
	config := c.Config()
	return needsNetworkLock(&config)
}

// checkCriuOnPath makes sure the criu that libcontainer will run (the
// first on PATH) is CriuPath: SetupProcess puts it there.
func (rt *Runtime) checkCriuOnPath() error {
	if rt.CriuPath == "" {
		return nil
	}
	want, err := os.Stat(rt.CriuPath)
	if err != nil {
		return invalid("criu", "%s: %v; give the path of a criu binary", rt.CriuPath, fsutil.UnwrapPathError(err))
	}
	onPath, err := exec.LookPath("criu")
	if err == nil {
		var fi os.FileInfo
		if fi, err = os.Stat(onPath); err == nil && os.SameFile(fi, want) {
			return nil
		}
	}
	return fmt.Errorf("%w: --criu %s is not the criu first on PATH, which libcontainer runs; call SetupProcess with it first", ErrInvalidOption, rt.CriuPath)
}
