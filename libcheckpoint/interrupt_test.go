package libcheckpoint

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// stopCriuConn ends runcr's connection to a running criu, as runcr's death
// would, and leaves the host program's own seqpacket sockets alone.
func TestStopCriuConn(t *testing.T) {
	criu, childPidFile := hangingCriu(t)
	toCriu, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	own, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range []int{toCriu[0], own[0], own[1]} {
		defer unix.Close(fd)
	}
	criuEnd := os.NewFile(uintptr(toCriu[1]), "criu-end")
	cmd := exec.Command(criu, "swrk", "3")
	cmd.ExtraFiles = []*os.File{criuEnd}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	criuEnd.Close()
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	child := readPid(t, childPidFile)
	defer func() { _ = unix.Kill(child, unix.SIGKILL) }()

	stopCriuConn(criu)()
	buf := make([]byte, 8)
	if n, err := unix.Read(toCriu[0], buf); n != 0 || err != nil {
		t.Fatalf("runcr's end of the CRIU connection read %d, %v; want EOF", n, err)
	}
	if _, err := unix.Write(own[1], []byte("x")); err != nil {
		t.Fatalf("the host program's own seqpacket socket was touched: %v", err)
	}
	if n, err := unix.Read(own[0], buf); n != 1 || err != nil {
		t.Fatalf("the host program's own socket read %d, %v; want 1 byte", n, err)
	}
}

// postDump: only a marker made after the guard started counts; after it
// the guard no longer stops CRIU.
func TestDumpGuardPostDump(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "checkpoint")
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(marker, old, old); err != nil {
		t.Fatal(err)
	}
	g := newDumpGuard(dir, "")
	if g.postDump() {
		t.Fatal("a marker left by an earlier dump counted as post-dump")
	}
	if !g.abort() {
		t.Fatal("before post-dump, abort does not stop CRIU")
	}
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if !g.postDump() {
		t.Fatal("a new marker did not count as post-dump")
	}
	if g.abort() {
		t.Fatal("after post-dump, abort still stops CRIU")
	}
}
