package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/runcr/runcr/libcheckpoint"
)

// lxcParse runs an lxc-checkpoint command line through the real getopt
// rewriting and flag definitions, and converts it.
func lxcParse(t *testing.T, args ...string) (lxcInvocation, error) {
	t.Helper()
	canon, err := lxcCanonical(args, lxcFlags())
	if err != nil {
		return lxcInvocation{}, err
	}
	var inv lxcInvocation
	var convErr error
	app := lxcApp(nil, &bytes.Buffer{}, &bytes.Buffer{})
	app.Action = func(c *cli.Context) error { inv, convErr = lxcOptions(c); return nil }
	if err := app.Run(append([]string{lxcName}, canon...)); err != nil {
		t.Fatalf("lxc-checkpoint %q: %v", args, err)
	}
	return inv, convErr
}

func TestLxcDispatch(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{[]string{"/usr/sbin/lxc-checkpoint", "-n", "c"}, []string{"/usr/sbin/lxc-checkpoint", "lxc-checkpoint", "-n", "c"}},
		{[]string{"lxc-checkpoint"}, []string{"lxc-checkpoint", "lxc-checkpoint"}},
		{[]string{"runcr", "lxc-checkpoint", "-n", "c"}, []string{"runcr", "lxc-checkpoint", "-n", "c"}},
		{[]string{"/bin/runcr", "checkpoint", "c"}, []string{"/bin/runcr", "checkpoint", "c"}},
	} {
		if got := lxcDispatch(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("lxcDispatch(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// What glibc's getopt_long makes of lxc-checkpoint's option string.
func TestLxcCanonical(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"-rF -n ct -D dir", "--restore --foreground --name=ct --checkpoint-dir=dir --"},
		{"-rFnct -Ddir", "--restore --foreground --name=ct --checkpoint-dir=dir --"},
		{"-sv -D -r", "--stop --verbose --checkpoint-dir=-r --"},
		{"ct -D dir -s", "--checkpoint-dir=dir --stop -- ct"},
		{"--checkpoint-dir dir --name=ct --rest --fore", "--checkpoint-dir=dir --name=ct --restore --foreground --"},
		{"--check=dir --pre- -n ct", "--checkpoint-dir=dir --pre-dump --name=ct --"},
		{"-n=ct -D d", "--name==ct --checkpoint-dir=d --"},
		{"-D d -- -r", "--checkpoint-dir=d -- -r"},
		{
			"-? -h --help --usage --version -q -P /p -o f -l INFO --rcfile /b/config.json --predump-dir p",
			"--help --help --help --usage --version --quiet --lxcpath=/p --logfile=f --logpriority=INFO --rcfile=/b/config.json --predump-dir=p --",
		},
		{"- -D d", "--checkpoint-dir=d -- -"},
	} {
		got, err := lxcCanonical(strings.Fields(tc.in), lxcFlags())
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if g := strings.Join(got, " "); g != tc.want {
			t.Errorf("%q:\n got  %s\n want %s", tc.in, g, tc.want)
		}
	}
}

func TestLxcCanonicalRefuses(t *testing.T) {
	for _, tc := range []struct{ in, names string }{
		{"-x", "-x:"},
		{"-rx", "-x:"},
		{"--bogus", "--bogus:"},
		{"--p", "ambiguous"},
		{"--pre", "ambiguous"},
		{"-D", "-D: needs a value"},
		{"-n ct -rD", "-D: needs a value"},
		{"--name", "--name: needs a value"},
		{"--stop=yes", "--stop: takes no value"},
		{"-A script", "-A"},
		{"-P /a --lxcpath=/b", "-P: given twice"},
		{"--action-script=s", "--action-script"},
	} {
		_, err := lxcCanonical(strings.Fields(tc.in), lxcFlags())
		if err == nil || !strings.Contains(err.Error(), tc.names) || !errors.Is(err, libcheckpoint.ErrInvalidOption) {
			t.Errorf("%q: got %v, want an invalid-option error containing %q", tc.in, err, tc.names)
		}
	}
}

func TestLxcCheckpointOptions(t *testing.T) {
	inv, err := lxcParse(t, "-n", "ct", "-D", "/img")
	if err != nil {
		t.Fatal(err)
	}
	want := libcheckpoint.NewCheckpointOptions()
	want.ImagePath = "/img"
	want.LeaveRunning = true // lxc: the container runs on unless -s
	if inv.ID != "ct" || inv.Restore || !reflect.DeepEqual(inv.Checkpoint, want) || inv.RestoreOpts.ImagePath != "" {
		t.Errorf("got %+v, want checkpoint of ct with %+v", inv, want)
	}

	inv, err = lxcParse(t, "-svq", "-Dimg", "--predump-dir", "../pre", "-P", "/state/", "-o", "/log", "-l", "trace", "ct")
	if err != nil {
		t.Fatal(err)
	}
	want = libcheckpoint.NewCheckpointOptions()
	want.ImagePath = "img"
	want.ParentPath = "../pre"
	if !reflect.DeepEqual(inv.Checkpoint, want) {
		t.Errorf("-s: got %+v, want %+v", inv.Checkpoint, want)
	}
	trace := logrus.TraceLevel
	wantInv := lxcInvocation{ID: "ct", Checkpoint: want, Root: "/state", LogFile: "/log", LogLevel: &trace, Quiet: true, Verbose: true}
	if !reflect.DeepEqual(inv, wantInv) {
		t.Errorf("got  %+v\nwant %+v", inv, wantInv)
	}

	inv, err = lxcParse(t, "-p", "-n", "ct", "-D", "/img")
	if err != nil {
		t.Fatal(err)
	}
	if !inv.Checkpoint.PreDump || !inv.Checkpoint.LeaveRunning {
		t.Errorf("-p: %+v", inv.Checkpoint)
	}
}

func TestLxcRestoreOptions(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want libcheckpoint.RestoreOptions
	}{
		{
			[]string{"-r", "-n", "ct", "-D", "/img"},
			libcheckpoint.RestoreOptions{CommonOptions: libcheckpoint.CommonOptions{ImagePath: "/img"}, Detach: true},
		},
		{
			[]string{"-rd", "-n", "ct", "-D", "/img"},
			libcheckpoint.RestoreOptions{CommonOptions: libcheckpoint.CommonOptions{ImagePath: "/img"}, Detach: true},
		},
		{
			[]string{"-rF", "-n", "ct", "-D", "/img", "--rcfile", "/srv/b/config.json"},
			libcheckpoint.RestoreOptions{CommonOptions: libcheckpoint.CommonOptions{ImagePath: "/img"}, Bundle: "/srv/b"},
		},
		{
			[]string{"--restore", "--foreground", "--name=ct", "--checkpoint-dir=img", "--predump-dir=../pre", "--rcfile=config.json"},
			libcheckpoint.RestoreOptions{CommonOptions: libcheckpoint.CommonOptions{ImagePath: "img"}, Bundle: ".", ParentPath: "../pre"},
		},
	} {
		inv, err := lxcParse(t, tc.args...)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if !inv.Restore || inv.ID != "ct" || !reflect.DeepEqual(inv.RestoreOpts, tc.want) {
			t.Errorf("%q:\n got  %+v\n want %+v", tc.args, inv.RestoreOpts, tc.want)
		}
		if !reflect.DeepEqual(inv.Checkpoint, libcheckpoint.CheckpointOptions{}) {
			t.Errorf("%q: checkpoint options set on a restore: %+v", tc.args, inv.Checkpoint)
		}
	}
}

