package libcheckpoint

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/runcr/runcr/libcheckpoint/internal/criuhost"
)

// ErrInterrupted: the caller's context was cancelled (the command line
// cancels it on SIGINT, SIGTERM and SIGHUP) before CRIU finished the
// dump; the container was left running.
var ErrInterrupted = errors.New("checkpoint interrupted")

// dumpGuard decides what an ended context does to a running dump. Before
// CRIU has reported post-dump, the dump is stopped the way runcr's death
// would stop it: CRIU (told its client is gone, see criuhost.StopCriuConn) fails at
// its next message, resumes the container itself and exits. After
// post-dump the dump is whole and CRIU is killing the container, so the
// checkpoint completes: a checkpoint cut short there would leave neither a
// container nor a restorable checkpoint. Either way runcr lives on to thaw
// the container when CRIU was killed too (a signal to the process group,
// as Ctrl-C sends) and to write the manifest.
type dumpGuard struct {
	// marker is libcontainer's "checkpoint" file in the container's state
	// directory, created when CRIU reports post-dump; stale is its
	// modification time before this dump (zero when absent): a dump with
	// --leave-running leaves it behind.
	marker string
	stale  time.Time
	stop   func()
	once   sync.Once
}

func newDumpGuard(stateDir, criuPath string) *dumpGuard {
	g := &dumpGuard{
		marker: filepath.Join(stateDir, "checkpoint"),
		stop:   criuhost.StopCriuConn(criuPath),
	}
	if fi, err := os.Stat(g.marker); err == nil {
		g.stale = fi.ModTime()
	}
	return g
}

// abort makes the running CRIU fail unless it has reported post-dump; it
// reports whether CRIU is to be stopped (see criuhost.WatchCriu).
func (g *dumpGuard) abort() bool {
	if g.postDump() {
		g.once.Do(func() { logrus.Warn("CRIU had finished the dump; completing the checkpoint") })
		return false
	}
	g.stop()
	return true
}

// postDump tells whether CRIU reported post-dump during this dump.
func (g *dumpGuard) postDump() bool {
	fi, err := os.Stat(g.marker)
	return err == nil && !fi.ModTime().Equal(g.stale)
}

// dumpFinished tells whether CRIU's log says the dump succeeded: CRIU
// writes it before its final answer, which is lost when the guard shut the
// connection just after runcr acknowledged post-dump.
func dumpFinished(logPath string) bool {
	data, err := os.ReadFile(logPath)
	return err == nil && strings.Contains(string(data), "Dumping finished successfully")
}
