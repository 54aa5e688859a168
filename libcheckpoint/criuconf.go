package libcheckpoint

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// libcontainer maps only its own CriuOpts onto CRIU's RPC options. CRIU
// also reads a configuration file named in the RPC request, which
// libcontainer takes from the container's "org.criu.config" annotation
// (default /etc/criu/runc.conf); its settings override the RPC's. Restore
// options that libcontainer has no field for are passed that way.
const criuConfigAnnotation = "org.criu.config"

// criuConfigLines returns the CRIU configuration lines for restore options
// libcontainer doesn't carry.
func criuConfigLines(o RestoreOptions) []string {
	var lines []string
	if o.TCPClose {
		lines = append(lines, "tcp-close")
	}
	return lines
}

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
