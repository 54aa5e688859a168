package libcheckpoint

import (
	"time"

	"github.com/runcr/runcr/libcheckpoint/internal/criuhost"
)

// Process-facing CRIU host code (launching and watching CRIU, probes and
// their caches, the kernel feature cache) lives in internal/criuhost.

// DefaultCriuTimeout is how long the command line lets one checkpoint,
// restore or check wait on CRIU (--criu-timeout, RUNCR_CRIU_TIMEOUT):
// far beyond a real dump or restore (about a second per GiB of memory
// here), so that only a CRIU that hangs meets it.
const DefaultCriuTimeout = 30 * time.Minute

// ErrCriuTimeout: a checkpoint, restore or check was stopped because its
// context ended before CRIU answered. It wraps the context's error
// (context.DeadlineExceeded or context.Canceled) as well.
var ErrCriuTimeout = criuhost.ErrCriuTimeout