func TestLxcLogPriorities(t *testing.T) {
	for name, want := range map[string]logrus.Level{
		"TRACE": logrus.TraceLevel, "debug": logrus.DebugLevel, "Info": logrus.InfoLevel,
		"NOTICE": logrus.InfoLevel, "WARN": logrus.WarnLevel, "ERROR": logrus.ErrorLevel,
		"CRIT": logrus.ErrorLevel, "ALERT": logrus.ErrorLevel, "fatal": logrus.ErrorLevel,
	} {
		inv, err := lxcParse(t, "-n", "ct", "-D", "d", "-l", name)
		if err != nil || inv.LogLevel == nil || *inv.LogLevel != want {
			t.Errorf("-l %s: got %v, %v; want %v", name, inv.LogLevel, err, want)
		}
	}
	inv, err := lxcParse(t, "-n", "ct", "-D", "d")
	if err != nil || inv.LogLevel != nil {
		t.Errorf("without -l the level must stay runcr's: %v, %v", inv.LogLevel, err)
	}
}

// Each of lxc-checkpoint's rules is refused with an error naming the option.
func TestLxcRules(t *testing.T) {
	for _, tc := range []struct {
		args  string
		names string
	}{
		{"-D d", "-n: no container name"},
		{"-D d -n ct other", "-n: unexpected argument"},
		{"-D d ct other", "-n: unexpected argument"},
		{"-n ct", "-D: is required"},
		{"ct", "-D: is required"},
		{"-r -s -n ct -D d", "-s: can't be used with -r"},
		{"-rs -n ct -D d", "-s: can't be used with -r"},
		{"-r -p -n ct -D d", "-p: can't be used with -r"},
		{"-s -p -n ct -D d", "-s: can't be used with -p"},
		{"-d -n ct -D d", "-d/-F: only apply to a restore"},
		{"-F -n ct -D d", "-d/-F: only apply to a restore"},
		{"-r -d -F -n ct -D d", "-d/-F: give one"},
		{"-rdF -n ct -D d", "-d/-F: give one"},
		{"--rcfile /b/config.json -n ct -D d", "--rcfile: only applies to a restore"},
		{"-r --rcfile /b/spec.json -n ct -D d", "--rcfile: \"/b/spec.json\" is not a config.json"},
		{"-l LOUD -n ct -D d", "-l: unknown log priority \"LOUD\""},
		{"-P / -n ct -D d", "-P: \"/\" must name a directory"},
	} {
		_, err := lxcParse(t, strings.Fields(tc.args)...)
		if err == nil || !strings.Contains(err.Error(), tc.names) || !errors.Is(err, libcheckpoint.ErrInvalidOption) {
			t.Errorf("%q: got %v, want an invalid-option error containing %q", tc.args, err, tc.names)
		}
	}
}

