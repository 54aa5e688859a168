package libcheckpoint

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// hostState is what a host program would notice changed behind its back.
type hostState struct {
	env       []string
	cwd       string
	umask     int
	sigMasks  string // SigIgn and SigCgt of /proc/self/status
	subreaper int
	fds       []string
	threads   int
}

func readHostState(t *testing.T) hostState {
	t.Helper()
	var s hostState
	s.env = os.Environ()
	slices.Sort(s.env)
	var err error
	if s.cwd, err = os.Getwd(); err != nil {
		t.Fatal(err)
	}
	s.umask = unix.Umask(0o022)
	unix.Umask(s.umask)
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "SigIgn:") || strings.HasPrefix(line, "SigCgt:") {
			s.sigMasks += line + " "
		}
		if strings.HasPrefix(line, "Threads:") {
			s.threads, _ = strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "Threads:")))
		}
	}
	var subreaper int32
	if err := unix.Prctl(unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(&subreaper)), 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	s.subreaper = int(subreaper)
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		link, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if strings.HasPrefix(link, "/proc/") && strings.HasSuffix(link, "/fd") {
			continue // the ReadDir of /proc/self/fd itself
		}
		s.fds = append(s.fds, e.Name()+"->"+link)
	}
	return s
}

// TestLibraryLeavesHostAlone drives five rounds of Checkpoint and detached
// Restore of a real container through the library, in one process that
// also waits for a child of its own, and checks that nothing of the
// process changed behind its back: the child's exit status reaches its
// exec.Cmd, and the environment, working directory, umask, signal
// dispositions, subreaper flag, open descriptors and thread count are as
// they were once SetupProcess (the one process-wide set-up, documented as
// such) had run.
func TestLibraryLeavesHostAlone(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: CRIU checkpoints and restores containers as root")
	}
	criuPath, err := exec.LookPath("criu")
	if err != nil {
		t.Skip("CRIU is not installed")
	}
	if out, err := exec.Command(criuPath, "check").CombinedOutput(); err != nil {
		t.Skipf("CRIU can't run here: criu check: %v: %s", err, bytes.TrimSpace(out))
	}
	runc := os.Getenv("RUNCR_RUNC")
	if runc == "" {
		if runc, err = exec.LookPath("runc"); err != nil {
			t.Fatal("no runc to create the container with (make deps installs it)")
		}
	}
	rootfs := os.Getenv("RUNCR_TEST_ROOTFS")
	if rootfs == "" {
		rootfs, _ = filepath.Abs("../tests/.build/rootfs")
	}
	if _, err := os.Stat(filepath.Join(rootfs, "bin", "sh")); err != nil {
		t.Fatalf("no busybox rootfs at %s (make rootfs builds it; RUNCR_TEST_ROOTFS names another): %v", rootfs, err)
	}

	tmp := t.TempDir()
	bundle := filepath.Join(tmp, "bundle")
	state := filepath.Join(tmp, "state")
	if err := os.MkdirAll(bundle, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", rootfs, filepath.Join(bundle, "rootfs")).CombinedOutput(); err != nil {
		t.Fatalf("copying the rootfs: %v: %s", err, out)
	}
	writeTestSpec(t, bundle, runc)
	id := "hostalone-" + strconv.Itoa(os.Getpid())
	defer func() { _ = exec.Command(runc, "--root", state, "delete", "--force", id).Run() }()

	// The container's stdio: pipes (CRIU can't dump a host file), kept
	// open by the test for the container's whole life.
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, f := range []*os.File{stdinR, stdinW, outR, outW} {
			f.Close()
		}
	}()
	run := exec.Command(runc, "--root", state, "run", "-d", "--bundle", bundle, id)
	run.Stdin, run.Stdout, run.Stderr = stdinR, outW, outW
	if err := run.Run(); err != nil {
		t.Fatalf("runc run: %v", err)
	}
	count := filepath.Join(bundle, "rootfs", "tmp", "count")
	waitCount(t, count, counter{})

	ctx := context.Background()
	undo, err := SetupProcess(ctx, ProcessOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer undo()

	rt := &Runtime{Root: state}
	round := func(n int) {
		t.Helper()
		images := filepath.Join(tmp, "images-"+strconv.Itoa(n))
		last := readCount(t, count)
		opts := NewCheckpointOptions()
		opts.ImagePath = images
		if _, err := rt.Checkpoint(ctx, id, opts); err != nil {
			t.Fatalf("round %d: checkpoint: %v", n, err)
		}
		var ropts RestoreOptions
		ropts.ImagePath, ropts.Bundle, ropts.Detach = images, bundle, true
		ropts.Stdio = Stdio{In: stdinR, Out: outW, Err: outW}
		if _, err := rt.Restore(ctx, id, ropts); err != nil {
			t.Fatalf("round %d: restore: %v", n, err)
		}
		waitCount(t, count, last)
	}
	// A first round opens what libcontainer keeps open for the life of
	// the process once used (its cgroup root and root directory handles).
	round(0)
	runtime.GC()
	before := readHostState(t)

	// A child of the host program's own, exiting while the library works.
	child := exec.Command("/bin/sh", "-c", "sleep 1; exit 7")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 5; n++ {
		round(n)
	}

	err = child.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 7 {
		t.Errorf("the host program's child: Wait returned %v, want exit status 7", err)
	}
	// os.Process handles no longer referenced close their pidfds in
	// finalizers, which run some time after a GC: give them a second.
	runtime.GC()
	after := readHostState(t)
	for i := 0; i < 50 && !slices.Equal(before.fds, after.fds); i++ {
		time.Sleep(20 * time.Millisecond)
		runtime.GC()
		after = readHostState(t)
	}
	if !slices.Equal(before.env, after.env) {
		t.Errorf("environment changed:\nbefore %q\nafter  %q", before.env, after.env)
	}
	if before.cwd != after.cwd {
		t.Errorf("working directory changed: %s -> %s", before.cwd, after.cwd)
	}
	if before.umask != after.umask {
		t.Errorf("umask changed: %04o -> %04o", before.umask, after.umask)
	}
	if before.sigMasks != after.sigMasks {
		t.Errorf("signal dispositions changed: %s -> %s", before.sigMasks, after.sigMasks)
	}
	if before.subreaper != after.subreaper {
		t.Errorf("subreaper flag changed: %d -> %d", before.subreaper, after.subreaper)
	}
	if !slices.Equal(before.fds, after.fds) {
		t.Errorf("open descriptors changed:\nbefore %q\nafter  %q", before.fds, after.fds)
	}
	// Go may start a thread or two for blocking system calls; a thread
	// kept per call would add five.
	if after.threads > before.threads+3 {
		t.Errorf("threads: %d before, %d after five rounds", before.threads, after.threads)
	}
}

