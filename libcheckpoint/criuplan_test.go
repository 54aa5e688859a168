package libcheckpoint

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// criuOpts is the RPC part of o's plan, for the mapping tests of
// options_test.go and fuzz_test.go.
func (o *CheckpointOptions) criuOpts() (*libcontainer.CriuOpts, error) {
	p, err := planCheckpoint(*o)
	if err != nil {
		return nil, err
	}
	return p.rpc, nil
}

// criuOpts is the RPC part of o's plan without a manifest, with o's image
// and work paths as they are.
func (o *RestoreOptions) criuOpts() (*libcontainer.CriuOpts, error) {
	p, err := planRestore(*o, nil, criuDirs{images: o.ImagePath, work: o.WorkPath}, nil)
	if err != nil {
		return nil, err
	}
	return p.rpc, nil
}

// fakeDup stands for dupHigh: it names the duplicate of fd fd+100000,
// which is never open, so closing it does nothing.
func fakeDup(fd int) (int, error) { return fd + 100000, nil }

// TestCriuPlan covers every channel to CRIU and every option that reaches
// it, in each direction: the RPC options, the lines of the CRIU
// configuration file, the criu child's environment and the image
// directory's parent link. Options that don't reach CRIU leave the plan
// as the defaults make it.
func TestCriuPlan(t *testing.T) {
	netOnly := uint32(unix.CLONE_NEWNET)
	ckpt := func(f func(*CheckpointOptions)) func() (*criuPlan, error) {
		return func() (*criuPlan, error) {
			o := NewCheckpointOptions()
			f(&o)
			return planCheckpoint(o)
		}
	}
	dirs := criuDirs{images: "/abs/img", work: "/abs/work"}
	rest := func(m *Manifest, f func(*RestoreOptions)) func() (*criuPlan, error) {
		return func() (*criuPlan, error) {
			o := RestoreOptions{}
			f(&o)
			return planRestore(o, m, dirs, fakeDup)
		}
	}
	proc := func(h criuHost) func() (*criuPlan, error) {
		return func() (*criuPlan, error) { return planProcess(h), nil }
	}
	fds := &Manifest{InheritedFDs: map[int]string{3: "pipe:[11]", 5: "socket:[22]", 9: "pipe:[33]"}}
	mustMatch := &Manifest{Options: ManifestOptions{
		TCPEstablished: true, ExtUnixSockets: true, ShellJob: true, FileLocks: true,
		// Not must-match: restore doesn't take them from the manifest.
		LinkRemap: true, ManageCgroupsMode: "full", AutoDedup: true, LazyPages: true, EmptyNamespaces: []string{"network"},
	}}
	type want struct {
		rpc         func(*libcontainer.CriuOpts) // changes to the defaults
		configLines []string
		env         []string
		parentLink  string
	}
	tests := []struct {
		name string
		plan func() (*criuPlan, error)
		want want
	}{
		// Checkpoint: everything goes through the RPC.
		{"checkpoint defaults", ckpt(func(*CheckpointOptions) {}), want{}},
		{"checkpoint image-path", ckpt(func(o *CheckpointOptions) { o.ImagePath = "img" }), want{rpc: func(c *libcontainer.CriuOpts) { c.ImagesDirectory = "img" }}},
		{"checkpoint work-path", ckpt(func(o *CheckpointOptions) { o.WorkPath = "w" }), want{rpc: func(c *libcontainer.CriuOpts) { c.WorkDirectory = "w" }}},
		{"checkpoint parent-path", ckpt(func(o *CheckpointOptions) { o.ParentPath = "../pre" }), want{rpc: func(c *libcontainer.CriuOpts) { c.ParentImage = "../pre" }}},
		{"checkpoint leave-running", ckpt(func(o *CheckpointOptions) { o.LeaveRunning = true }), want{rpc: func(c *libcontainer.CriuOpts) { c.LeaveRunning = true }}},
		{"checkpoint tcp-established", ckpt(func(o *CheckpointOptions) { o.TCPEstablished = true }), want{rpc: func(c *libcontainer.CriuOpts) { c.TcpEstablished = true }}},
		{"checkpoint tcp-skip-in-flight", ckpt(func(o *CheckpointOptions) { o.TCPSkipInFlight = true }), want{rpc: func(c *libcontainer.CriuOpts) { c.TcpSkipInFlight = true }}},
		{"checkpoint link-remap", ckpt(func(o *CheckpointOptions) { o.LinkRemap = true }), want{rpc: func(c *libcontainer.CriuOpts) { c.LinkRemap = true }}},
		{"checkpoint ext-unix-sk", ckpt(func(o *CheckpointOptions) { o.ExtUnixSockets = true }), want{rpc: func(c *libcontainer.CriuOpts) { c.ExternalUnixConnections = true }}},
		{"checkpoint shell-job", ckpt(func(o *CheckpointOptions) { o.ShellJob = true }), want{rpc: func(c *libcontainer.CriuOpts) { c.ShellJob = true }}},
		{"checkpoint file-locks", ckpt(func(o *CheckpointOptions) { o.FileLocks = true }), want{rpc: func(c *libcontainer.CriuOpts) { c.FileLocks = true }}},
		{"checkpoint manage-cgroups-mode", ckpt(func(o *CheckpointOptions) { o.ManageCgroupsMode = CgroupModeStrict }), want{rpc: func(c *libcontainer.CriuOpts) { c.ManageCgroupsMode = "strict" }}},
		{"checkpoint empty-ns", ckpt(func(o *CheckpointOptions) { o.EmptyNamespaces = []string{"network"} }), want{rpc: func(c *libcontainer.CriuOpts) { c.EmptyNs = netOnly }}},
		{"checkpoint auto-dedup", ckpt(func(o *CheckpointOptions) { o.AutoDedup = true }), want{rpc: func(c *libcontainer.CriuOpts) { c.AutoDedup = true }}},
		{"checkpoint lazy-pages status-fd", ckpt(func(o *CheckpointOptions) { o.LazyPages, o.StatusFD = true, 4 }), want{rpc: func(c *libcontainer.CriuOpts) { c.LazyPages, c.StatusFd = true, 4 }}},
		{"checkpoint page-server", ckpt(func(o *CheckpointOptions) { o.PageServer = "[::1]:27" }), want{rpc: func(c *libcontainer.CriuOpts) {
			c.PageServer = libcontainer.CriuPageServerInfo{Address: "::1", Port: 27}
		}}},
		{"checkpoint pre-dump", ckpt(func(o *CheckpointOptions) { o.PreDump = true }), want{rpc: func(c *libcontainer.CriuOpts) { c.PreDump = true }}},
		{"checkpoint export is not CRIU's", ckpt(func(o *CheckpointOptions) { o.Export, o.Compress = "/x.tar", CompressGzip }), want{}},

		// Restore: the directories come resolved; the manifest adds.
		{"restore defaults", rest(nil, func(*RestoreOptions) {}), want{}},
		{"restore paths are the resolved ones", rest(nil, func(o *RestoreOptions) { o.ImagePath, o.WorkPath = "img", "w" }), want{}},
		{"restore tcp-established", rest(nil, func(o *RestoreOptions) { o.TCPEstablished = true }), want{rpc: func(c *libcontainer.CriuOpts) { c.TcpEstablished = true }}},
		{"restore ext-unix-sk", rest(nil, func(o *RestoreOptions) { o.ExtUnixSockets = true }), want{rpc: func(c *libcontainer.CriuOpts) { c.ExternalUnixConnections = true }}},
		{"restore shell-job", rest(nil, func(o *RestoreOptions) { o.ShellJob = true }), want{rpc: func(c *libcontainer.CriuOpts) { c.ShellJob = true }}},
		{"restore file-locks", rest(nil, func(o *RestoreOptions) { o.FileLocks = true }), want{rpc: func(c *libcontainer.CriuOpts) { c.FileLocks = true }}},
		{"restore manage-cgroups-mode", rest(nil, func(o *RestoreOptions) { o.ManageCgroupsMode = CgroupModeIgnore }), want{rpc: func(c *libcontainer.CriuOpts) { c.ManageCgroupsMode = "ignore" }}},
		{"restore empty-ns", rest(nil, func(o *RestoreOptions) { o.EmptyNamespaces = []string{"network"} }), want{rpc: func(c *libcontainer.CriuOpts) { c.EmptyNs = netOnly }}},
		{"restore auto-dedup", rest(nil, func(o *RestoreOptions) { o.AutoDedup = true }), want{rpc: func(c *libcontainer.CriuOpts) { c.AutoDedup = true }}},
		{"restore lazy-pages", rest(nil, func(o *RestoreOptions) { o.LazyPages = true }), want{rpc: func(c *libcontainer.CriuOpts) { c.LazyPages = true }}},
		{"restore lsm-profile", rest(nil, func(o *RestoreOptions) { o.LSMProfile = "apparmor:p" }), want{rpc: func(c *libcontainer.CriuOpts) { c.LsmProfile = "apparmor:p" }}},
		{"restore lsm-mount-context", rest(nil, func(o *RestoreOptions) { o.LSMMountContext = "ctx" }), want{rpc: func(c *libcontainer.CriuOpts) { c.LsmMountContext = "ctx" }}},
		{"restore manifest must-match options", rest(mustMatch, func(*RestoreOptions) {}), want{rpc: func(c *libcontainer.CriuOpts) {
			c.TcpEstablished, c.ExternalUnixConnections, c.ShellJob, c.FileLocks = true, true, true, true
		}}},
		{"restore tcp-close", rest(nil, func(o *RestoreOptions) { o.TCPClose = true }), want{configLines: []string{"tcp-close"}}},
		{"restore preserve-fds", rest(fds, func(o *RestoreOptions) { o.PreserveFDs = 3 }), want{configLines: []string{
			"inherit-fd fd[100003]:pipe:[11]", "inherit-fd fd[100005]:socket:[22]",
		}}},
		{"restore preserve-fds without manifest", rest(nil, func(o *RestoreOptions) { o.PreserveFDs = 3 }), want{}},
		{"restore tcp-close and preserve-fds", rest(fds, func(o *RestoreOptions) { o.TCPClose, o.PreserveFDs = true, 1 }), want{configLines: []string{
			"tcp-close", "inherit-fd fd[100003]:pipe:[11]",
		}}},
		{"restore parent-path", rest(nil, func(o *RestoreOptions) { o.ParentPath = "../pre" }), want{parentLink: "../pre"}},
		{"restore options not CRIU's", rest(nil, func(o *RestoreOptions) {
			o.Bundle, o.Detach, o.PidFile, o.ConsoleSocket, o.NoSubreaper = "/b", true, "/p", "/s", true
			o.NoPivot, o.NoNewKeyring, o.Import, o.ImportLimit = true, true, "/a.tar", "1G"
		}), want{}},

		// The process: the criu child's environment.
		{"process nothing to set", proc(criuHost{path: "/usr/bin"}), want{}},
		{"process criu", proc(criuHost{path: "/usr/bin:/bin", criuDir: "/tmp/runcr-criu-1"}), want{env: []string{"PATH=/tmp/runcr-criu-1:/usr/bin:/bin"}}},
		{"process no breakpoints", proc(criuHost{noBreakpoints: true}), want{env: []string{"CRIU_FAULT=130"}}},
		{"process nftables lock", proc(criuHost{criuConfig: "/run/x.conf"}), want{env: []string{"CRIU_CONFIG_FILE=/run/x.conf"}}},
		{"process everything", proc(criuHost{path: "/bin", criuDir: "/c", noBreakpoints: true, criuConfig: "/n"}), want{env: []string{
			"PATH=/c:/bin", "CRIU_FAULT=130", "CRIU_CONFIG_FILE=/n",
		}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := tc.plan()
			if err != nil {
				t.Fatal(err)
			}
			defer p.release()
			var wantRPC *libcontainer.CriuOpts
			switch {
			case strings.HasPrefix(tc.name, "checkpoint"):
				wantRPC = &libcontainer.CriuOpts{StatusFd: -1, EmptyNs: netOnly}
			case strings.HasPrefix(tc.name, "restore"):
				wantRPC = &libcontainer.CriuOpts{ImagesDirectory: dirs.images, WorkDirectory: dirs.work, StatusFd: -1, EmptyNs: netOnly}
			}
			if tc.want.rpc != nil {
				tc.want.rpc(wantRPC)
			}
			if !reflect.DeepEqual(p.rpc, wantRPC) {
				t.Errorf("rpc:\n got %+v\nwant %+v", p.rpc, wantRPC)
			}
			if !reflect.DeepEqual(p.configLines, tc.want.configLines) {
				t.Errorf("config lines %q, want %q", p.configLines, tc.want.configLines)
			}
			if !reflect.DeepEqual(p.env, tc.want.env) {
				t.Errorf("env %q, want %q", p.env, tc.want.env)
			}
			if p.parentLink != tc.want.parentLink {
				t.Errorf("parent link %q, want %q", p.parentLink, tc.want.parentLink)
			}
		})
	}
}

