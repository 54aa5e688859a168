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
