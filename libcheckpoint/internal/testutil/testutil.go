// Package testutil has helpers the tests of several libcheckpoint
// packages share.
package testutil

import (
	"runtime"
	"testing"
	"time"
)

// Bounded runs f and fails unless it returned within a second, having
// allocated less than 64 MiB.
func Bounded(t *testing.T, what string, f func() error) error {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- f() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: still running after 10 s", what)
	}
	d := time.Since(start)
	runtime.ReadMemStats(&after)
	if d > time.Second {
		t.Errorf("%s took %v, want < 1 s", what, d)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Errorf("%s allocated %d MiB, want < 64", what, alloc>>20)
	}
	return err
}
