package libcheckpoint

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opencontainers/cgroups"

	"github.com/runcr/runcr/libcheckpoint/internal/criuhost"
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
	// Cgroup is the cgroup version and layout.
	Cgroup CgroupReport `json:"cgroup"`
	// NetworkLock is how CRIU will lock a container's network.
	NetworkLock NetworkLockReport `json:"network_lock"`
	// Seccomp says whether the kernel and CRIU handle seccomp filters.
	Seccomp SeccompReport `json:"seccomp"`
	// KernelFeatureCache says how CRIU avoids probing the kernel at every
	// start: "criu" (/run is a tmpfs, CRIU keeps /run/criu.kdat itself),
	// "runcr" (runcr keeps it, see kdat.go) or "none".
	KernelFeatureCache string `json:"kernel_feature_cache"`
	// KernelFeatureCacheError says why there is none.
	KernelFeatureCacheError string `json:"kernel_feature_cache_error,omitempty"`
	// Options maps checkpoint/restore options to whether they can work here.
	Options map[string]OptionSupport `json:"options"`
	// Advisories are known security holes of this host's CRIU, each with
	// what runcr does about it.
	Advisories []Advisory `json:"advisories,omitempty"`
	// Migration maps `runcr migrate` modes to whether this host can
	// use them (see migrationModes).
	Migration map[string]OptionSupport `json:"migration"`
}

// Advisory is a security hole of a component runcr runs.
type Advisory struct {
	ID        string `json:"id"`
	Component string `json:"component"`
	Installed string `json:"installed"`
	FixedIn   string `json:"fixed_in"`
	Meaning   string `json:"meaning"`
}

// criuAdvisories lists what the CRIU of version v is known to lack.
func criuAdvisories(v int) []Advisory {
	if v == 0 || v >= criuExtMountFixed {
		return nil
	}
	return []Advisory{{
		ID:        "CVE-2026-119614",
		Component: "criu",
		Installed: formatVersion(v),
		FixedIn:   formatVersion(criuExtMountFixed),
		Meaning: "this CRIU keeps external mount names unescaped (mnt[KEY]:VAL), so a crafted name can make a restore bind-mount a host directory into the container; " +
			"runcr refuses such names itself (empty or holding \"]:\", in config.json, the rootfs and the images' mount tables) and refuses a dump whose bind mount was moved behind a symlink, " +
			"but a CRIU with the fix is the complete remedy: install CRIU " + formatVersion(criuExtMountFixed) + " or newer when your distribution has it",
	}}
}

// CgroupReport is the host's cgroup layout.
type CgroupReport struct {
	// Mode is "v1" (v1 hierarchies only), "hybrid" (v1 controllers and
	// an empty cgroup2 at /sys/fs/cgroup/unified) or "unified" (v2 only).
	Mode    string `json:"mode"`
	Meaning string `json:"meaning"`
}

// NetworkLockReport says which tool CRIU blocks a container's network
// with while it dumps and restores it, and whether each one works.
type NetworkLockReport struct {
	// Backend is what a runcr checkpoint of a container with a network
	// namespace of its own uses ("nftables" or "iptables"; "" if neither
	// works). The restore uses what the dump recorded.
	Backend       string `json:"backend"`
	Iptables      bool   `json:"iptables"`
	IptablesError string `json:"iptables_error,omitempty"`
	Nftables      bool   `json:"nftables"`
	NftablesError string `json:"nftables_error,omitempty"`
	Meaning       string `json:"meaning"`
}

// SeccompReport says whether containers' seccomp filters survive a
// checkpoint.
type SeccompReport struct {
	// Kernel is true when the kernel has seccomp filters.
	Kernel bool `json:"kernel"`
	// CriuDumpsFilters is CRIU's seccomp_filters feature: it can read a
	// task's filters (PTRACE_SECCOMP_GET_FILTER) to restore them.
	CriuDumpsFilters bool `json:"criu_dumps_filters"`
	// CriuSuspends is CRIU's seccomp_suspend feature: it can suspend the
	// filters while its parasite runs in the task.
	CriuSuspends bool   `json:"criu_suspends"`
	Meaning      string `json:"meaning"`
}

