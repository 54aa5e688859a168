package criuhost

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A runcr making the kernel feature cache with a criu that hangs held the
// one cache lock, and every other runcr's restore waited on it until
// containerd's CRI deadline cancelled it. The wait is bounded now.
func TestFlockWithinGivesUpOnAHeldLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kdat.lock")
	holder, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if err := flockWithin(holder, 0); err != nil {
		t.Fatalf("free lock: %v", err)
	}

	// flock locks belong to the open file: a second open conflicts.
	waiter, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer waiter.Close()
	start := time.Now()
	err = flockWithin(waiter, 150*time.Millisecond)
	took := time.Since(start)
	if !errors.Is(err, errLockBusy) {
		t.Fatalf("held lock: got %v, want errLockBusy", err)
	}
	if took < 150*time.Millisecond || took > 2*time.Second {
		t.Fatalf("gave up after %v, want about 150ms", took)
	}

	// Released while waiting: taken.
	go func() {
		time.Sleep(100 * time.Millisecond)
		holder.Close()
	}()
	if err := flockWithin(waiter, 5*time.Second); err != nil {
		t.Fatalf("lock released during the wait: %v", err)
	}
}
