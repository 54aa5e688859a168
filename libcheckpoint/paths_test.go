package libcheckpoint

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/runc/libcontainer"
)

func TestPrepareCheckpointPaths(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "img", "pre"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "img", "notdir"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name, flag string
		opts       CheckpointOptions
	}{
		{"image path is a file", "--image-path", CheckpointOptions{CommonOptions: CommonOptions{ImagePath: file}}},
		{"image path under a file", "--image-path", CheckpointOptions{CommonOptions: CommonOptions{ImagePath: filepath.Join(file, "x")}}},
		{"work path is a file", "--work-path", CheckpointOptions{CommonOptions: CommonOptions{ImagePath: filepath.Join(dir, "i1"), WorkPath: file}}},
		{"parent missing", "--parent-path", CheckpointOptions{CommonOptions: CommonOptions{ImagePath: filepath.Join(dir, "img")}, ParentPath: "missing"}},
		{"parent not a dir", "--parent-path", CheckpointOptions{CommonOptions: CommonOptions{ImagePath: filepath.Join(dir, "img")}, ParentPath: "notdir"}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			err := prepareCheckpointPaths(&tc.opts, &libcontainer.CriuOpts{})
			if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), tc.flag) {
				t.Fatalf("got %v, want ErrInvalidOption naming %s", err, tc.flag)
			}
		})
	}

	opts := CheckpointOptions{CommonOptions: CommonOptions{ImagePath: filepath.Join(dir, "img"), WorkPath: filepath.Join(dir, "new", "work")}, ParentPath: "pre"}
	var c libcontainer.CriuOpts
	if err := prepareCheckpointPaths(&opts, &c); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(c.WorkDirectory)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("work dir %s: %v, mode %v; want a private 0700 dir", c.WorkDirectory, err, fi.Mode())
	}

	t.Chdir(dir)
	var def libcontainer.CriuOpts
	if err := prepareCheckpointPaths(&CheckpointOptions{}, &def); err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "checkpoint"); def.ImagesDirectory != want {
		t.Errorf("default image path %q, want %q", def.ImagesDirectory, want)
	}
}

func TestCheckWritableFD(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if err := checkWritableFD(int(w.Fd())); err != nil {
		t.Errorf("write end: %v", err)
	}
	if err := checkWritableFD(int(r.Fd())); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("read end: %v, want ErrInvalidOption", err)
	}
	if err := checkWritableFD(999); !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "--status-fd") {
		t.Errorf("closed fd: %v", err)
	}
}

func TestCRIUFailureHints(t *testing.T) {
	tests := []struct{ log, want, cause string }{
		{"(00.1) Error (criu/files-reg.c:1787): Can't lookup mount=27 for fd=1 path=/tmp/out\n", "outside the container", ""},
		{"(00.1) Error (criu/sk-inet.c:199): inet: Connected TCP socket, consider using --tcp-established option.\n", "--tcp-established", ""},
		{"(00.1) Error (criu/sk-unix.c:1): unix: External socket is used. Consider using --ext-unix-sk option.\n", "--ext-unix-sk", ""},
		{"(00.1) Error (criu/util.c:1): execvp(\"iptables-restore\", ...) failed: No such file or directory\n", "iptables", ""},
		{"(00.1) Can't connect to server 127.0.0.1:1\n(00.2) Error (compel/src/lib/infect.c:418): Unable to detach from 5506: No such process\n", "--page-server", "Can't connect to server 127.0.0.1:1"},
		{"(00.1) Error (criu/util.c:1533): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted\n(00.2) Error (criu/a.c:1): the real one\n", "", "the real one"},
		{"(00.1) Warn  (criu/x.c:1): something harmless\n(00.2) Error (criu/y.c:2): nothing we know\n", "", ""},
	}
	dir := t.TempDir()
	for i, tc := range tests {
		path := filepath.Join(dir, "dump.log")
		if err := os.WriteFile(path, []byte(tc.log), 0o600); err != nil {
			t.Fatal(err)
		}
		err := criuFailure("checkpoint", errors.New("criu failed: type DUMP errno 0"), path)
		var ce *CRIUError
		if !errors.As(err, &ce) || !errors.Is(err, ErrCRIU) {
			t.Fatalf("%d: %v is not a CRIUError", i, err)
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("%d: %q does not name the log", i, err)
		}
		if tc.cause != "" && !strings.Contains(ce.Cause, tc.cause) {
			t.Errorf("%d: cause %q, want one containing %q", i, ce.Cause, tc.cause)
		}
		if tc.cause == "" && !strings.Contains(ce.Cause, "Error (") {
			t.Errorf("%d: cause %q is not CRIU's error line", i, ce.Cause)
		}
		if tc.want == "" && ce.Hint != "" || !strings.Contains(ce.Hint, tc.want) {
			t.Errorf("%d: hint %q, want one containing %q", i, ce.Hint, tc.want)
		}
	}
	err := criuFailure("checkpoint", errors.Join(libcontainer.ErrCriuMissingFeatures, errors.New("[MemTrack]")), "")
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "mem_dirty_track") {
		t.Errorf("missing feature: %v", err)
	}
}

