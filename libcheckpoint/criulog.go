package libcheckpoint

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/opencontainers/runc/libcontainer"
)

// CRIUError is a failed CRIU run. libcontainer has already quoted the
// log's error lines through the logger; this adds where the log is and,
// for causes we know, what to do.
type CRIUError struct {
	Op      string // "checkpoint" or "restore"
	LogPath string // CRIU's dump.log or restore.log
	Cause   string // CRIU's first telling error line, or ""
	Hint    string // one line on a known cause, or ""
	Err     error  // libcontainer's error
}

func (e *CRIUError) Error() string {
	msg := fmt.Sprintf("%s failed: %v", e.Op, e.Err)
	if e.Cause != "" {
		msg += ": " + e.Cause
	}
	msg += " (CRIU log: " + e.LogPath + ")"
	if e.Hint != "" {
		msg += "; hint: " + e.Hint
	}
	return msg
}

// Unwrap lets errors.Is match both ErrCRIU and libcontainer's cause.
func (e *CRIUError) Unwrap() []error { return []error{ErrCRIU, e.Err} }

// criuHints maps text that CRIU logs for known causes to advice.
var criuHints = []struct{ match, hint string }{
	{"Can't lookup mount=", "a process holds a file open that is outside the container's mounts (often stdio redirected to a host file); give the container pipes or a terminal, or bind-mount the file into it"},
	{"Connected TCP socket", "the container has established TCP connections; checkpoint and restore with --tcp-established"},
	{"consider using --tcp-established", "the container has established TCP connections; checkpoint and restore with --tcp-established"},
	{"External socket is used", "a unix socket is connected to a peer outside the container; use --ext-unix-sk"},
	{"External socket found in image", "the checkpoint has external unix sockets; restore with --ext-unix-sk"},
	{"Can't create link remap", "the container holds open a file whose name was removed; use --link-remap"},
	{"No pagemap-", "the memory images (pagemap-*.img, pages-*.img) are not in --image-path; after a --page-server checkpoint, copy them from the page server's directory"},
	{"Some file locks are hold", "the container holds file locks; checkpoint and restore with --file-locks"},
	{"ctty inheritance detected", "the container's processes share a terminal session with the outside; use --shell-job"},
	{"Found dangling tty", "the container's processes share a terminal session with the outside; use --shell-job"},
	{"iptables-restore", "CRIU locks the network with iptables-restore; install iptables (Debian package iptables)"},
	{"Can't connect to server", "the page server given with --page-server is not reachable; start `criu page-server --port PORT` there first"},
	{"Can't connect to page server", "the page server given with --page-server is not reachable; start `criu page-server --port PORT` there first"},
	{"Unexpected rt vDSO area bounds", "this CRIU is too old for this kernel; install CRIU 4.0 or newer"},
	{"No space left on device", "the file system of --image-path (or --work-path) is full; free space there or give a directory on a larger file system"},
	{"page-pipe: splice", "lazy pages fail with this CRIU on this kernel; checkpoint without --lazy-pages"},
	// runc >= 1.5.2 keeps an rslave rootfs a slave of the host's mount,
	// so host mounts under it show in the container as slaves of a
	// master CRIU can't see; neither runc nor runcr passes CRIU's
	// --enable-external-masters.
	{"has unreachable sharing", "a mount in the container is a slave of a mount outside it (e.g. a host mount propagated into a container whose rootfsPropagation is slave or rslave, which runc 1.5.2 and later keep a slave of the host); unmount it, or run the container with rootfsPropagation private"},
}

// criuFailure wraps a failed libcontainer Checkpoint/Restore. Feature
// refusals become ErrUnsupported naming the CRIU feature.
func criuFailure(op string, err error, logPath string) error {
	if errors.Is(err, libcontainer.ErrCriuMissingFeatures) {
		missing := err.Error()
		missing = strings.ReplaceAll(missing, "MemTrack", "mem_dirty_track (soft-dirty memory tracking, needed by --pre-dump)")
		missing = strings.ReplaceAll(missing, "LazyPages", "uffd-noncoop (userfaultfd, needed by --lazy-pages)")
		return fmt.Errorf("%w: %s refused before freezing the container: %s", ErrUnsupported, op, missing)
	}
	cause, hint := scanLog(logPath)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		cause = "CRIU exited without answering (killed or crashed); " + cause
	}
	return &CRIUError{Op: op, LogPath: logPath, Cause: cause, Hint: hint, Err: err}
}

// Error lines that carry no cause: seen on every run here, or the summary
// CRIU prints after the real error.
var criuNoise = []string{"RLIMIT_NOFILE", "Dumping FAILED", "Restoring FAILED", "failed with -1"}

// scanLog finds, in a CRIU log, the first error line that says what went
// wrong and a hint for a known cause, preferring one found on an error
// line; some causes (an unreachable page server) are only logged as
// information before the error that follows from them.
func scanLog(logPath string) (cause, hint string) {
	f, err := os.Open(logPath)
	if err != nil {
		return "", ""
	}
	defer f.Close()
	var fromInfo, infoLine string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64*1024), 1024*1024)
	for s.Scan() {
		line := s.Text()
		isError := strings.Contains(line, "Error (")
		if isError && cause == "" && !containsAny(line, criuNoise) {
			cause = strings.TrimSpace(line[strings.Index(line, "Error ("):])
		}
		for _, h := range criuHints {
			if !strings.Contains(line, h.match) {
				continue
			}
			if isError && hint == "" {
				hint = h.hint
			}
			if fromInfo == "" {
				fromInfo, infoLine = h.hint, line
			}
		}
	}
	if hint == "" && fromInfo != "" {
		// The errors that follow an informational cause are its fallout.
		hint = fromInfo
		if _, msg, ok := strings.Cut(infoLine, ") "); ok {
			infoLine = msg
		}
		cause = strings.TrimSpace(infoLine)
	}
	return cause, hint
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