func TestLxcBundleFromManifest(t *testing.T) {
	dir := t.TempDir()
	if _, err := lxcBundle(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "-D: ") {
		t.Errorf("missing directory: got %v, want an error naming -D", err)
	}
	if _, err := lxcBundle(dir); err == nil || !strings.Contains(err.Error(), "--rcfile") {
		t.Errorf("images without a manifest: got %v, want an error asking for --rcfile", err)
	}
	manifest := func(body string) {
		if err := os.WriteFile(filepath.Join(dir, libcheckpoint.ManifestFile), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	manifest(`{"version": 1, "state": "complete", "container_id": "ct", "bundle": "/srv/bundle"}`)
	// The working directory has no say, even when it is a bundle.
	cwd := t.TempDir()
	if err := os.WriteFile(filepath.Join(cwd, "config.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(cwd)
	if got, err := lxcBundle(dir); err != nil || got != "/srv/bundle" {
		t.Errorf("lxcBundle = %q, %v; want /srv/bundle", got, err)
	}
	manifest(`{"version": 1, "state": "complete", "container_id": "ct"}`)
	if _, err := lxcBundle(dir); err == nil || !strings.Contains(err.Error(), "--rcfile") {
		t.Errorf("manifest without a bundle: got %v", err)
	}
	manifest(`not json`)
	if _, err := lxcBundle(dir); err == nil || !strings.HasPrefix(strings.TrimPrefix(err.Error(), "invalid option: "), "-D:") {
		t.Errorf("bad manifest: got %v, want an error naming -D", err)
	}
}

func TestLxcErrorNamesLxcOptions(t *testing.T) {
	base := fmt.Errorf("restore: %w", &libcheckpoint.OptionError{Option: "--image-path", Msg: "/x holds no checkpoint; give the directory `runcr checkpoint --image-path` wrote"})
	err := lxcError(base)
	if want := "restore: invalid option: -D: /x holds no checkpoint; give the directory `runcr checkpoint --image-path` wrote"; err.Error() != want {
		t.Errorf("got %q\nwant %q", err, want)
	}
	if !errors.Is(err, libcheckpoint.ErrInvalidOption) {
		t.Error("the reworded error lost its sentinel")
	}
	err = lxcError(&libcheckpoint.OptionError{Option: "--bundle", Msg: "/b/config.json: no such file"})
	if !strings.Contains(err.Error(), ": --rcfile: /b/config.json") {
		t.Errorf("got %q", err)
	}
	err = lxcError(fmt.Errorf("%w: \"ct\" under --root /r; restore under another id", libcheckpoint.ErrContainerExists))
	if !strings.Contains(err.Error(), "under -P /r") || !errors.Is(err, libcheckpoint.ErrContainerExists) {
		t.Errorf("got %q", err)
	}
	other := errors.New("criu failed")
	if lxcError(other) != other || lxcError(nil) != nil { //nolint:errorlint // the very error, not one wrapping it
		t.Error("errors that name no option must pass unchanged")
	}
}

// -h, --usage and --version print and succeed; help and usage go to
// stderr and the version to stdout, as lxc's tools do.
func TestLxcHelpUsageVersion(t *testing.T) {
	for _, tc := range []struct {
		arg, stream, want string
	}{
		{"-h", "stderr", "-D, --checkpoint-dir=DIR"},
		{"-?", "stderr", "-D, --checkpoint-dir=DIR"},
		{"--help", "stderr", "--rcfile=FILE"},
		{"--usage", "stderr", "[-r|--restore]"},
		{"--version", "stdout", "runcr version " + version},
	} {
		var stdout, stderr bytes.Buffer
		if err := lxcRun(nil, []string{tc.arg}, &stdout, &stderr); err != nil {
			t.Errorf("%s: %v", tc.arg, err)
			continue
		}
		got := map[string]string{"stdout": stdout.String(), "stderr": stderr.String()}
		if !strings.Contains(got[tc.stream], tc.want) {
			t.Errorf("%s: %s = %q, want it to contain %q", tc.arg, tc.stream, got[tc.stream], tc.want)
		}
		for s, out := range got {
			if s != tc.stream && out != "" {
				t.Errorf("%s: unexpected %s %q", tc.arg, s, out)
			}
		}
	}
}

// runcr's global flags reach the library through the dialect; -P replaces
// --root.
func TestLxcRuntime(t *testing.T) {
	for _, tc := range []struct {
		args []string
		root string
	}{
		{[]string{"--root", "/state", "--criu", "/opt/criu", "lxc-checkpoint", "-n", "ct", "-D", "d"}, "/state"},
		{[]string{"--root", "/state", "--criu", "/opt/criu", "lxc-checkpoint", "-n", "ct", "-D", "d", "-P", "/lxc"}, "/lxc"},
	} {
		var got *libcheckpoint.Runtime
		parse(t, tc.args, func(c *cli.Context) {
			canon, err := lxcCanonical(c.Args().Slice(), lxcFlags())
			if err != nil {
				t.Fatal(err)
			}
			app := lxcApp(c, &bytes.Buffer{}, &bytes.Buffer{})
			app.Action = func(lc *cli.Context) error {
				inv, err := lxcOptions(lc)
				if err != nil {
					t.Fatal(err)
				}
				got = lxcRuntime(c, inv)
				return nil
			}
			if err := app.Run(append([]string{lxcName}, canon...)); err != nil {
				t.Fatal(err)
			}
		})
		want := &libcheckpoint.Runtime{Root: tc.root, CriuPath: "/opt/criu", Version: version}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q: got %+v, want %+v", tc.args, got, want)
		}
	}
}