// The plan refuses what Validate refuses, and a descriptor it can't
// duplicate, naming the flag; the duplicates made are closed.
func TestCriuPlanRefuses(t *testing.T) {
	if _, err := planCheckpoint(CheckpointOptions{StatusFD: -1, CommonOptions: CommonOptions{ManageCgroupsMode: "hard"}}); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("checkpoint with a bad cgroup mode: %v", err)
	}
	if _, err := planRestore(RestoreOptions{LSMProfile: "x"}, nil, criuDirs{}, fakeDup); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("restore with a bad LSM profile: %v", err)
	}
	var closed []int
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	dup := func(fd int) (int, error) {
		if fd == 5 {
			return -1, unix.EMFILE
		}
		d, err := unix.Dup(int(r.Fd()))
		closed = append(closed, d)
		return d, err
	}
	m := &Manifest{InheritedFDs: map[int]string{3: "pipe:[1]", 5: "pipe:[2]"}}
	_, err = planRestore(RestoreOptions{PreserveFDs: 3}, m, criuDirs{}, dup)
	if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "--preserve-fds: file descriptor 5: ") {
		t.Errorf("failing dup: %v", err)
	}
	for _, fd := range closed {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
			t.Errorf("duplicate %d left open", fd)
			unix.Close(fd)
		}
	}
}

