package libcheckpoint

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"
)

func TestCheckpointCriuOptsMapping(t *testing.T) {
	netOnly := uint32(unix.CLONE_NEWNET)
	tests := []struct {
		name string
		opts func(*CheckpointOptions)
		want func(*libcontainer.CriuOpts)
	}{
		{"defaults", func(*CheckpointOptions) {}, func(*libcontainer.CriuOpts) {}},
		{"image-path", func(o *CheckpointOptions) { o.ImagePath = "/img" }, func(c *libcontainer.CriuOpts) { c.ImagesDirectory = "/img" }},
		{"work-path", func(o *CheckpointOptions) { o.WorkPath = "/work" }, func(c *libcontainer.CriuOpts) { c.WorkDirectory = "/work" }},
		{"parent-path", func(o *CheckpointOptions) { o.ParentPath = "../pre" }, func(c *libcontainer.CriuOpts) { c.ParentImage = "../pre" }},
		{"leave-running", func(o *CheckpointOptions) { o.LeaveRunning = true }, func(c *libcontainer.CriuOpts) { c.LeaveRunning = true }},
		{"tcp-established", func(o *CheckpointOptions) { o.TCPEstablished = true }, func(c *libcontainer.CriuOpts) { c.TcpEstablished = true }},
		{"tcp-skip-in-flight", func(o *CheckpointOptions) { o.TCPSkipInFlight = true }, func(c *libcontainer.CriuOpts) { c.TcpSkipInFlight = true }},
		{"link-remap", func(o *CheckpointOptions) { o.LinkRemap = true }, func(c *libcontainer.CriuOpts) { c.LinkRemap = true }},
		{"ext-unix-sk", func(o *CheckpointOptions) { o.ExtUnixSockets = true }, func(c *libcontainer.CriuOpts) { c.ExternalUnixConnections = true }},
		{"shell-job", func(o *CheckpointOptions) { o.ShellJob = true }, func(c *libcontainer.CriuOpts) { c.ShellJob = true }},
		{"lazy-pages", func(o *CheckpointOptions) { o.LazyPages = true }, func(c *libcontainer.CriuOpts) { c.LazyPages = true }},
		{"status-fd", func(o *CheckpointOptions) { o.LazyPages, o.StatusFD = true, 5 }, func(c *libcontainer.CriuOpts) { c.LazyPages, c.StatusFd = true, 5 }},
		{"page-server", func(o *CheckpointOptions) { o.PageServer = "127.0.0.1:9999" }, func(c *libcontainer.CriuOpts) {
			c.PageServer = libcontainer.CriuPageServerInfo{Address: "127.0.0.1", Port: 9999}
		}},
		{"page-server ipv6", func(o *CheckpointOptions) { o.PageServer = "[::1]:27" }, func(c *libcontainer.CriuOpts) {
			c.PageServer = libcontainer.CriuPageServerInfo{Address: "::1", Port: 27}
		}},
		{"file-locks", func(o *CheckpointOptions) { o.FileLocks = true }, func(c *libcontainer.CriuOpts) { c.FileLocks = true }},
		{"pre-dump", func(o *CheckpointOptions) { o.PreDump = true }, func(c *libcontainer.CriuOpts) { c.PreDump = true }},
		{"manage-cgroups-mode", func(o *CheckpointOptions) { o.ManageCgroupsMode = "ignore" }, func(c *libcontainer.CriuOpts) { c.ManageCgroupsMode = "ignore" }},
		{"empty-ns network", func(o *CheckpointOptions) { o.EmptyNamespaces = []string{"network"} }, func(c *libcontainer.CriuOpts) { c.EmptyNs = netOnly }},
		{"auto-dedup", func(o *CheckpointOptions) { o.AutoDedup = true }, func(c *libcontainer.CriuOpts) { c.AutoDedup = true }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := NewCheckpointOptions()
			tc.opts(&o)
			got, err := o.criuOpts()
			if err != nil {
				t.Fatalf("CriuOpts: %v", err)
			}
			want := &libcontainer.CriuOpts{StatusFd: -1, EmptyNs: netOnly}
			tc.want(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v\nwant %+v", *got, *want)
			}
		})
	}
}

