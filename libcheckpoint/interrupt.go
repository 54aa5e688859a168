package libcheckpoint

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// ErrInterrupted: a signal stopped the checkpoint before CRIU finished; the
// container was left running.
var ErrInterrupted = errors.New("checkpoint interrupted")

// interruptGuard catches SIGINT, SIGTERM and SIGHUP during a dump. Left to
// their default they would kill runcr at any moment, also after CRIU's dump
// succeeded and before the manifest says complete: CRIU then kills the
// container and restore refuses the checkpoint that holds it. Before CRIU has
// reported post-dump it aborts the dump the way runcr's death would: CRIU
// (runcr's child, not killed by a signal sent to runcr alone) fails at its
// next message, resumes the container itself and exits. After post-dump the
// dump is whole and CRIU is killing the container, so the guard lets the
// checkpoint finish. Either way runcr lives on to thaw the container when
// CRIU was killed too (a signal to the process group, as Ctrl-C sends) and
// to write the manifest.
type interruptGuard struct {
	signals chan os.Signal
	done    chan struct{}
	wg      sync.WaitGroup
	// marker is libcontainer's "checkpoint" file in the container's state
	// directory, created when CRIU reports post-dump; stale is its
	// modification time before this dump (zero when absent): a dump with
	// --leave-running leaves it behind.
	marker string
	stale  time.Time

	mu  sync.Mutex
	sig os.Signal
}

func newInterruptGuard(stateDir string) *interruptGuard {
	g := &interruptGuard{
		signals: make(chan os.Signal, 4),
		done:    make(chan struct{}),
		marker:  filepath.Join(stateDir, "checkpoint"),
	}
	if fi, err := os.Stat(g.marker); err == nil {
		g.stale = fi.ModTime()
	}
	for _, s := range []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP} {
		// One ignored from the start (nohup, a background job) stays so.
		if !signal.Ignored(s) {
			signal.Notify(g.signals, s)
		}
	}
	g.wg.Add(1)
	go g.run()
	return g
}

func (g *interruptGuard) run() {
	defer g.wg.Done()
	var tick <-chan time.Time
	for {
		select {
		case <-g.done:
			return
		case s := <-g.signals:
			g.mu.Lock()
			if g.sig == nil {
				g.sig = s
			}
			g.mu.Unlock()
			if g.postDump() {
				logrus.Warnf("got %v after CRIU finished the dump; completing the checkpoint", s)
				continue
			}
			logrus.Warnf("got %v: stopping the checkpoint, the container keeps running", s)
			if tick == nil {
				// Again until the dump ends: the signal may have come
				// before libcontainer started CRIU.
				t := time.NewTicker(10 * time.Millisecond)
				defer t.Stop()
				tick = t.C
			}
			g.abort()
		case <-tick:
			g.abort()
		}
	}
}

// abort makes the running CRIU fail unless it has reported post-dump.
func (g *interruptGuard) abort() {
	if !g.postDump() {
		shutdownCriuConn()
	}
}

// postDump tells whether CRIU reported post-dump during this dump.
func (g *interruptGuard) postDump() bool {
	fi, err := os.Stat(g.marker)
	return err == nil && !fi.ModTime().Equal(g.stale)
}

// stop restores the signals' default handling and returns the first one
// caught, if any.
func (g *interruptGuard) stop() os.Signal {
	signal.Stop(g.signals)
	close(g.done)
	g.wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sig
}

// interrupted reports a signal the guard caught, as the checkpoint's error.
func (g *interruptGuard) interrupted(id string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.sig == nil {
		return nil
	}
	return fmt.Errorf("%w by %v: container %q was left running; no checkpoint was made", ErrInterrupted, g.sig, id)
}

// shutdownCriuConn shuts down runcr's end of libcontainer's connection to
// CRIU ("criu swrk"), the only unix SOCK_SEQPACKET socket runcr holds while
// it checkpoints: CRIU then sees its client gone, as if runcr had died, and
// libcontainer's wait for CRIU's answer returns. Shutdown rather than close:
// the descriptor stays libcontainer's.
func shutdownCriuConn() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		logrus.Warnf("can't stop CRIU: %v", err)
		return
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if t, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || t != unix.SOCK_SEQPACKET {
			continue
		}
		if d, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN); err != nil || d != unix.AF_UNIX {
			continue
		}
		if err := unix.Shutdown(fd, unix.SHUT_RDWR); err != nil && !errors.Is(err, unix.ENOTCONN) {
			logrus.Debugf("shutting down fd %d: %v", fd, err)
		}
	}
}

// dumpFinished tells whether CRIU's log says the dump succeeded: CRIU
// writes it before its final answer, which is lost when the guard shut the
// connection just after runcr acknowledged post-dump.
func dumpFinished(logPath string) bool {
	data, err := os.ReadFile(logPath)
	return err == nil && strings.Contains(string(data), "Dumping finished successfully")
}