// The image and work paths hold the container's memory: a link someone
// else could have planted at them is never followed, and an existing
// directory must be the caller's own and not writable by others.
func TestMakePrivateDirRefusesUnsafeDirs(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	// A link in a directory anyone may write and that isn't sticky: anyone
	// could have put it there, or swap it.
	open := mkdirMode(t, filepath.Join(dir, "open"), 0o777)
	openLink := filepath.Join(open, "img")
	if err := os.Symlink(target, openLink); err != nil {
		t.Fatal(err)
	}
	// A dangling link of our own: never created through.
	dangling := filepath.Join(dir, "dangling")
	if err := os.Symlink(filepath.Join(dir, "nowhere"), dangling); err != nil {
		t.Fatal(err)
	}
	shared := mkdirMode(t, filepath.Join(dir, "shared"), 0o777)
	group := mkdirMode(t, filepath.Join(dir, "group"), 0o770)
	tests := []struct{ name, path, want string }{
		{"link in a directory others may write", openLink, "writable by others"},
		{"dangling link", dangling, "leads nowhere"},
		{"group and others may write", shared, "writable by its group or others"},
		{"group may write", group, "writable by its group or others"},
	}
	// As root: what another user would plant in /tmp (sticky, 1777), a link
	// of theirs, and a directory of theirs. Else a directory root owns.
	if os.Geteuid() == 0 {
		sticky := filepath.Join(dir, "tmp")
		if err := os.Mkdir(sticky, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(sticky, os.ModeSticky|0o777); err != nil {
			t.Fatal(err)
		}
		planted := filepath.Join(sticky, "img")
		if err := os.Symlink(target, planted); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(planted, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		other := filepath.Join(dir, "other")
		if err := os.Mkdir(other, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		tests = append(tests,
			struct{ name, path, want string }{"link planted by another uid in a sticky dir", planted, "owned by uid 65534"},
			struct{ name, path, want string }{"owned by another uid", other, "owned by uid"})
	} else {
		tests = append(tests, struct{ name, path, want string }{"owned by another uid", "/", "owned by uid"})
	}
	for _, flag := range []string{"image-path", "work-path"} {
		for _, tc := range tests {
			t.Run(flag+"/"+tc.name, func(t *testing.T) {
				_, err := makePrivateDir(flag, tc.path)
				if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "--"+flag) ||
					!strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got %v, want ErrInvalidOption naming --%s, %s and %q", err, flag, tc.path, tc.want)
				}
			})
		}
	}
	// Nothing was made through the links.
	if _, err := os.Lstat(filepath.Join(dir, "nowhere")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dangling link's target was created: %v", err)
	}
	if entries, _ := os.ReadDir(target); len(entries) != 0 {
		t.Errorf("something was written through the link: %v", entries)
	}

	// The same through the callers, with what they say to do.
	err := prepareCheckpointPaths(&CheckpointOptions{CommonOptions: CommonOptions{ImagePath: openLink}}, &libcontainer.CriuOpts{})
	if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "--image-path") || !strings.Contains(err.Error(), "give the real directory") {
		t.Errorf("checkpoint to a planted image path link: %v", err)
	}
	if _, err := privateWorkDir(openLink); !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "--work-path") {
		t.Errorf("planted work path link: %v", err)
	}
}

