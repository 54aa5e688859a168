package criuhost

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// hangingCriu writes a script that, like a CRIU that never answers,
// starts a child and waits for ever; the child writes its pid to a file.
func hangingCriu(t *testing.T) (criu, childPidFile string) {
	t.Helper()
	dir := t.TempDir()
	criu = filepath.Join(dir, "criu")
	childPidFile = filepath.Join(dir, "child.pid")
	script := "#!/bin/sh\nsleep 1000 &\necho $! > " + childPidFile + "\nwait\n"
	if err := os.WriteFile(criu, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return criu, childPidFile
}

func readPid(t *testing.T, file string) int {
	t.Helper()
	for range 200 {
		if data, err := os.ReadFile(file); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
				return pid
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: no pid written", file)
	return 0
}

// gone tells whether pid has exited (a zombie counts as gone).
func gone(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(data), ')')
	return i > 0 && strings.HasPrefix(string(data[i+1:]), " Z")
}

func TestRunCriuProbeStopsAHangingCriu(t *testing.T) {
	criu, childPidFile := hangingCriu(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := RunProbe(ctx, criu, "check", "--feature", "timens")
	if !errors.Is(err, ErrCriuTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrCriuTimeout and DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), criu+" check --feature timens") {
		t.Errorf("error %q does not name the command", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v after a 300ms deadline", d)
	}
	child := readPid(t, childPidFile)
	for range 100 {
		if gone(child) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("the hanging criu's child %d is still running", child)
}

func TestWatchCriuAbortsThenKills(t *testing.T) {
	criu, childPidFile := hangingCriu(t)
	// Started through a link, as --criu's private link starts it.
	link := filepath.Join(t.TempDir(), "criu")
	if err := os.Symlink(criu, link); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(link, "swrk", "3")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	bystander := exec.Command("sleep", "1000")
	if err := bystander.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = bystander.Process.Kill(); _ = bystander.Wait() }()
	child := readPid(t, childPidFile)
	defer func() { _ = syscall.Kill(child, syscall.SIGKILL) }()

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var aborts atomic.Int32
	stop := WatchCriu(ctx, link, 200*time.Millisecond, func() bool { aborts.Add(1); return true })
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("criu ended with %v, want killed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the hanging criu was not killed")
	}
	stop()
	if aborts.Load() == 0 {
		t.Error("abort was never called")
	}
	for i := 0; !gone(child); i++ {
		if i == 100 {
			t.Fatalf("criu's child %d is still running", child)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if gone(bystander.Process.Pid) {
		t.Error("a child that does not run criu was killed")
	}
}

func TestWatchCriuLeavesAFinishedCallAlone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var aborts atomic.Int32
	stop := WatchCriu(ctx, "/nonexistent/criu", time.Millisecond, func() bool { aborts.Add(1); return true })
	stop()
	cancel()
	time.Sleep(20 * time.Millisecond)
	stop() // twice is fine
	if n := aborts.Load(); n != 0 {
		t.Errorf("abort called %d times after stop", n)
	}
}

// StopCriuConn ends runcr's connection to a running criu, as runcr's death
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

	StopCriuConn(criu)()
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