// writeTestSpec writes runc's default spec for bundle, running a counter
// that writes /tmp/count ten times a second.
func writeTestSpec(t *testing.T, bundle, runc string) {
	t.Helper()
	if out, err := exec.Command(runc, "spec", "--bundle", bundle).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v: %s", err, out)
	}
	path := filepath.Join(bundle, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	spec.Process.Terminal = false
	spec.Process.Args = []string{"sh", "-c", "t=$RANDOM$RANDOM; i=0; while :; do i=$((i+1)); echo $t $i >/tmp/count.new; mv /tmp/count.new /tmp/count; sleep 0.1; done"}
	spec.Root.Readonly = false
	if data, err = json.Marshal(&spec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// counter is what the workload last wrote: its token (random, fixed for
// the life of the process) and its count.
type counter struct {
	token string
	n     int
}

func readCount(t *testing.T, path string) counter {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		return counter{}
	}
	token, n, _ := strings.Cut(strings.TrimSpace(string(data)), " ")
	c := counter{token: token}
	c.n, _ = strconv.Atoi(n)
	return c
}

// waitCount waits for the counter to pass after, with after's token: the
// same workload runs on, not a new one.
func waitCount(t *testing.T, path string, after counter) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var c counter
	for time.Now().Before(deadline) {
		if c = readCount(t, path); c.n > after.n {
			if after.token != "" && c.token != after.token {
				t.Fatalf("the workload restarted: token %s, was %s", c.token, after.token)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the container's counter did not pass %d (it is at %d)", after.n, c.n)
}