func TestMakePrivateDirAccepts(t *testing.T) {
	dir := t.TempDir()
	// New directories, parents included, are private whatever the umask.
	fresh := filepath.Join(dir, "a", "b")
	if got, err := makePrivateDir("image-path", fresh); err != nil || got != fresh {
		t.Fatalf("got %q, %v; want %q", got, err, fresh)
	}
	for _, d := range []string{filepath.Join(dir, "a"), fresh} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, mode %v; want 0700", d, err, fi.Mode().Perm())
		}
	}
	// An existing one of ours that others may only read is fine, and is
	// used again (a second checkpoint into it).
	readable := filepath.Join(dir, "readable")
	if err := os.Mkdir(readable, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := makePrivateDir("image-path", readable); err != nil {
		t.Errorf("an existing 0755 directory of ours: %v", err)
	}
	if _, err := makePrivateDir("image-path", fresh); err != nil {
		t.Errorf("the same directory again: %v", err)
	}
	// Links in the parent components are followed like in any path.
	if err := os.Symlink(filepath.Join(dir, "a"), filepath.Join(dir, "alias")); err != nil {
		t.Fatal(err)
	}
	if _, err := makePrivateDir("image-path", filepath.Join(dir, "alias", "c")); err != nil {
		t.Errorf("a link in a parent component: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "a", "c")); err != nil || !fi.IsDir() {
		t.Errorf("a/c not created through the parent link: %v", err)
	}
	// A link of our own in a directory only we (or root) may write, as
	// containerd keeps its bundle's work -> state link, is followed, and
	// the real directory is what CRIU gets; so is one of ours in a sticky
	// directory, where nobody else may replace it.
	real := filepath.Join(dir, "real")
	if err := os.Mkdir(real, 0o711); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "work")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	sticky := mkdirMode(t, filepath.Join(dir, "tmp"), os.ModeSticky|0o777)
	stickyLink := filepath.Join(sticky, "img")
	if err := os.Symlink(real, stickyLink); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{link, stickyLink} {
		got, err := makePrivateDir("work-path", l)
		if err != nil || got != real {
			t.Errorf("%s: got %q, %v; want the link's target %q", l, got, err, real)
		}
		if got, err := privateWorkDir(l); err != nil || got != real {
			t.Errorf("privateWorkDir(%s): got %q, %v; want %q", l, got, err, real)
		}
	}
}

func TestParentPathStaysNextToTheImage(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"ckpt/img", "ckpt/pre", "ckpt/img/sub", "elsewhere"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "ckpt", "img")
	for _, p := range []string{"../../elsewhere", "..", "../..", ".", "../img", "sub/../../../elsewhere"} {
		err := prepareCheckpointPaths(&CheckpointOptions{CommonOptions: CommonOptions{ImagePath: img}, ParentPath: p}, &libcontainer.CriuOpts{})
		if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "--parent-path") || !strings.Contains(err.Error(), "../") {
			t.Errorf("--parent-path %q: %v, want a refusal naming the flag and saying ../NAME", p, err)
		}
	}
	for _, p := range []string{"../pre", "sub"} {
		if err := prepareCheckpointPaths(&CheckpointOptions{CommonOptions: CommonOptions{ImagePath: img}, ParentPath: p}, &libcontainer.CriuOpts{}); err != nil {
			t.Errorf("--parent-path %q: %v", p, err)
		}
	}
}

// mkdirMode makes the directory path with exactly mode, whatever the umask.
func mkdirMode(t *testing.T, path string, mode os.FileMode) string {
	t.Helper()
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}