func TestRestoreCriuOptsMapping(t *testing.T) {
	o := RestoreOptions{
		CommonOptions: CommonOptions{
			ImagePath: "/img", WorkPath: "/work", TCPEstablished: true, ExtUnixSockets: true,
			ShellJob: true, FileLocks: true, ManageCgroupsMode: "soft", EmptyNamespaces: []string{"network"},
			AutoDedup: true, LazyPages: true,
		},
		Bundle: "/b", Detach: true, PidFile: "/p", ConsoleSocket: "/s", NoSubreaper: true, NoPivot: true,
		LSMProfile: "apparmor:foo", LSMMountContext: "system_u:object_r:container_file_t:s0",
	}
	got, err := o.criuOpts()
	if err != nil {
		t.Fatal(err)
	}
	want := libcontainer.CriuOpts{
		ImagesDirectory: "/img", WorkDirectory: "/work", TcpEstablished: true, ExternalUnixConnections: true,
		ShellJob: true, FileLocks: true, ManageCgroupsMode: "soft", EmptyNs: unix.CLONE_NEWNET,
		AutoDedup: true, LazyPages: true, StatusFd: -1,
		LsmProfile: "apparmor:foo", LsmMountContext: "system_u:object_r:container_file_t:s0",
	}
	if !reflect.DeepEqual(got, &want) {
		t.Errorf("got %+v\nwant %+v", *got, want)
	}
}

func TestCheckpointValidateNamesFlag(t *testing.T) {
	tests := []struct {
		name, flag string
		opts       func(*CheckpointOptions)
	}{
		{"bad cgroup mode", "--manage-cgroups-mode", func(o *CheckpointOptions) { o.ManageCgroupsMode = "bogus" }},
		{"unsupported namespace", "--empty-ns", func(o *CheckpointOptions) { o.EmptyNamespaces = []string{"pid"} }},
		{"absolute parent", "--parent-path", func(o *CheckpointOptions) { o.ParentPath = "/abs" }},
		{"page server without port", "--page-server", func(o *CheckpointOptions) { o.PageServer = "127.0.0.1" }},
		{"page server empty host", "--page-server", func(o *CheckpointOptions) { o.PageServer = ":80" }},
		{"page server bad port", "--page-server", func(o *CheckpointOptions) { o.PageServer = "127.0.0.1:http" }},
		{"page server port zero", "--page-server", func(o *CheckpointOptions) { o.PageServer = "127.0.0.1:0" }},
		{"page server port too big", "--page-server", func(o *CheckpointOptions) { o.PageServer = "127.0.0.1:65536" }},
		{"negative status fd", "--status-fd", func(o *CheckpointOptions) { o.StatusFD = -5 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := NewCheckpointOptions()
			tc.opts(&o)
			err := o.Validate()
			if !errors.Is(err, ErrInvalidOption) {
				t.Fatalf("Validate() = %v, want ErrInvalidOption", err)
			}
			if !strings.Contains(err.Error(), tc.flag) {
				t.Errorf("error %q does not name %s", err, tc.flag)
			}
			if _, err := o.criuOpts(); err == nil {
				t.Error("CriuOpts accepted options that Validate refused")
			}
		})
	}
}

func TestRestoreValidateNamesFlag(t *testing.T) {
	tests := []struct {
		name, flag string
		opts       RestoreOptions
	}{
		{"bad cgroup mode", "--manage-cgroups-mode", RestoreOptions{CommonOptions: CommonOptions{ManageCgroupsMode: "hard"}}},
		{"unsupported namespace", "--empty-ns", RestoreOptions{CommonOptions: CommonOptions{EmptyNamespaces: []string{"network", "mount"}}}},
		{"lsm profile without type", "--lsm-profile", RestoreOptions{LSMProfile: "foo"}},
		{"lsm profile unknown type", "--lsm-profile", RestoreOptions{LSMProfile: "smack:foo"}},
		{"lsm profile empty name", "--lsm-profile", RestoreOptions{LSMProfile: "apparmor:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.Validate()
			if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), tc.flag) {
				t.Fatalf("Validate() = %v, want ErrInvalidOption naming %s", err, tc.flag)
			}
		})
	}
}

func TestValidOptionsPass(t *testing.T) {
	for _, mode := range []string{"", "soft", "full", "strict", "ignore"} {
		o := NewCheckpointOptions()
		o.ManageCgroupsMode = CgroupMode(mode)
		if err := o.Validate(); err != nil {
			t.Errorf("mode %q: %v", mode, err)
		}
	}
	r := RestoreOptions{LSMProfile: "selinux:system_u:system_r:container_t:s0"}
	if err := r.Validate(); err != nil {
		t.Errorf("selinux profile: %v", err)
	}
}

func TestValidateID(t *testing.T) {
	for _, id := range []string{"", ".", "..", "a/b", "../x", "a b", "a\\b", "x\x00"} {
		if err := validateID(id); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("validateID(%q) = %v, want ErrInvalidOption", id, err)
		}
	}
	for _, id := range []string{"test_busybox", "a.b-c+d_1", "X"} {
		if err := validateID(id); err != nil {
			t.Errorf("validateID(%q) = %v", id, err)
		}
	}
}
