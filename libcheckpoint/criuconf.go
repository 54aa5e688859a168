package libcheckpoint

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runcr/runcr/libcheckpoint/internal/criuhost"
	"github.com/runcr/runcr/libcheckpoint/internal/fsutil"
)

// libcontainer maps only its own CriuOpts onto CRIU's RPC options. CRIU
// also reads a configuration file named in the RPC request, which
// libcontainer takes from the container's "org.criu.config" annotation
// (default /etc/criu/runc.conf); its settings override the RPC's. Restore
// options that libcontainer has no field for are passed that way: the
// plan's configLines (criuplan.go).
const criuConfigAnnotation = "org.criu.config"

// criuConfigFile is the per-container CRIU configuration runcr writes into
// the container's state directory: the configuration CRIU would have read
// anyway, plus restore-only lines that are dropped once the restore is
// done, so later checkpoints see what they would have seen.
type criuConfigFile struct {
	path  string
	base  string
	extra []string
}

// newCriuConfigFile points the spec's annotation at the file it will write
// in stateDir, keeping the content of whatever file it pointed at before.
func newCriuConfigFile(stateDir string, spec *specs.Spec, extra []string) *criuConfigFile {
	basePath, set := spec.Annotations[criuConfigAnnotation]
	if !set {
		basePath = "/etc/criu/runc.conf"
	}
	var base string
	if basePath != "" {
		if data, err := os.ReadFile(basePath); err == nil {
			base = string(data)
		}
	}
	if spec.Annotations == nil {
		spec.Annotations = map[string]string{}
	}
	path := filepath.Join(stateDir, "runcr-criu.conf")
	spec.Annotations[criuConfigAnnotation] = path
	return &criuConfigFile{path: path, base: base, extra: extra}
}

func (f *criuConfigFile) write() error {
	content := f.base
	if content != "" && !strings.HasSuffix(content, "\n") {
		content += "\n"
	}
	content += strings.Join(f.extra, "\n") + "\n"
	if err := os.WriteFile(f.path, []byte(content), 0o600); err != nil {
		return fmt.Errorf("writing CRIU configuration %s: %w", f.path, err)
	}
	return nil
}

// dropRestoreOnly leaves only the configuration later checkpoints need.
func (f *criuConfigFile) dropRestoreOnly() {
	warnIf(os.WriteFile(f.path, []byte(f.base), 0o600), "resetting %s", f.path)
}

// CRIU locks a container's network namespace while it dumps it, and on
// restore until the processes run. Its default, iptables, costs several
// programs per operation (~25 ms on dump, ~100 ms on restore on the test
// VM); nftables does the same in-process. A restore uses the method the
// dump recorded in inventory.img, so the choice is made at checkpoint. It
// reaches CRIU through CRIU_CONFIG_FILE, which CRIU reads at start-up,
// before the configuration file named in the RPC request (runc.conf or
// org.criu.config), so that file still overrides it.
const (
	nftablesCache  = "/run/runcr/nftables-lock"
	runcrConfigDir = "/run/runcr"
)

// needsNetworkLock reports whether CRIU will lock the container's network
// itself: only for a network namespace of its own that CRIU dumps (one
// given by path is external and not locked).
func needsNetworkLock(c *configs.Config) bool {
	for _, ns := range c.Namespaces {
		if ns.Type == configs.NEWNET {
			return ns.Path == ""
		}
	}
	return false
}

// nftablesLockWorks asks CRIU whether it can lock with nftables (it was
// built with libnftables and the kernel has nf_tables with set
// concatenations), remembered per boot and criu binary.
func nftablesLockWorks(ctx context.Context, criuPath string) (bool, string) {
	works, reason, err := criuhost.CachedProbe(nftablesCache, criuhost.KdatKey(criuPath), func() (bool, string, error) {
		out, err := criuCheckFeature(ctx, criuPath, "network_lock_nftables")
		if errors.Is(err, ErrCriuTimeout) {
			return false, "", err // not remembered
		}
		if err != nil {
			return false, lastLine(string(out)), nil
		}
		return true, "", nil
	})
	if err != nil {
		return false, err.Error()
	}
	return works, reason
}

// networkLockConfigured reports whether the user already chose a lock
// method in a CRIU configuration that CRIU_CONFIG_FILE would override.
func networkLockConfigured() bool {
	if _, set := os.LookupEnv("CRIU_CONFIG_FILE"); set {
		return true
	}
	files := []string{"/etc/criu/default.conf"}
	if home := os.Getenv("HOME"); home != "" {
		files = append(files, filepath.Join(home, ".criu", "default.conf"))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(strings.TrimLeft(strings.TrimSpace(line), "-"), "network-lock") {
				return true
			}
		}
	}
	return false
}

// criuConfigLine is a line of a CRIU configuration runcr owns, with the
// name it gives the configuration file.
type criuConfigLine struct{ name, line string }

var nftablesLock = criuConfigLine{"network-lock-nftables", "network-lock nftables"}

// runcrCriuConfig returns the path of a CRIU configuration runcr owns
// holding lines (the nftables network lock, a dump's cgroup yard), writing
// it if needed. Each content has a file of its own, named by its lines
// (criu-network-lock-nftables.conf, ...-cgroup-yard.conf), so that a
// restore never reads what a concurrent dump wrote for itself.
func runcrCriuConfig(lines []criuConfigLine) (string, error) {
	var names, content []string
	for _, l := range lines {
		names = append(names, l.name)
		content = append(content, l.line+"\n")
	}
	path := filepath.Join(runcrConfigDir, "criu-"+strings.Join(names, "-")+".conf")
	data := strings.Join(content, "")
	if old, err := os.ReadFile(path); err == nil && string(old) == data {
		return path, nil
	}
	if err := os.MkdirAll(runcrConfigDir, 0o755); err != nil {
		return "", err
	}
	return path, fsutil.ReplaceFile(path, 0o644, func(f *os.File) error {
		_, err := f.WriteString(data)
		return err
	})
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
