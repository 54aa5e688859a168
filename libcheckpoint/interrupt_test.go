package libcheckpoint

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

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
