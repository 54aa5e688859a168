package criuhost

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/runcr/runcr/libcheckpoint/internal/fsutil"
)

// CachedProbe remembers a host probe's verdict (and the reason for a "no")
// in a file under /run/runcr, valid while key matches: the key names the
// boot, and for CRIU probes the criu binary, so the probe is redone after a
// reboot or an upgrade. Best effort: without a cache, or with an empty key,
// the probe just runs again next time. Failed probes are not remembered.
func CachedProbe(path, key string, probe func() (bool, string, error)) (bool, string, error) {
	if key != "" {
		if data, err := os.ReadFile(path); err == nil {
			if lines := strings.SplitN(string(data), "\n", 3); len(lines) == 3 && lines[0] == key {
				return lines[1] == "yes", strings.TrimSpace(lines[2]), nil
			}
		}
	}
	works, reason, err := probe()
	if err != nil || key == "" {
		return works, reason, err
	}
	answer := "no"
	if works {
		answer = "yes"
	}
	if os.MkdirAll(filepath.Dir(path), 0o755) == nil {
		_ = fsutil.ReplaceFile(path, 0o644, func(f *os.File) error {
			_, err := f.WriteString(key + "\n" + answer + "\n" + reason + "\n")
			return err
		})
	}
	return works, reason, nil
}

// bootID names the running boot, or is empty where the kernel won't say.
func bootID() string {
	id, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(id))
}

// CacheKey ties a cached answer to this boot and this criu binary.
func CacheKey(criuPath string) string {
	key := bootID()
	if key == "" {
		return ""
	}
	if fi, err := os.Stat(criuPath); err == nil {
		key += fmt.Sprintf(" %s %d %d", criuPath, fi.Size(), fi.ModTime().UnixNano())
	}
	return key
}
