package fsutil

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestReplaceFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A failed write leaves the old file and no temporary one.
	boom := errors.New("boom")
	err := ReplaceFile(path, 0o644, func(f *os.File) error {
		_, _ = f.WriteString("half")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want the write's error", err)
	}
	if data, _ := os.ReadFile(path); string(data) != "old" {
		t.Fatalf("after a failed write the file holds %q", data)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("a temporary file was left: %v", entries)
	}
	// A good one replaces it whole, with the mode asked for.
	if err := ReplaceFile(path, 0o644, func(f *os.File) error { _, err := f.WriteString("new"); return err }); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != "new" || fi.Mode().Perm() != 0o644 {
		t.Fatalf("got %q mode %v, want \"new\" 0644", data, fi.Mode().Perm())
	}
}

func TestPendingFileAbort(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "archive")
	p, err := CreatePending(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.WriteString("partial"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the path exists before Commit: %v", err)
	}
	p.Abort()
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("Abort left %v", entries)
	}
}

func TestOpenRegularRefusesAFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if f, err := OpenRegular(path); err == nil {
		f.Close()
		t.Fatal("a FIFO was opened as a regular file")
	}
}
