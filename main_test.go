package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/runcr/runcr/libcheckpoint"
)

// parse runs the real command definitions over args and hands the parsed
// context to fn instead of the command's action.
func parse(t *testing.T, args []string, fn func(c *cli.Context)) {
	t.Helper()
	app := newApp()
	for _, cmd := range app.Commands {
		cmd.Action = func(c *cli.Context) error { fn(c); return nil }
	}
	app.Before = nil
	if err := app.Run(append([]string{"runcr"}, args...)); err != nil {
		t.Fatalf("runcr %v: %v", args, err)
	}
}

func TestCheckpointFlagsToOptions(t *testing.T) {
	var got libcheckpoint.CheckpointOptions
	parse(t, []string{
		"checkpoint",
		"--image-path", "/img", "--work-path=/work", "--parent-path", "../parent",
		"--leave-running", "--tcp-established", "--tcp-skip-in-flight", "--link-remap",
		"--ext-unix-sk", "--shell-job", "--lazy-pages", "--status-fd", "7",
		"--page-server", "10.0.0.1:27", "--file-locks", "--pre-dump",
		"--manage-cgroups-mode", "strict", "--empty-ns", "network", "--auto-dedup",
		"--export", "/out/ct.tar.zst", "--compress", "gzip", "ctr",
	}, func(c *cli.Context) { got = checkpointOptions(c) })
	want := libcheckpoint.CheckpointOptions{
		CommonOptions: libcheckpoint.CommonOptions{
			ImagePath: "/img", WorkPath: "/work", TCPEstablished: true, ExtUnixSockets: true,
			ShellJob: true, FileLocks: true, ManageCgroupsMode: "strict",
			EmptyNamespaces: []string{"network"}, AutoDedup: true, LazyPages: true,
		},
		ParentPath: "../parent", LeaveRunning: true, TCPSkipInFlight: true, LinkRemap: true,
		StatusFD: 7, PageServer: "10.0.0.1:27", PreDump: true,
		Export: "/out/ct.tar.zst", Compress: libcheckpoint.CompressGzip,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestCheckpointDefaults(t *testing.T) {
	var got libcheckpoint.CheckpointOptions
	parse(t, []string{"checkpoint", "ctr"}, func(c *cli.Context) { got = checkpointOptions(c) })
	if want := libcheckpoint.NewCheckpointOptions(); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestRestoreFlagsToOptions(t *testing.T) {
	var got libcheckpoint.RestoreOptions
	parse(t, []string{
		"restore",
		"--console-socket", "/sock", "--image-path", "/img", "--work-path", "/work",
		"--tcp-established", "--ext-unix-sk", "--shell-job", "--file-locks",
		"--manage-cgroups-mode", "ignore", "-b", "/bundle", "-d", "--pid-file", "/pid",
		"--no-subreaper", "--no-pivot", "--empty-ns", "network", "--auto-dedup", "--lazy-pages",
		"--lsm-profile", "apparmor:p", "--lsm-mount-context", "ctx",
		"--tcp-close", "--no-new-keyring", "--parent-path", "../pre", "--preserve-fds", "2",
		"--import", "/in/ct.tar.zst", "ctr",
	}, func(c *cli.Context) { got = restoreOptions(c) })
	want := libcheckpoint.RestoreOptions{
		CommonOptions: libcheckpoint.CommonOptions{
			ImagePath: "/img", WorkPath: "/work", TCPEstablished: true, ExtUnixSockets: true,
			ShellJob: true, FileLocks: true, ManageCgroupsMode: "ignore",
			EmptyNamespaces: []string{"network"}, AutoDedup: true, LazyPages: true,
		},
		Bundle: "/bundle", Detach: true, PidFile: "/pid", ConsoleSocket: "/sock",
		NoSubreaper: true, NoPivot: true, LSMProfile: "apparmor:p", LSMMountContext: "ctx",
		TCPClose: true, NoNewKeyring: true, ParentPath: "../pre", PreserveFDs: 2,
		Import: "/in/ct.tar.zst",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestPrintStatsFlags(t *testing.T) {
	for _, cmd := range []string{"checkpoint", "restore"} {
		for _, tc := range []struct {
			args []string
			want statsOutput
		}{
			{nil, statsOutput{}},
			{[]string{"--print-stats"}, statsOutput{print: true}},
			{[]string{"--print-stats", "--format", "text"}, statsOutput{print: true}},
			{[]string{"--print-stats", "--format=json"}, statsOutput{print: true, json: true}},
		} {
			var got statsOutput
			var err error
			parse(t, append(append([]string{cmd}, tc.args...), "ctr"), func(c *cli.Context) { got, err = statsOutputFrom(c) })
			if err != nil || got != tc.want {
				t.Errorf("%s %q: got %+v, %v; want %+v", cmd, tc.args, got, err, tc.want)
			}
		}
		for _, args := range [][]string{{"--print-stats", "--format", "xml"}, {"--format", "json"}} {
			var err error
			parse(t, append(append([]string{cmd}, args...), "ctr"), func(c *cli.Context) { _, err = statsOutputFrom(c) })
			if err == nil || !strings.HasPrefix(err.Error(), "--format: ") {
				t.Errorf("%s %q: error %v, want one naming --format", cmd, args, err)
			}
		}
	}
}

func TestGlobalFlagsToRuntime(t *testing.T) {
	var got *libcheckpoint.Runtime
	parse(t, []string{"--root", "/state", "--systemd-cgroup", "--rootless", "false", "--criu", "/opt/criu", "checkpoint", "x"},
		func(c *cli.Context) { got = runtimeFrom(c) })
	rootless := false
	want := &libcheckpoint.Runtime{Root: "/state", SystemdCgroup: true, Rootless: &rootless, CriuPath: "/opt/criu", Version: version}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestStripCriuFlag(t *testing.T) {
	tests := []struct{ in, want []string }{
		{[]string{"--criu", "/x/criu", "run", "id"}, []string{"run", "id"}},
		{[]string{"--criu=/x/criu", "--root", "/r", "exec", "id", "--criu", "keep"}, []string{"--root", "/r", "exec", "id", "--criu", "keep"}},
		{[]string{"--root", "/r", "-criu", "c", "--debug", "state", "id"}, []string{"--root", "/r", "--debug", "state", "id"}},
		{[]string{"--criu-timeout", "1m", "--criu=/c", "--criu-timeout=2s", "delete", "--criu-timeout", "9"}, []string{"delete", "--criu-timeout", "9"}},
		{[]string{"--log", "f", "--log-format", "json", "kill", "id", "9"}, []string{"--log", "f", "--log-format", "json", "kill", "id", "9"}},
	}
	for _, tc := range tests {
		if got := stripCriuFlag(tc.in, newApp().Flags); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("stripCriuFlag(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestFindRuncSkipsSelf(t *testing.T) {
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// A "runc" that is really this binary must be skipped.
	selfDir := filepath.Join(dir, "self")
	otherDir := filepath.Join(dir, "other")
	for _, d := range []string{selfDir, otherDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(self, filepath.Join(selfDir, "runc")); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(otherDir, "runc")
	if err := os.WriteFile(other, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RUNCR_RUNC", "")
	t.Setenv("PATH", selfDir+":"+otherDir)
	if got, err := findRunc(); err != nil || got != other {
		t.Errorf("findRunc() = %q, %v; want %q", got, err, other)
	}
	t.Setenv("PATH", selfDir)
	if _, err := findRunc(); err == nil {
		t.Error("findRunc() found runcr itself")
	}
	t.Setenv("RUNCR_RUNC", other)
	if got, err := findRunc(); err != nil || got != other {
		t.Errorf("with RUNCR_RUNC: findRunc() = %q, %v", got, err)
	}
}

// TestManPagesNameEveryFlag fails when a flag is missing from its page.
func TestManPagesNameEveryFlag(t *testing.T) {
	app := newApp()
	check := func(page string, flags []cli.Flag) {
		data, err := os.ReadFile(filepath.Join("man", page))
		if err != nil {
			t.Fatalf("man page: %v", err)
		}
		for _, f := range flags {
			for _, name := range f.Names() {
				dash := "--"
				if len(name) == 1 {
					dash = "-"
				}
				// The name must end there: **-?** for -?, not **--stop-x** for --stop.
				re := regexp.MustCompile(`\*\*` + regexp.QuoteMeta(dash+name) + `(?:[^\w-]|$)`)
				if !re.Match(data) {
					t.Errorf("man/%s does not document %s%s", page, dash, name)
				}
			}
		}
	}
	check("runcr.8.md", app.Flags)
	check("runcr-lxc-checkpoint.8.md", lxcFlags())
	for _, cmd := range app.Commands {
		if cmd.Name == "checkpoint" || cmd.Name == "restore" || cmd.Name == "inspect" || cmd.Name == "diff" || cmd.Name == "show" {
			check("runcr-"+cmd.Name+".8.md", cmd.Flags)
		}
	}
}

// CRI-O isn't packaged for bookworm; these feed runcr the argv its
// internal/oci/runtime_oci.go builds (checkpoint: the runtime directly;
// restore: through conmon with --runtime-arg --root=R).
func TestCRIOCheckpointArgv(t *testing.T) {
	var opts libcheckpoint.CheckpointOptions
	var rt *libcheckpoint.Runtime
	parse(t, []string{
		"--root", "/run/runc-crio", "--systemd-cgroup", "checkpoint", "--file-locks",
		"--image-path", "/var/lib/ckpt/c1", "--work-path", "/var/lib/containers/c1", "--leave-running", "c1",
	},
		func(c *cli.Context) { opts, rt = checkpointOptions(c), runtimeFrom(c) })
	want := libcheckpoint.NewCheckpointOptions()
	want.FileLocks = true
	want.ImagePath = "/var/lib/ckpt/c1"
	want.WorkPath = "/var/lib/containers/c1"
	want.LeaveRunning = true
	if !reflect.DeepEqual(opts, want) {
		t.Errorf("options: got %+v, want %+v", opts, want)
	}
	if rt.Root != "/run/runc-crio" || !rt.SystemdCgroup {
		t.Errorf("runtime: %+v", rt)
	}
}

func TestCRIORestoreArgv(t *testing.T) {
	var opts libcheckpoint.RestoreOptions
	var rt *libcheckpoint.Runtime
	parse(t, []string{
		"--root=/run/runc-crio", "restore", "--bundle", "/b", "--pid-file", "/b/pidfile", "--detach",
		"--image-path", "/var/lib/ckpt/c1", "--work-path", "/b",
		"--lsm-profile=selinux:system_u:system_r:container_t:s0", "--lsm-mount-context=system_u:object_r:container_file_t:s0", "c1",
	},
		func(c *cli.Context) { opts, rt = restoreOptions(c), runtimeFrom(c) })
	want := libcheckpoint.RestoreOptions{
		CommonOptions: libcheckpoint.CommonOptions{ImagePath: "/var/lib/ckpt/c1", WorkPath: "/b"},
		Bundle:        "/b", PidFile: "/b/pidfile", Detach: true,
		LSMProfile:      "selinux:system_u:system_r:container_t:s0",
		LSMMountContext: "system_u:object_r:container_file_t:s0",
	}
	if !reflect.DeepEqual(opts, want) {
		t.Errorf("options: got %+v\nwant %+v", opts, want)
	}
	if rt.Root != "/run/runc-crio" {
		t.Errorf("root: %q", rt.Root)
	}
	if err := opts.Validate(); err != nil {
		t.Errorf("CRI-O's restore options refused: %v", err)
	}
}

// Engines' argv quirks: containerd's single-dash long flags and Podman's
// repeated --leave-running.
func TestEngineFlagForms(t *testing.T) {
	var r libcheckpoint.RestoreOptions
	parse(t, []string{"restore", "--image-path", "/i", "--work-path", "/w", "--detach", "--pid-file", "/p", "-no-subreaper", "--bundle", "/b", "id"},
		func(c *cli.Context) { r = restoreOptions(c) })
	if !r.NoSubreaper || !r.Detach || r.Bundle != "/b" {
		t.Errorf("containerd restore argv: %+v", r)
	}
	var cp libcheckpoint.CheckpointOptions
	parse(t, []string{"checkpoint", "--image-path", "/i", "--work-path", "/w", "--leave-running", "--leave-running", "--tcp-established", "id"},
		func(c *cli.Context) { cp = checkpointOptions(c) })
	if !cp.LeaveRunning || !cp.TCPEstablished {
		t.Errorf("Podman checkpoint argv: %+v", cp)
	}
}
