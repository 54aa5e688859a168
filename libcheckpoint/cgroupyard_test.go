package libcheckpoint

import (
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
)

func TestYardHolds(t *testing.T) {
	hybrid := []*mountinfo.Info{
		{Mountpoint: "/sys/fs/cgroup", FSType: "tmpfs", Root: "/"},
		{Mountpoint: "/sys/fs/cgroup/cpu,cpuacct", FSType: "cgroup", Root: "/", VFSOptions: "rw,cpu,cpuacct"},
		{Mountpoint: "/sys/fs/cgroup/memory", FSType: "cgroup", Root: "/", VFSOptions: "rw,memory"},
		{Mountpoint: "/sys/fs/cgroup/systemd", FSType: "cgroup", Root: "/", VFSOptions: "rw,xattr,name=systemd"},
		{Mountpoint: "/sys/fs/cgroup/unified", FSType: "cgroup2", Root: "/", VFSOptions: "rw"},
	}
	cgroups := "4:cpu,cpuacct:/user\n3:memory:/a/b\n1:name=systemd:/x\n0::/x\n"
	if !yardHolds(strings.NewReader(cgroups), hybrid) {
		t.Error("the usual hybrid layout is not taken as a yard")
	}
	for name, tc := range map[string]struct {
		cgroups string
		mounts  []*mountinfo.Info
	}{
		"cgroup2 only":        {"0::/user.slice\n", []*mountinfo.Info{{Mountpoint: "/sys/fs/cgroup", FSType: "cgroup2", Root: "/"}}},
		"hierarchy missing":   {cgroups + "9:pids:/\n", hybrid},
		"not the root":        {"3:memory:/a\n", []*mountinfo.Info{{Mountpoint: "/sys/fs/cgroup/memory", FSType: "cgroup", Root: "/a", VFSOptions: "rw,memory"}}},
		"wrong controllers":   {"3:memory:/a\n", []*mountinfo.Info{{Mountpoint: "/sys/fs/cgroup/memory", FSType: "cgroup", Root: "/", VFSOptions: "rw,pids"}}},
		"covered":             {"3:memory:/a\n", []*mountinfo.Info{{Mountpoint: "/sys/fs/cgroup/memory", FSType: "cgroup", Root: "/", VFSOptions: "rw,memory"}, {Mountpoint: "/sys/fs/cgroup/memory", FSType: "tmpfs", Root: "/"}}},
		"unified not cgroup2": {"0::/\n", []*mountinfo.Info{{Mountpoint: "/sys/fs/cgroup/unified", FSType: "tmpfs", Root: "/"}}},
		"garbage":             {"nonsense\n", hybrid},
		"empty":               {"", hybrid},
	} {
		if yardHolds(strings.NewReader(tc.cgroups), tc.mounts) {
			t.Errorf("%s: taken as a yard", name)
		}
	}
}
