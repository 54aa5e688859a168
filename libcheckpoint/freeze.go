package libcheckpoint

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/runcr/runcr/libcheckpoint/image"
)

// CRIU freezes a container by writing FROZEN to its freezer and reading the
// state back at once; if the kernel still says FREEZING (a task was on a
// CPU, as in any busy container), CRIU sleeps 100 ms before it looks again.
// That sleep is most of a small checkpoint's cost whenever it happens (2
// and 3 in 6 dumps of busy shell loops here). A container CRIU finds frozen
// already is seized at once, so runcr freezes it first with libcontainer's
// Pause, which polls the freezer without sleeping.
//
// CRIU remembers that it found the container frozen: after the dump it
// leaves it frozen (--leave-running, or when the dump failed). runcr thaws
// it then, and for the one case where runcr can't, its own death by
// SIGKILL, a thaw guard does: a shell started before the freeze, in a
// session of its own, that reads a pipe whose write end runcr and CRIU
// hold. runcr writes "ok" once it has nothing left to thaw; if the pipe
// ends without it, runcr is dead and CRIU, which holds the pipe too, has
// exited (refreezing the container on its way out), and the guard thaws
// the container.

// thawGuardScript is the guard: $1 is the freezer file, $2 what thaws it.
const thawGuardScript = `trap '' HUP INT QUIT TERM
IFS= read -r said
[ "$said" = ok ] && exit 0
printf '%s' "$2" >"$1"`

// preFreeze is a container runcr froze for CRIU, with its thaw guard.
type preFreeze struct {
	container *libcontainer.Container
	guard     *exec.Cmd
	pipe      *os.File // write end of the guard's stdin
}

// freezeForCriu freezes the running container c and starts its thaw guard,
// or returns nil, leaving the freezing to CRIU, when either can't be done.
func freezeForCriu(c *libcontainer.Container) *preFreeze {
	file, thawed, err := freezerFile(c)
	if err != nil {
		logrus.Debugf("CRIU will freeze the container: %v", err)
		return nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		logrus.Debugf("CRIU will freeze the container: no pipe for the thaw guard: %v", err)
		return nil
	}
	defer r.Close()
	guard := exec.Command("/bin/sh", "-c", thawGuardScript, "runcr-thaw-guard", file, thawed)
	guard.Stdin = r
	// Out of runcr's session and process group: a signal meant for runcr
	// and its CRIU (Ctrl-C, kill of the group) doesn't reach the guard.
	guard.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := guard.Start(); err != nil {
		w.Close()
		logrus.Debugf("CRIU will freeze the container: can't start the thaw guard: %v", err)
		return nil
	}
	f := &preFreeze{container: c, guard: guard, pipe: w}
	if err := c.Pause(); err != nil {
		logrus.Debugf("CRIU will freeze the container: pausing it failed: %v", err)
		f.release()
		return nil
	}
	return f
}

// freezerFile is the container's freezer control file and the value that
// thaws it.
func freezerFile(c *libcontainer.Container) (string, string, error) {
	st, err := c.State()
	if err != nil {
		return "", "", err
	}
	if cgroups.IsCgroup2UnifiedMode() {
		if dir := st.CgroupPaths[""]; dir != "" {
			return filepath.Join(dir, "cgroup.freeze"), "0", nil
		}
	} else if dir := st.CgroupPaths["freezer"]; dir != "" {
		return filepath.Join(dir, "freezer.state"), string(cgroups.Thawed), nil
	}
	return "", "", errors.New("the container has no freezer cgroup")
}

// shareWithCriu lets the CRIU about to be started inherit the guard's pipe,
// so that the guard waits for CRIU to exit as well as runcr. Called on the
// thread that starts CRIU, just before; nothing else is started meanwhile.
func (f *preFreeze) shareWithCriu() {
	if f == nil {
		return
	}
	if _, err := unix.FcntlInt(f.pipe.Fd(), unix.F_SETFD, 0); err != nil {
		logrus.Debugf("thaw guard: CRIU won't hold its pipe: %v", err)
	}
}

// release tells the guard that runcr has seen to the container, and reaps
// it. If the container is still frozen (thawing it failed), the guard is
// not told, and thaws it as it would after runcr's death.
func (f *preFreeze) release() {
	if f == nil {
		return
	}
	if st, err := f.container.Status(); err == nil && st == libcontainer.Paused {
		logrus.Warnf("container %q is still frozen; its thaw guard thaws it", f.container.ID())
	} else if _, err := f.pipe.WriteString("ok\n"); err != nil {
		logrus.Debugf("thaw guard: %v", err)
	}
	f.pipe.Close()
	if err := f.guard.Wait(); err != nil {
		logrus.Debugf("thaw guard: %v", err)
	}
}

// recordThawed rewrites the freezer state in dir's cgroup.img to THAWED.
// CRIU records the state it found the container in, FROZEN when runcr froze
// it, and a restore that applies the state (one that sets cgroup
// properties: --manage-cgroups-mode full, or Podman's after a
// --leave-running checkpoint) would bring the container back frozen, or
// hang (see checkFrozenRestore). Images without cgroup.img
// (--manage-cgroups-mode ignore) or without a freezer state (cgroup v2)
// are left as they are.
func recordThawed(dir string) error {
	return image.RewriteFreezerState(dir, string(cgroups.Thawed))
}

// checkFrozenRestore refuses --manage-cgroups-mode full or strict for
// images that record the container frozen (it was paused when checkpointed,
// by runc, or by runcr before it rewrote the state): CRIU then writes
// FROZEN into the cgroup its own restorer has joined and hangs for good,
// with runc as with runcr.
func checkFrozenRestore(dir, mode string) error {
	if mode != "full" && mode != "strict" {
		return nil
	}
	states, err := image.FreezerStates(dir)
	if err != nil {
		return err
	}
	for _, state := range states {
		if state == string(cgroups.Frozen) {
			return fmt.Errorf("%w: --manage-cgroups-mode %s: the images in %s record the container frozen (it was paused when checkpointed), and CRIU, restoring that state, would freeze its own restore and hang; restore with --manage-cgroups-mode soft (the default) and resume the container after", ErrUnsupported, mode, dir)
		}
	}
	return nil
}

// downtimeClock times the stop runcr imposes: from its freeze to its thaw.
type downtimeClock struct {
	frozeAt, thawedAt time.Time
}

func (c *downtimeClock) froze()  { c.frozeAt = time.Now() }
func (c *downtimeClock) thawed() { c.thawedAt = time.Now() }

func (c *downtimeClock) stopped() time.Duration {
	if c == nil || c.frozeAt.IsZero() || c.thawedAt.IsZero() {
		return 0
	}
	return c.thawedAt.Sub(c.frozeAt)
}
