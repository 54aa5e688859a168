package libcheckpoint

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// shutdownCriuConn ends a seqpacket connection, as runcr's death would,
// and leaves other sockets alone.
func TestShutdownCriuConn(t *testing.T) {
	seq, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range []int{seq[0], seq[1], stream[0], stream[1]} {
		defer unix.Close(fd)
	}
	shutdownCriuConn()
	buf := make([]byte, 8)
	if n, err := unix.Read(seq[1], buf); n != 0 || err != nil {
		t.Fatalf("the peer of the seqpacket socket read %d, %v; want EOF", n, err)
	}
	if _, err := unix.Write(seq[1], []byte("x")); err != unix.EPIPE {
		t.Fatalf("writing to the shut connection: %v, want EPIPE", err)
	}
	if _, err := unix.Write(stream[1], []byte("x")); err != nil {
		t.Fatalf("the stream socket was touched: %v", err)
	}
}

// postDump: only a marker made after the guard started counts.
func TestInterruptGuardPostDump(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "checkpoint")
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(marker, old, old); err != nil {
		t.Fatal(err)
	}
	g := newInterruptGuard(dir)
	defer g.stop()
	if g.postDump() {
		t.Fatal("a marker left by an earlier dump counted as post-dump")
	}
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if !g.postDump() {
		t.Fatal("a new marker did not count as post-dump")
	}
	if err := g.interrupted("c"); err != nil {
		t.Fatalf("no signal, yet %v", err)
	}
}