// OptionSupport is the verdict on one option.
type OptionSupport struct {
	Supported bool   `json:"supported"`
	Reason    string `json:"reason,omitempty"`
}

// checkedFeatures are the CRIU features options depend on.
var checkedFeatures = []string{"mem_dirty_track", "uffd", "uffd-noncoop", "seccomp_suspend", "seccomp_filters", "timens", "network_lock_nftables"}

// CheckHost probes CRIU and the kernel.
func (rt *Runtime) CheckHost(ctx context.Context) (*HostReport, error) {
	session, err := rt.prepareCriu(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer session.close()
	r := &HostReport{Features: map[string]bool{}, Options: map[string]OptionSupport{}}
	r.CriuPath, _ = exec.LookPath("criu")
	if rt.CriuPath != "" && r.CriuPath != "" {
		// Not the private link that gives --criu's binary the name criu.
		r.CriuPath, _ = filepath.Abs(rt.CriuPath)
	}
	if r.CriuPath == "" {
		r.CriuError = "criu is not installed (not on PATH); install CRIU 4.0 or newer"
	} else {
		r.CriuVersion, err = cachedCriuVersion(ctx, r.CriuPath)
		if err != nil {
			r.CriuError = "criu does not answer: " + err.Error()
		}
	}
	r.Advisories = criuAdvisories(r.CriuVersion)
	if r.CriuError == "" {
		for _, f := range checkedFeatures {
			_, err := criuCheckFeature(ctx, r.CriuPath, f)
			r.Features[f] = err == nil
		}
	}
	// prepareCriu above has just probed (or read the cached answer).
	if r.CriuPath != "" {
		r.HardwareBreakpoints, _ = criuhost.CachedBreakpointsWork(r.CriuPath)
	}
	r.Cgroup = cgroupReport()
	r.NetworkLock = networkLockReport(ctx, r.CriuPath, r.CriuError == "")
	r.Seccomp = seccompReport(r.Features)
	switch how, err := criuhost.EnsureKdatCache(ctx, r.CriuPath); {
	case r.CriuPath == "":
		r.KernelFeatureCache = "none"
	case err != nil:
		r.KernelFeatureCache, r.KernelFeatureCacheError = "none", err.Error()
	case how == criuhost.KdatNotNeeded:
		r.KernelFeatureCache = "criu"
	default:
		r.KernelFeatureCache = "runcr"
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
		if works, why := lazyMigrationWorks(ctx); !works {
			r.Options["lazy-pages"] = OptionSupport{Reason: "a trial lazy migration fails: " + why}
		}
	}
	lock := OptionSupport{Supported: r.NetworkLock.Backend != ""}
	if !lock.Supported {
		lock.Reason = "neither iptables nor nftables works to lock the network"
	}
	r.Options["tcp-established"] = lock
	basic := OptionSupport{Supported: r.CriuError == ""}
	if !basic.Supported {
		basic.Reason = r.CriuError
	}
	for _, o := range []string{"leave-running", "page-server", "file-locks", "ext-unix-sk", "shell-job", "link-remap", "auto-dedup", "manage-cgroups-mode", "empty-ns"} {
		r.Options[o] = basic
	}
	r.Migration = migrationModes(r)
	if r.CriuError != "" {
		return r, errors.New(r.CriuError)
	}
	return r, nil
}

// CriuVersionText is CriuVersion as CRIU prints it ("4.1.1").
func (r *HostReport) CriuVersionText() string { return formatVersion(r.CriuVersion) }

// formatVersion renders CRIU's numeric version as "4.1.1".
func formatVersion(v int) string {
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
func requireCriuFeature(ctx context.Context, feature, neededBy string) error {
	if out, err := criuCheckFeature(ctx, "criu", feature); err != nil {
		if errors.Is(err, ErrCriuTimeout) {
			return err
		}
		return fmt.Errorf("%w: refused before freezing the container: CRIU feature %s is missing, needed by %s (criu check: %s)",
			ErrUnsupported, feature, neededBy, strings.TrimSpace(string(out)))
	}
	return nil
}

// criuCheckFeature asks `criu check --feature`, whose exit status is the
// answer (go-criu's FeatureCheck returns the request, not CRIU's answer).
func criuCheckFeature(ctx context.Context, criu, feature string) ([]byte, error) {
	return criuhost.RunProbe(ctx, criu, "check", "--feature", feature)
}

func cgroupReport() CgroupReport {
	switch {
	case cgroups.IsCgroup2UnifiedMode():
		return CgroupReport{"unified", "cgroup v2 only: one hierarchy; CRIU restores its controllers' settings"}
	case isDir("/sys/fs/cgroup/unified"):
		return CgroupReport{"hybrid", "cgroup v1 controllers, plus an empty cgroup v2 at /sys/fs/cgroup/unified; containers are frozen with the v1 freezer"}
	default:
		return CgroupReport{"v1", "cgroup v1 only: one hierarchy per controller; containers are frozen with the v1 freezer"}
	}
}

// networkLockReport tries both tools. CRIU's iptables lock runs
// iptables-restore and ip6tables-restore in the container's network
// namespace; its nftables lock needs libnftables in CRIU and nf_tables with
// set concatenations in the kernel.
func networkLockReport(ctx context.Context, criuPath string, criuOK bool) NetworkLockReport {
	var r NetworkLockReport
	r.IptablesError = iptablesError()
	r.Iptables = r.IptablesError == ""
	if criuOK {
		var why string
		if r.Nftables, why = nftablesLockWorks(ctx, criuPath); !r.Nftables {
			r.NftablesError = why
		}
	} else {
		r.NftablesError = "no working criu"
	}
	switch {
	case r.Nftables && networkLockConfigured():
		r.Backend = "iptables"
		r.Meaning = "a CRIU configuration (CRIU_CONFIG_FILE or default.conf) chooses the lock; runcr leaves it alone (CRIU's default is iptables)"
	case r.Nftables:
		r.Backend = "nftables"
		r.Meaning = "CRIU blocks the container's network with nftables, in-process; its images then need a CRIU with nftables to restore"
	case r.Iptables:
		r.Backend = "iptables"
		r.Meaning = "CRIU blocks the container's network by running iptables-restore and ip6tables-restore (nftables doesn't work here)"
	default:
		r.Meaning = "neither works: checkpoints of containers with their own network namespace will fail"
	}
	return r
}

// iptablesError says why CRIU's iptables lock can't work, or is empty.
func iptablesError() string {
	tools := []string{"iptables-restore", "iptables"}
	if _, err := os.Stat("/proc/net/if_inet6"); err == nil {
		tools = append(tools, "ip6tables-restore", "ip6tables")
	}
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			return t + " is not installed"
		}
	}
	for _, t := range []string{"iptables", "ip6tables"} {
		if !slices.Contains(tools, t) {
			continue
		}
		if out, err := exec.Command(t, "-w", "-n", "-L", "INPUT").CombinedOutput(); err != nil {
			return t + " -L fails: " + lastLine(string(out))
		}
	}
	return ""
}

func seccompReport(features map[string]bool) SeccompReport {
	r := SeccompReport{
		// CONFIG_SECCOMP_FILTER creates this sysctl.
		Kernel:           isFile("/proc/sys/kernel/seccomp/actions_avail"),
		CriuDumpsFilters: features["seccomp_filters"],
		CriuSuspends:     features["seccomp_suspend"],
	}
	switch {
	case !r.Kernel:
		r.Meaning = "the kernel has no seccomp filters: containers run without their seccomp profile"
	case r.CriuDumpsFilters && r.CriuSuspends:
		r.Meaning = "containers' seccomp filters are checkpointed and restored with them"
	default:
		r.Meaning = "CRIU can't read or suspend seccomp filters here: a container with a seccomp profile can't be checkpointed"
	}
	return r
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