// The CRIU configuration file reaches libcontainer only if the spec's
// annotation names it before specconv runs: libcontainerConfig does both,
// so a restore's config carries the label naming the plan's file.
func TestCriuPlanConfigFileBeforeSpecconv(t *testing.T) {
	bundle := t.TempDir()
	if err := os.Mkdir(filepath.Join(bundle, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	rt := &Runtime{Root: t.TempDir()}
	spec := func() *specs.Spec {
		return &specs.Spec{
			Version: specs.Version,
			Root:    &specs.Root{Path: "rootfs"},
			Process: &specs.Process{Args: []string{"sh"}, Cwd: "/"},
			Linux:   &specs.Linux{},
		}
	}
	opts := RestoreOptions{Bundle: bundle}
	label := func(labels []string) string {
		for _, l := range labels {
			if v, ok := strings.CutPrefix(l, criuConfigAnnotation+"="); ok {
				return v
			}
		}
		return ""
	}

	plan, err := planRestore(RestoreOptions{TCPClose: true}, nil, criuDirs{}, fakeDup)
	if err != nil {
		t.Fatal(err)
	}
	config, conf, err := rt.libcontainerConfig("c1", spec(), opts, plan)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(rt.Root, "c1", "runcr-criu.conf")
	if conf == nil || conf.path != want || !reflect.DeepEqual(conf.extra, []string{"tcp-close"}) {
		t.Fatalf("configuration file %+v, want %s with tcp-close", conf, want)
	}
	if got := label(config.Labels); got != want {
		t.Errorf("label %s=%q, want %q", criuConfigAnnotation, got, want)
	}

	// Without configuration lines, nothing is written and the spec's own
	// annotation (or libcontainer's default) stays.
	plan, err = planRestore(RestoreOptions{}, nil, criuDirs{}, fakeDup)
	if err != nil {
		t.Fatal(err)
	}
	s := spec()
	s.Annotations = map[string]string{criuConfigAnnotation: "/etc/mine.conf"}
	config, conf, err = rt.libcontainerConfig("c2", s, opts, plan)
	if err != nil {
		t.Fatal(err)
	}
	if conf != nil || label(config.Labels) != "/etc/mine.conf" {
		t.Errorf("no lines gave file %+v and label %q", conf, label(config.Labels))
	}
}

// Restore's parent link is made from the plan: created when missing,
// kept when it agrees, refused when the dump left another.
func TestCriuPlanParentLink(t *testing.T) {
	base := t.TempDir()
	img := filepath.Join(base, "img")
	for _, d := range []string{img, filepath.Join(base, "pre"), filepath.Join(base, "other")} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	plan := func(parent string) *criuPlan {
		p, err := planRestore(RestoreOptions{ParentPath: parent}, nil, criuDirs{images: img}, fakeDup)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := plan("").linkParent(); err != nil {
		t.Fatalf("no parent: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(img, "parent")); !os.IsNotExist(err) {
		t.Fatalf("a link without --parent-path: %v", err)
	}
	for i := 0; i < 2; i++ { // made, then found as it should be
		if err := plan("../pre").linkParent(); err != nil {
			t.Fatal(err)
		}
		if got, err := os.Readlink(filepath.Join(img, "parent")); err != nil || got != "../pre" {
			t.Fatalf("parent link %q, %v; want ../pre", got, err)
		}
	}
	for _, bad := range []string{"../other", "../missing"} {
		if err := plan(bad).linkParent(); !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "--parent-path") {
			t.Errorf("parent %s: %v", bad, err)
		}
	}
}
