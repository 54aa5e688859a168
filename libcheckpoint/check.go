package libcheckpoint

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/checkpoint-restore/go-criu/v7"
	"github.com/opencontainers/cgroups"
)

// HostReport says what this host supports, so a user knows before trying.
type HostReport struct {
	// CriuPath is the criu binary that would run; empty when none is found.
	CriuPath string `json:"criu_path"`
	// CriuVersion is CRIU's version as major*10000+minor*100+sublevel.
	CriuVersion int `json:"criu_version"`
	// CriuError says why CRIU can't be used, if it can't.
	CriuError string `json:"criu_error,omitempty"`
	// Features maps CRIU feature names (as `criu check --feature`) to
	// whether this host has them.
	Features map[string]bool `json:"features"`
	// HardwareBreakpoints is false where x86 debug-register breakpoints
	// don't fire; runcr then runs CRIU without them.
	HardwareBreakpoints bool `json:"hardware_breakpoints"`
	// CgroupMode is "v1", "hybrid" or "v2".
	CgroupMode string `json:"cgroup_mode"`
	// NetworkLock is the tool CRIU locks the network with ("iptables" or
	// "nftables"), or "" when neither is installed.
	NetworkLock string `json:"network_lock"`
	// Options maps checkpoint/restore options to whether they can work here.
	Options map[string]OptionSupport `json:"options"`
}

// OptionSupport is the verdict on one option.
type OptionSupport struct {
	Supported bool   `json:"supported"`
	Reason    string `json:"reason,omitempty"`
}

// checkedFeatures are the CRIU features options depend on.
var checkedFeatures = []string{"mem_dirty_track", "uffd", "uffd-noncoop", "seccomp_suspend", "timens", "network_lock_nftables"}

// CheckHost probes CRIU and the kernel.
func (rt *Runtime) CheckHost() (*HostReport, error) {
	restore, err := rt.prepareCriu()
	if err != nil {
		return nil, err
	}
	defer restore()
	r := &HostReport{Features: map[string]bool{}, Options: map[string]OptionSupport{}}
	r.CriuPath, _ = exec.LookPath("criu")
	if r.CriuPath == "" {
		r.CriuError = "criu is not installed (not on PATH); install CRIU 4.0 or newer"
	} else {
		r.CriuVersion, err = criu.MakeCriu().GetCriuVersion()
		if err != nil {
			r.CriuError = "criu does not answer: " + err.Error()
		}
	}
	if r.CriuError == "" {
		for _, f := range checkedFeatures {
			_, err := criuCheckFeature(r.CriuPath, f)
			r.Features[f] = err == nil
		}
	}
	// prepareCriu above has just probed (or read the cached answer).
	r.HardwareBreakpoints, _ = cachedBreakpointsWork()
	switch {
	case cgroups.IsCgroup2UnifiedMode():
		r.CgroupMode = "v2"
	case isDir("/sys/fs/cgroup/unified"):
		r.CgroupMode = "hybrid"
	default:
		r.CgroupMode = "v1"
	}
	if _, err := exec.LookPath("iptables-restore"); err == nil {
		r.NetworkLock = "iptables"
	} else if r.Features["network_lock_nftables"] {
		r.NetworkLock = "nftables"
	}

	need := func(option, feature, why string) {
		ok := r.CriuError == "" && r.Features[feature]
		s := OptionSupport{Supported: ok}
		if !ok {
			s.Reason = "CRIU feature " + feature + " is missing: " + why
		}
		r.Options[option] = s
	}
	need("pre-dump", "mem_dirty_track", "the kernel has no soft-dirty memory tracking")
	need("parent-path", "mem_dirty_track", "incremental dumps need soft-dirty memory tracking")
	need("lazy-pages", "uffd-noncoop", "the kernel lacks non-cooperative userfaultfd")
	if r.Options["lazy-pages"].Supported {
		if works, why := LazyMigrationWorks(); !works {
			r.Options["lazy-pages"] = OptionSupport{Reason: "a trial lazy migration fails: " + why}
		}
	}
	lock := OptionSupport{Supported: r.NetworkLock != ""}
	if !lock.Supported {
		lock.Reason = "neither iptables-restore nor nftables support is available to lock the network"
	}
	r.Options["tcp-established"] = lock
	basic := OptionSupport{Supported: r.CriuError == ""}
	if !basic.Supported {
		basic.Reason = r.CriuError
	}
	for _, o := range []string{"leave-running", "page-server", "file-locks", "ext-unix-sk", "shell-job", "link-remap", "auto-dedup", "manage-cgroups-mode", "empty-ns"} {
		r.Options[o] = basic
	}
	if r.CriuError != "" {
		return r, errors.New(r.CriuError)
	}
	return r, nil
}

// FormatVersion renders CRIU's numeric version as "4.1.1".
func FormatVersion(v int) string {
	if v == 0 {
		return "unknown"
	}
	return fmt.Sprintf("%d.%d.%d", v/10000, v/100%100, v%100)
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// requireCriuFeature refuses with ErrUnsupported where CRIU lacks feature.
func requireCriuFeature(feature, neededBy string) error {
	if out, err := criuCheckFeature("criu", feature); err != nil {
		return fmt.Errorf("%w: refused before freezing the container: CRIU feature %s is missing, needed by %s (criu check: %s)",
			ErrUnsupported, feature, neededBy, strings.TrimSpace(string(out)))
	}
	return nil
}

// criuCheckFeature asks `criu check --feature`, whose exit status is the
// answer (go-criu's FeatureCheck returns the request, not CRIU's answer).
func criuCheckFeature(criu, feature string) ([]byte, error) {
	return exec.Command(criu, "check", "--feature", feature).CombinedOutput()
}
