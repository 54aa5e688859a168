package libcheckpoint

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The thaw guard leaves the freezer alone when runcr says ok, and thaws it
// when the pipe ends without a word, as when runcr and CRIU were killed;
// signals to runcr's process group don't stop it.
func TestThawGuard(t *testing.T) {
	for _, tc := range []struct {
		name, say string
		want      string
	}{
		{"runcr saw to the container", "ok\n", "FROZEN"},
		{"runcr died", "", "THAWED"},
		{"runcr died mid-word", "o", "THAWED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "freezer.state")
			if err := os.WriteFile(state, []byte("FROZEN"), 0o600); err != nil {
				t.Fatal(err)
			}
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			guard := exec.Command("/bin/sh", "-c", thawGuardScript, "runcr-thaw-guard", state, "THAWED")
			guard.Stdin = r
			if err := guard.Start(); err != nil {
				t.Fatal(err)
			}
			r.Close()
			// Once the shell ignores them, signal it as Ctrl-C would.
			waitIgnoring(t, guard.Process.Pid, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
			for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
				if err := guard.Process.Signal(sig); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := w.WriteString(tc.say); err != nil {
				t.Fatal(err)
			}
			w.Close()
			if err := guard.Wait(); err != nil {
				t.Fatalf("guard: %v", err)
			}
			got, err := os.ReadFile(state)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("freezer state %q, want %q", got, tc.want)
			}
		})
	}
}

// waitIgnoring waits until process pid ignores every signal in sigs
// (the SigIgn mask of /proc/PID/status).
func waitIgnoring(t *testing.T, pid int, sigs ...syscall.Signal) {
	t.Helper()
	var want uint64
	for _, s := range sigs {
		want |= 1 << (uint(s) - 1)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		for _, line := range strings.Split(string(data), "\n") {
			if hex, ok := strings.CutPrefix(line, "SigIgn:"); ok {
				if mask, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64); err == nil && mask&want == want {
					return
				}
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("process %d never ignored %v", pid, sigs)
}
