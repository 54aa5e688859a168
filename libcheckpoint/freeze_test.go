package libcheckpoint

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/cgroup"
	"google.golang.org/protobuf/proto"

	"github.com/runcr/runcr/libcheckpoint/image"
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

// CRIU records the freezer state it found; for a container runcr froze,
// the image is made to say THAWED, and nothing else in it changes.
func TestRecordThawed(t *testing.T) {
	dir := t.TempDir()
	prop := func(name, value string) *cgroup.CgroupPropEntry {
		return &cgroup.CgroupPropEntry{Name: proto.String(name), Value: proto.String(value)}
	}
	entry := &cgroup.CgroupEntry{
		Sets: []*cgroup.CgSetEntry{{Id: u32(1)}},
		Controllers: []*cgroup.CgControllerEntry{
			{Cnames: []string{"cpu", "cpuacct"}, Dirs: []*cgroup.CgroupDirEntry{{
				DirName: proto.String("ct"), Properties: []*cgroup.CgroupPropEntry{prop("cpu.shares", "1024")},
			}}},
			{Cnames: []string{"freezer"}, Dirs: []*cgroup.CgroupDirEntry{{
				DirName:    proto.String("ct"),
				Properties: []*cgroup.CgroupPropEntry{prop("freezer.state", "FROZEN"), prop("notify_on_release", "0")},
				Children: []*cgroup.CgroupDirEntry{{
					DirName: proto.String("nested"), Properties: []*cgroup.CgroupPropEntry{prop("freezer.state", "FROZEN")},
				}},
			}}},
		},
	}
	writeImage(t, dir, "cgroup.img", "CGROUP", entry)
	if err := recordThawed(dir); err != nil {
		t.Fatal(err)
	}
	msgs, err := image.DecodeImage(dir, "cgroup.img", "CGROUP", &cgroup.CgroupEntry{})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("decoding the rewritten image: %v (%d entries)", err, len(msgs))
	}
	want := proto.Clone(entry).(*cgroup.CgroupEntry)
	freezer := want.Controllers[1].Dirs[0]
	freezer.Properties[0].Value = proto.String("THAWED")
	freezer.Children[0].Properties[0].Value = proto.String("THAWED")
	if !proto.Equal(msgs[0], want) {
		t.Errorf("rewritten cgroup.img:\n%v\nwant:\n%v", msgs[0], want)
	}
	if fi, err := os.Stat(filepath.Join(dir, "cgroup.img")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("cgroup.img: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}

	// Nothing to do without the image; a damaged one is an error.
	if err := recordThawed(t.TempDir()); err != nil {
		t.Errorf("no cgroup.img: %v", err)
	}
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "cgroup.img"), []byte("garbage!"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := recordThawed(bad); !errors.Is(err, ErrBadImage) {
		t.Errorf("damaged cgroup.img: %v, want ErrBadImage", err)
	}
}

// Restoring images that record a frozen container with a mode that applies
// cgroup properties would hang CRIU: refused, naming the flag.
func TestCheckFrozenRestore(t *testing.T) {
	state := func(v string) *cgroup.CgroupEntry {
		return &cgroup.CgroupEntry{Controllers: []*cgroup.CgControllerEntry{{
			Cnames: []string{"freezer"},
			Dirs: []*cgroup.CgroupDirEntry{{DirName: proto.String("ct"), Properties: []*cgroup.CgroupPropEntry{
				{Name: proto.String("freezer.state"), Value: proto.String(v)},
			}}},
		}}}
	}
	frozen, thawed, none := t.TempDir(), t.TempDir(), t.TempDir()
	writeImage(t, frozen, "cgroup.img", "CGROUP", state("FROZEN"))
	writeImage(t, thawed, "cgroup.img", "CGROUP", state("THAWED"))
	for _, tc := range []struct {
		dir, mode string
		refused   bool
	}{
		{frozen, "full", true},
		{frozen, "strict", true},
		{frozen, "", false},
		{frozen, "soft", false},
		{frozen, "ignore", false},
		{thawed, "full", false},
		{none, "full", false},
	} {
		err := checkFrozenRestore(tc.dir, tc.mode)
		if tc.refused != (err != nil) || tc.refused && (!errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "--manage-cgroups-mode "+tc.mode)) {
			t.Errorf("%s, mode %q: %v (refusal wanted: %v)", tc.dir, tc.mode, err, tc.refused)
		}
	}
}

func TestDowntimeClockNil(t *testing.T) {
	var c *downtimeClock
	if c.stopped() != 0 {
		t.Error("a nil clock measured something")
	}
}
