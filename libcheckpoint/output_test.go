package libcheckpoint

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func isCharDevice(t *testing.T, path string) bool {
	t.Helper()
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func TestResolveOutput(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "regular")
	if err := os.WriteFile(regular, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustLink := func(target, name string) string {
		p := filepath.Join(dir, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	linkToRegular := mustLink(regular, "link-regular")
	linkToNull := mustLink("/dev/null", "link-null")
	dangling := mustLink(filepath.Join(dir, "nothing"), "dangling")
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, tc := range []struct {
		path, wantPath string
		through        bool
		refused        string
	}{
		{filepath.Join(dir, "new"), filepath.Join(dir, "new"), false, ""},
		{regular, regular, false, ""},
		{linkToRegular, regular, false, ""}, // the link stays, its file is replaced
		{"/dev/null", "/dev/null", true, ""},
		{linkToNull, linkToNull, true, ""},
		{fifo, fifo, true, ""},
		{dir, "", false, "is a directory"},
		{dangling, "", false, "symbolic link to nothing"},
		{sock, "", false, "is a socket"},
	} {
		got, err := resolveOutput("export", tc.path)
		if tc.refused != "" {
			if err == nil || !strings.Contains(err.Error(), tc.refused) || !strings.Contains(err.Error(), "--export") {
				t.Errorf("%s: want a refusal saying %q and naming --export, got %v", tc.path, tc.refused, err)
			}
			continue
		}
		if err != nil || got.Path != tc.wantPath || got.Through != tc.through {
			t.Errorf("%s: got %+v, %v; want path %s through %v", tc.path, got, err, tc.wantPath, tc.through)
		}
	}
}

// The device node /dev/null must survive an export to it (runcr renamed
// a temporary file over whatever --export named).
func TestExportThroughDevice(t *testing.T) {
	dir, config, _ := imageFixture(t)
	for _, target := range []string{"/dev/null", filepath.Join(t.TempDir(), "stdout-like")} {
		if target != "/dev/null" {
			if err := os.Symlink("/dev/null", target); err != nil {
				t.Fatal(err)
			}
		}
		opts := CheckpointOptions{Export: target, CommonOptions: CommonOptions{ImagePath: dir}}
		e, err := startExport(&opts)
		if err != nil {
			t.Fatal(err)
		}
		if e.tmp != nil {
			t.Fatalf("%s: a temporary file to rename over it", target)
		}
		if err := e.write(dir, config, CompressZstd, nil); err != nil {
			t.Fatal(err)
		}
		e.finish(nil)
		if !isCharDevice(t, "/dev/null") {
			t.Fatal("/dev/null is no longer a character device")
		}
		if fi, err := os.Lstat(target); err != nil || (target != "/dev/null" && fi.Mode()&os.ModeSymlink == 0) {
			t.Fatalf("%s was replaced: %v %v", target, fi, err)
		}
	}
	// /dev/full: the error names --export's target, nothing replaced.
	opts := CheckpointOptions{Export: "/dev/full", CommonOptions: CommonOptions{ImagePath: dir}}
	e, err := startExport(&opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.write(dir, config, CompressNone, nil); err == nil || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("export to /dev/full: %v", err)
	}
	e.finish(err)
	if !isCharDevice(t, "/dev/full") {
		t.Fatal("/dev/full is no longer a character device")
	}
}

// A FIFO is written through to its reader, and what arrives imports.
func TestExportThroughFIFOAndImportFromReader(t *testing.T) {
	dir, config, want := imageFixture(t)
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte)
	go func() {
		f, err := os.Open(fifo)
		if err != nil {
			got <- nil
			return
		}
		data, _ := io.ReadAll(f)
		f.Close()
		got <- data
	}()
	opts := CheckpointOptions{Export: fifo, CommonOptions: CommonOptions{ImagePath: dir}}
	e, err := startExport(&opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.write(dir, config, CompressZstd, nil); err != nil {
		t.Fatal(err)
	}
	e.finish(nil)
	archive := <-got
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("the FIFO was replaced: %v %v", fi, err)
	}
	target := filepath.Join(t.TempDir(), "imported")
	ropts := RestoreOptions{Import: "standard input", ImportFrom: bytes.NewReader(archive), CommonOptions: CommonOptions{ImagePath: target}}
	imp, err := importImages(&ropts)
	if err != nil {
		t.Fatal(err)
	}
	imp.finish(nil)
	data, err := os.ReadFile(filepath.Join(target, "pages-1.img"))
	if err != nil || !bytes.Equal(data, want["pages-1.img"]) {
		t.Fatalf("pages-1.img did not come through the FIFO intact: %v", err)
	}
}

func TestWritePidFileKeepsDevicesAndLinks(t *testing.T) {
	if err := writePidFile("/dev/null", 42); err != nil {
		t.Fatal(err)
	}
	if !isCharDevice(t, "/dev/null") {
		t.Fatal("/dev/null is no longer a character device")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "pid")
	link := filepath.Join(dir, "pid-link")
	if err := os.WriteFile(file, []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	if err := writePidFile(link, 4242); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v %v", fi, err)
	}
	if data, _ := os.ReadFile(file); string(data) != strconv.Itoa(4242) {
		t.Fatalf("pid file holds %q", data)
	}
}

func TestCheckCriuBinary(t *testing.T) {
	dir := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := script("good", `echo "Version: 4.2.1"`)
	if err := checkCriuBinary(context.Background(), good); err != nil {
		t.Fatalf("a binary answering as CRIU refused: %v", err)
	}
	notExec := filepath.Join(dir, "plain")
	if err := os.WriteFile(notExec, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, says string }{
		{filepath.Join(dir, "missing"), "no such file"},
		{dir, "is a directory"},
		{"/dev/null", "not a regular file"},
		{script("false", "exit 1"), "--version failed"},
		{script("true", "exit 0"), `no "Version:" line`},
	} {
		err := checkCriuBinary(context.Background(), tc.path)
		if err == nil || !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "--criu") ||
			!strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: want an error naming --criu, the path and %q; got %v", tc.path, tc.says, err)
		}
	}
	if os.Geteuid() != 0 {
		if err := checkCriuBinary(context.Background(), notExec); err == nil {
			t.Errorf("a non-executable file was accepted")
		}
	}
}
