package libcheckpoint

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
)

// CRIU dumps a container's cgroups by mounting every cgroup hierarchy the
// container is in afresh (cgroup.c, open_cgroupfs), with the container
// frozen; the first of those mounts costs 12-35 ms here, a fifth of a
// small checkpoint's frozen time. Given a "cgroup yard", a directory where
// each hierarchy is mounted already, CRIU opens those instead. On a host
// with cgroup v1 (or hybrid) hierarchies mounted the usual way, at
// /sys/fs/cgroup/<controllers>, with cgroup2 at /sys/fs/cgroup/unified
// and name=X at /sys/fs/cgroup/X, that directory is /sys/fs/cgroup, named
// exactly as CRIU names a yard's entries. runcr gives it to CRIU for dumps
// only, and only when every hierarchy runcr itself is in (all of them, on
// cgroup v1) is mounted whole there: a restore with a yard would mount
// missing hierarchies into it.
const hostCgroupYard = "/sys/fs/cgroup"

// cgroupYardLine is the CRIU configuration line that gives dumps the
// host's cgroup yard, or "" when the host's hierarchies are not all
// mounted there as CRIU expects.
func cgroupYardLine() string {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	defer f.Close()
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(hostCgroupYard))
	if err != nil {
		return ""
	}
	if !yardHolds(f, mounts) {
		return ""
	}
	return "cgroup-yard " + hostCgroupYard
}

// yardHolds reports whether every hierarchy in cgroups (a /proc/PID/cgroup)
// has its root mounted at the yard entry CRIU looks for, as the topmost
// mount there.
func yardHolds(cgroups interface{ Read([]byte) (int, error) }, mounts []*mountinfo.Info) bool {
	top := map[string]*mountinfo.Info{}
	for _, m := range mounts { // later mounts cover earlier ones
		top[m.Mountpoint] = m
	}
	sc := bufio.NewScanner(cgroups)
	n := 0
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			return false
		}
		ctls := parts[1]
		dir, fstype := ctls, "cgroup"
		switch {
		case ctls == "":
			dir, fstype = "unified", "cgroup2"
		case strings.HasPrefix(ctls, "name="):
			dir = strings.TrimPrefix(ctls, "name=")
		}
		if dir == "" || strings.Contains(dir, "/") {
			return false
		}
		m := top[filepath.Join(hostCgroupYard, dir)]
		if m == nil || m.FSType != fstype || m.Root != "/" {
			return false
		}
		opts := map[string]bool{}
		for _, o := range strings.Split(m.VFSOptions, ",") {
			opts[o] = true
		}
		for _, c := range strings.Split(ctls, ",") {
			if c != "" && !opts[c] {
				return false
			}
		}
		n++
	}
	// A host with only cgroup2 ("0::/") has no unified/ directory: no yard.
	return sc.Err() == nil && n > 0
}
