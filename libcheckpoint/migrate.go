package libcheckpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/runcr/runcr/libcheckpoint/archive"
	"github.com/runcr/runcr/libcheckpoint/internal/criuhost"
	"github.com/runcr/runcr/libcheckpoint/migrate"
)

// Migration moves a running container to another host over a transport
// (exec:COMMAND, or ssh:// running `runcr receive` there) that carries
// the stream of package migrate both ways.
//
// The container is frozen (not stopped) from the final rootfs sync until
// the target reports it running; CRIU dumps it with --leave-running into
// a temporary image directory, which is streamed to the target as the
// archive `checkpoint --export` writes. Only once the target reports the
// container running and has been told to keep it (the commit) is the
// source killed and deleted. Before that, any failure, and SIGINT or
// SIGTERM to runcr, thaws the source where it stopped (its memory never
// left it) and the receiver removes what it made.

// MigrateOptions configure Runtime.Migrate.
type MigrateOptions struct {
	// Dest is exec:COMMAND (run by /bin/sh -c; its standard input and
	// output carry the stream) or ssh://[user@]host[:port].
	Dest string
	// NewID is the container's id on the target; "" keeps its id.
	NewID string
	// RemoteRuncr, RemoteRoot and RemoteBundle are, for ssh://, the
	// runcr binary on the remote host (default "runcr"), its --root and
	// receive's --bundle there.
	RemoteRuncr, RemoteRoot, RemoteBundle string
	// SSHOptions are extra arguments for ssh (-i KEY, -o OPTION=VALUE).
	SSHOptions []string
	// TCPEstablished migrates established TCP connections
	// (--tcp-established); FileLocks, ExtUnixSockets, ShellJob as for
	// checkpoint.
	TCPEstablished, FileLocks, ExtUnixSockets, ShellJob bool
	// PreDumpRounds asks for iterative pre-dumps before the final dump
	// where the kernel tracks dirty memory.
	PreDumpRounds int
	// LazyPages asks for a lazy migration (--lazy-pages).
	LazyPages bool
	// Compress is the stream's compression (default zstd).
	Compress Compression
	// Log receives one line per step as it ends (nil: none).
	Log io.Writer
}

// MigrateStep is one step of a migration and how long it took.
type MigrateStep struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	Bytes   int64   `json:"bytes,omitempty"`
}

// MigrateReport says how a migration went.
type MigrateReport struct {
	Container string `json:"container"`
	TargetID  string `json:"target_id"`
	Dest      string `json:"dest"`
	// Downtime is from freezing the source to the target's report that
	// the container runs.
	DowntimeSeconds float64       `json:"downtime_seconds"`
	TotalSeconds    float64       `json:"total_seconds"`
	BytesSent       int64         `json:"bytes_sent"`
	Steps           []MigrateStep `json:"steps"`
	TargetPid       int           `json:"target_pid,omitempty"`
	TargetBundle    string        `json:"target_bundle,omitempty"`
	TargetStdio     string        `json:"target_stdio,omitempty"`
	Notes           []string      `json:"notes,omitempty"`
}

// MigrateError is a migration that failed at Step. Before the commit the
// source runs on, thawed, and the target was told to roll back; after it
// (AfterCommit), State says what exists where.
type MigrateError struct {
	Step        string
	Err         error
	AfterCommit bool
	State       string
}

func (e *MigrateError) Error() string {
	return fmt.Sprintf("migrate: step %s failed: %v; %s", e.Step, e.Err, e.State)
}

func (e *MigrateError) Unwrap() error { return e.Err }

// Migrate steps, as errors and reports name them.
const (
	stepTransport = "transport"
	stepHandshake = "handshake"
	stepBundle    = "bundle"
	stepPreDump   = "pre-dump"
	stepFreeze    = "freeze"
	stepRootfs    = "rootfs-sync"
	stepNetLock   = "network-lock"
	stepDump      = "dump"
	stepRestore   = "restore"
	stepCommit    = "commit"
	stepCleanup   = "source-cleanup"
)

// transport is the running transport command and our ends of its stdio.
type transport struct {
	cmd  *exec.Cmd
	w    io.WriteCloser // its standard input
	r    io.ReadCloser  // its standard output
	desc string
	done chan error
}

// transportCommand builds the command for dest.
func transportCommand(opts MigrateOptions) (*exec.Cmd, error) {
	if cmd, ok := strings.CutPrefix(opts.Dest, "exec:"); ok {
		if strings.TrimSpace(cmd) == "" {
			return nil, invalid("DEST", "exec: needs a command, e.g. exec:'ssh hostb runcr receive'")
		}
		return exec.Command("/bin/sh", "-c", cmd), nil
	}
	if strings.HasPrefix(opts.Dest, "ssh://") {
		u, err := url.Parse(opts.Dest)
		if err != nil || u.Hostname() == "" || (u.Path != "" && u.Path != "/") {
			return nil, invalid("DEST", "%q is not ssh://[user@]host[:port]", opts.Dest)
		}
		args := []string{"-o", "BatchMode=yes"}
		if p := u.Port(); p != "" {
			args = append(args, "-p", p)
		}
		args = append(args, opts.SSHOptions...)
		host := u.Hostname()
		if u.User != nil {
			host = u.User.Username() + "@" + host
		}
		remote := []string{opts.RemoteRuncr}
		if remote[0] == "" {
			remote[0] = "runcr"
		}
		if opts.RemoteRoot != "" {
			remote = append(remote, "--root", opts.RemoteRoot)
		}
		remote = append(remote, "receive")
		if opts.RemoteBundle != "" {
			remote = append(remote, "--bundle", opts.RemoteBundle)
		}
		quoted := make([]string, len(remote))
		for i, a := range remote {
			quoted[i] = shellQuote(a)
		}
		args = append(args, "--", host, strings.Join(quoted, " "))
		return exec.Command("ssh", args...), nil
	}
	return nil, invalid("DEST", "%q is neither exec:COMMAND nor ssh://[user@]host[:port]", opts.Dest)
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-./=:@,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func startTransport(cmd *exec.Cmd, desc string) (*transport, error) {
	w, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	r, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	// Its own process group: Ctrl-C reaches runcr, which rolls back and
	// tells the receiver, rather than killing the receiver mid-way.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", desc, err)
	}
	t := &transport{cmd: cmd, w: w, r: r, desc: desc, done: make(chan error, 1)}
	go func() { t.done <- cmd.Wait() }()
	return t, nil
}

// close ends the transport: its input is closed (the receiver sees the
// end, and rolls back unless committed) and it gets grace to exit before
// its process group is killed. It returns the command's exit error.
func (t *transport) close(grace time.Duration) error {
	t.w.Close()
	select {
	case err := <-t.done:
		return err
	case <-time.After(grace):
		_ = unix.Kill(-t.cmd.Process.Pid, unix.SIGKILL)
		return fmt.Errorf("%s did not exit within %v of the end of the stream and was killed", t.desc, grace)
	}
}

// migration is one Migrate under way.
type migration struct {
	rt        *Runtime
	id        string
	opts      MigrateOptions
	report    *MigrateReport
	start     time.Time
	t         *transport
	fw        *migrate.Writer
	replies   *migrate.ReplyReader
	container *libcontainer.Container
	frozen    *preFreeze
	frozenAt  time.Time
	netLock   *netLock
	rootfs    string
	mu        sync.Mutex
	committed bool
}

func (m *migration) step(name string, since time.Time, bytes int64) {
	d := time.Since(since)
	m.report.Steps = append(m.report.Steps, MigrateStep{Name: name, Seconds: d.Seconds(), Bytes: bytes})
	if m.opts.Log != nil {
		extra := ""
		if bytes > 0 {
			extra = fmt.Sprintf(", %.1f MiB", float64(bytes)/(1<<20))
		}
		fmt.Fprintf(m.opts.Log, "migrate %s: %s done in %.3fs%s\n", m.id, name, d.Seconds(), extra)
	}
}

// Migrate moves running container id to opts.Dest. On success the source
// container is gone and the target runs it. See MigrateError for failures.
func (rt *Runtime) Migrate(ctx context.Context, id string, opts MigrateOptions) (*MigrateReport, error) {
	m := &migration{rt: rt, id: id, opts: opts, start: time.Now()}
	newID := opts.NewID
	if newID == "" {
		newID = id
	}
	m.report = &MigrateReport{Container: id, TargetID: newID, Dest: opts.Dest}
	fail := func(step string, err error) (*MigrateReport, error) {
		return nil, m.rollback(step, err)
	}
	if err := validateID(newID); err != nil {
		return nil, &MigrateError{Step: stepHandshake, Err: err, State: "nothing was done"}
	}
	if err := archive.ValidCompression(opts.Compress); err != nil {
		return nil, err
	}
	container, err := rt.load(id)
	if err != nil {
		return nil, &MigrateError{Step: stepHandshake, Err: err, State: "nothing was done"}
	}
	m.container = container
	status, err := container.Status()
	if err != nil {
		return nil, &MigrateError{Step: stepHandshake, Err: err, State: "nothing was done"}
	}
	if status != libcontainer.Running {
		return nil, &MigrateError{Step: stepHandshake, Err: fmt.Errorf("%w: container %q is %s; only a running container can be migrated", ErrContainerState, id, status), State: "nothing was done"}
	}
	if opts.LazyPages {
		works, why := lazyMigrationWorks(ctx)
		if !works {
			return nil, &MigrateError{Step: stepHandshake, Err: fmt.Errorf("%w: --lazy-pages: a trial lazy migration of a throwaway process fails on this host (%s); migrate without --lazy-pages", ErrUnsupported, why), State: "the container was not touched"}
		}
		return nil, &MigrateError{Step: stepHandshake, Err: fmt.Errorf("%w: --lazy-pages: lazy pages work on this host, but runcr's migrate does not run a page server over its transport yet; migrate without --lazy-pages", ErrUnsupported), State: "the container was not touched"}
	}
	if opts.PreDumpRounds > 0 {
		if _, err := criuCheckFeature(ctx, "criu", "mem_dirty_track"); err != nil {
			m.note("--pre-dump-rounds %d skipped: this kernel does not track dirty memory (criu check --feature mem_dirty_track fails: no CONFIG_MEM_SOFT_DIRTY), so the whole memory goes in the final dump", opts.PreDumpRounds)
		} else {
			m.note("--pre-dump-rounds %d skipped: the kernel tracks dirty memory, but pre-dumps over the migration stream are not implemented yet; the whole memory goes in the final dump", opts.PreDumpRounds)
		}
	}
	config := container.Config()
	bundle := ""
	for _, label := range config.Labels {
		if b, ok := strings.CutPrefix(label, "bundle="); ok {
			bundle = b
		}
	}
	if bundle == "" {
		return nil, &MigrateError{Step: stepBundle, Err: fmt.Errorf("container %q has no bundle label; runcr can't tell which config.json to send", id), State: "nothing was done"}
	}
	hello, err := m.hello(ctx, bundle, newID)
	if err != nil {
		return nil, &MigrateError{Step: stepHandshake, Err: err, State: "the container was not touched"}
	}

	// The transport.
	stepStart := time.Now()
	cmd, err := transportCommand(opts)
	if err != nil {
		return nil, err
	}
	m.t, err = startTransport(cmd, "the transport ("+opts.Dest+")")
	if err != nil {
		return nil, &MigrateError{Step: stepTransport, Err: err, State: "the container was not touched"}
	}
	m.fw = migrate.NewWriter(m.t.w)
	m.replies = migrate.NewReplyReader(m.t.r)
	// An interruption before the commit closes the stream, which unblocks
	// whatever waits on it; the steps then fail and roll back.
	stopWatch := context.AfterFunc(ctx, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if !m.committed {
			m.t.w.Close()
			m.t.r.Close()
		}
	})
	defer stopWatch()
	interrupted := func(err error) error {
		if ctx.Err() != nil {
			return fmt.Errorf("%w (%w)", ErrInterrupted, context.Cause(ctx))
		}
		return err
	}

	// Handshake: before the container is touched.
	if err := m.fw.JSON(migrate.FrameHello, hello); err != nil {
		return fail(stepHandshake, interrupted(m.transportErr(err)))
	}
	rep, err := m.replies.Expect(stepHandshake)
	if err != nil {
		return fail(stepHandshake, interrupted(m.transportErr(err)))
	}
	m.report.TargetBundle = rep.BundlePath
	if rep.ID != "" {
		// receive --id may name it otherwise.
		m.report.TargetID, newID = rep.ID, rep.ID
	}
	m.step(stepHandshake, stepStart, 0)

	// Bundle: the rootfs while the container runs.
	stepStart = time.Now()
	n, err := m.syncRootfs(stepBundle)
	if err != nil {
		return fail(stepBundle, interrupted(err))
	}
	m.step(stepBundle, stepStart, n)
	if ctx.Err() != nil {
		return fail(stepBundle, interrupted(nil))
	}

	// Freeze: downtime starts.
	stepStart = time.Now()
	m.frozen = freezeForCriu(container)
	if m.frozen == nil {
		return fail(stepFreeze, errors.New("the container could not be frozen (see the debug log); it keeps running"))
	}
	m.frozenAt = time.Now()
	m.step(stepFreeze, stepStart, 0)

	// The rootfs again, now still: only what changed.
	stepStart = time.Now()
	n, err = m.syncRootfs(stepRootfs)
	if err != nil {
		return fail(stepRootfs, interrupted(err))
	}
	m.step(stepRootfs, stepStart, n)

	// Established connections: from the dump on, the source's namespace
	// must acknowledge nothing (it would be lost to the target) and, once
	// killed, reset nothing.
	if opts.TCPEstablished {
		stepStart = time.Now()
		if m.netLock, err = lockSourceNetwork(container); err != nil {
			return fail(stepNetLock, fmt.Errorf("locking the source's network namespace for --tcp-established (it needs nsenter and iptables on this host): %w", err))
		}
		m.step(stepNetLock, stepStart, 0)
	}

	// The final dump, streamed.
	stepStart = time.Now()
	before := m.fw.Bytes
	stream := m.fw.Stream(migrate.FrameArchive)
	copts := NewCheckpointOptions()
	copts.TCPEstablished = opts.TCPEstablished
	copts.FileLocks = opts.FileLocks
	copts.ExtUnixSockets = opts.ExtUnixSockets
	copts.ShellJob = opts.ShellJob
	copts.LeaveRunning = true
	copts.CallerFroze = true
	copts.Export = "the migration stream to " + opts.Dest
	copts.ExportTo = stream
	copts.Compress = opts.Compress
	if _, err := rt.Checkpoint(ctx, id, copts); err != nil {
		var exportErr *ExportError
		if errors.As(err, &exportErr) {
			// The source runs on: its images have no use.
			warnIf(os.RemoveAll(exportErr.ImagePath), "removing %s", exportErr.ImagePath)
			err = exportErr.Err
			if why := m.receiverReason(); why != nil {
				return fail(stepRestore, why)
			}
		}
		return fail(stepDump, interrupted(err))
	}
	if err := stream.Close(); err != nil {
		return fail(stepDump, interrupted(m.transportErr(err)))
	}
	m.step(stepDump, stepStart, m.fw.Bytes-before)

	// The target restores.
	stepStart = time.Now()
	rep, err = m.replies.Expect(stepRestore)
	if err != nil {
		return fail(stepRestore, interrupted(m.transportErr(err)))
	}
	downtime := time.Since(m.frozenAt)
	m.report.TargetPid = rep.Pid
	m.report.TargetStdio = rep.Stdio
	m.step(stepRestore, stepStart, 0)

	// The commit: from here on the target's container is the one.
	stepStart = time.Now()
	m.mu.Lock()
	if ctx.Err() != nil {
		m.mu.Unlock()
		return fail(stepCommit, interrupted(nil))
	}
	m.committed = true
	m.mu.Unlock()
	if err := m.fw.Frame(migrate.FrameCommit, nil); err != nil {
		// The target never heard of the commit: it rolls back on the end
		// of the stream, so the source runs on.
		m.committed = false
		return fail(stepCommit, m.transportErr(err))
	}
	if _, err := m.replies.Expect(stepCommit); err != nil {
		// Whether the receiver saw the commit is unknown: keep both
		// halves as they are and say so.
		m.keepFrozen()
		_ = m.t.close(30 * time.Second)
		return nil, &MigrateError{Step: stepCommit, Err: m.transportErr(err), AfterCommit: true, State: fmt.Sprintf(
			"the commit was sent but not acknowledged: container %q may be running on the target as %q (pid %d, bundle %s), and the source container %q is kept FROZEN, not deleted; check the target (`runcr state %s` there): if it runs, delete the source with `runcr delete -f %s`, else resume it with `runcr resume %s`",
			id, newID, rep.Pid, m.report.TargetBundle, id, newID, id, id)}
	}
	m.step(stepCommit, stepStart, 0)
	if err := m.t.close(30 * time.Second); err != nil {
		logrus.Warnf("migrate: after the commit: %v", err)
	}

	// The source goes.
	stepStart = time.Now()
	if err := m.destroySource(); err != nil {
		return nil, &MigrateError{Step: stepCleanup, Err: err, AfterCommit: true, State: fmt.Sprintf(
			"the migration is committed: container %q runs on the target as %q (pid %d); the source container %q could not be deleted: `runcr delete -f %s` it",
			id, newID, rep.Pid, id, id)}
	}
	m.step(stepCleanup, stepStart, 0)
	m.report.DowntimeSeconds = downtime.Seconds()
	m.report.TotalSeconds = time.Since(m.start).Seconds()
	m.report.BytesSent = m.fw.Bytes
	return m.report, nil
}

// receiverReason is the receiver's own account of a failure that broke
// the stream: the error it sent before exiting, if any.
func (m *migration) receiverReason() error {
	m.t.w.Close()
	timer := time.AfterFunc(30*time.Second, func() { m.t.r.Close() })
	defer timer.Stop()
	if _, err := m.replies.Expect(stepRestore); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, os.ErrClosed) {
		return err
	}
	return nil
}

func (m *migration) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	m.report.Notes = append(m.report.Notes, msg)
	if m.opts.Log != nil {
		fmt.Fprintf(m.opts.Log, "migrate %s: %s\n", m.id, msg)
	}
}

// transportErr names a broken transport as such.
func (m *migration) transportErr(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, os.ErrClosed) || errors.Is(err, syscall.EPIPE) {
		return fmt.Errorf("the transport (%s) ended before the receiver answered: the receiver failed or died (its messages are above) or the connection broke", m.opts.Dest)
	}
	return err
}

// hello gathers what the handshake sends.
func (m *migration) hello(ctx context.Context, bundle, newID string) (*migrate.Hello, error) {
	criuPath, err := exec.LookPath("criu")
	if err != nil {
		return nil, fmt.Errorf("criu is not installed: %w", err)
	}
	v, err := cachedCriuVersion(ctx, criuPath)
	if err != nil {
		return nil, fmt.Errorf("CRIU's version: %w", err)
	}
	dir, err := os.MkdirTemp("", "runcr-migrate-cpuinfo-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if out, err := criuhost.RunProbe(ctx, "criu", "cpuinfo", "dump", "-D", dir); err != nil {
		return nil, fmt.Errorf("criu cpuinfo dump: %w: %s", err, strings.TrimSpace(string(out)))
	}
	cpuinfo, err := os.ReadFile(filepath.Join(dir, "cpuinfo.img"))
	if err != nil {
		return nil, err
	}
	configPath := filepath.Join(bundle, "config.json")
	raw, err := os.ReadFile(configPath)
	if err != nil {
		return nil, fmt.Errorf("the bundle's config.json: %w", err)
	}
	var spec map[string]any
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, fmt.Errorf("%s: %w", configPath, err)
	}
	rootPath := "rootfs"
	if root, ok := spec["root"].(map[string]any); ok {
		if p, ok := root["path"].(string); ok && p != "" {
			if filepath.IsAbs(p) {
				m.rootfs = p
				root["path"] = "rootfs"
				if raw, err = json.Marshal(spec); err != nil {
					return nil, err
				}
			} else {
				rootPath = filepath.Clean(p)
				m.rootfs = filepath.Join(bundle, p)
			}
		}
	}
	if m.rootfs == "" {
		m.rootfs = filepath.Join(bundle, rootPath)
	}
	return &migrate.Hello{
		Protocol:       migrate.ProtocolVersion,
		Runcr:          m.rt.Version,
		CriuVersion:    v,
		Source:         m.id,
		ID:             newID,
		Cpuinfo:        cpuinfo,
		Config:         raw,
		RootfsPath:     rootPath,
		Bundle:         bundle,
		TCPEstablished: m.opts.TCPEstablished,
	}, nil
}

// syncRootfs runs one round of the rootfs synchronisation and returns
// the bytes of file contents sent.
func (m *migration) syncRootfs(step string) (int64, error) {
	entries, err := migrate.List(m.rootfs)
	if err != nil {
		return 0, fmt.Errorf("listing the rootfs %s: %w", m.rootfs, err)
	}
	ls := m.fw.Stream(migrate.FrameListing)
	if err := json.NewEncoder(ls).Encode(entries); err != nil {
		return 0, m.transportErr(err)
	}
	if err := ls.Close(); err != nil {
		return 0, m.transportErr(err)
	}
	rep, err := m.replies.Expect(step)
	if err != nil {
		return 0, m.transportErr(err)
	}
	fs := m.fw.Stream(migrate.FrameFiles)
	n, err := migrate.WriteFiles(fs, m.rootfs, rep.Need)
	if err != nil {
		return n, m.transportErr(err)
	}
	if err := fs.Close(); err != nil {
		return n, m.transportErr(err)
	}
	if _, err := m.replies.Expect(step + "-files"); err != nil {
		return n, m.transportErr(err)
	}
	return n, nil
}

// rollback undoes a migration that failed at step before the commit: the
// receiver is told (or sees the stream end) and given time to clean up,
// the source is thawed where it stopped.
func (m *migration) rollback(step string, err error) error {
	targetState := "the receiver was told to roll back and exited"
	if m.t != nil {
		_ = m.fw.JSON(migrate.FrameAbort, migrate.Abort{Step: step, Reason: err.Error()})
		if cerr := m.t.close(60 * time.Second); cerr != nil {
			var exit *exec.ExitError
			if !errors.As(cerr, &exit) {
				targetState = "the receiver did not exit in time and was killed: check the target for leftovers (" + cerr.Error() + ")"
			}
		}
	} else {
		targetState = "the target was never reached"
	}
	sourceState := fmt.Sprintf("container %q runs on, untouched", m.id)
	m.netLock.unlock()
	m.netLock = nil
	if m.frozen != nil {
		thawUnlessPaused(m.container, false)
		m.frozen.release()
		m.frozen = nil
		if st, serr := m.container.Status(); serr != nil || st != libcontainer.Running {
			sourceState = fmt.Sprintf("container %q could not be thawed (%v %v): resume it with `runcr resume %s`", m.id, st, serr, m.id)
		} else {
			sourceState = fmt.Sprintf("container %q was thawed and runs on where it stopped", m.id)
		}
	}
	return &MigrateError{Step: step, Err: err, State: "rolled back: " + sourceState + "; " + targetState}
}

// keepFrozen releases the thaw guard without thawing: after an
// unacknowledged commit, thawing could leave the container running twice.
func (m *migration) keepFrozen() {
	m.netLock.keep()
	m.netLock = nil
	if m.frozen == nil {
		return
	}
	_, _ = m.frozen.pipe.WriteString("ok\n")
	m.frozen.pipe.Close()
	_ = m.frozen.guard.Wait()
	m.frozen = nil
}

// destroySource kills the frozen source container and deletes it. With
// --tcp-established its network namespace was locked before the dump and
// stays so: its sockets' deaths (RST, FIN) must not reach the peers, whose
// connections now live on the target.
func (m *migration) destroySource() error {
	c := m.container
	err := c.Signal(unix.SIGKILL)
	thawUnlessPaused(c, false)
	if err == nil {
		for i := 0; i < 200; i++ {
			if st, serr := c.Status(); serr != nil || st == libcontainer.Stopped {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		err = c.Destroy()
	}
	if m.netLock != nil {
		if m.netLock.Path != "" {
			m.note("%s", m.netLock.keptNote())
		}
		m.netLock.keep()
		m.netLock = nil
	}
	if m.frozen != nil {
		m.frozen.release()
		m.frozen = nil
	}
	return err
}

// migrationModes says which `runcr migrate` modes this host supports,
// from the rest of the host report.
func migrationModes(r *HostReport) map[string]OptionSupport {
	basic := OptionSupport{Supported: r.CriuError == ""}
	if !basic.Supported {
		basic.Reason = r.CriuError
	}
	modes := map[string]OptionSupport{
		"stop-and-copy (exec:, ssh://)": basic,
		"--tcp-established":             r.Options["tcp-established"],
	}
	pre := OptionSupport{Reason: "the kernel has no soft-dirty memory tracking (criu check --feature mem_dirty_track fails): rounds are skipped"}
	if r.Options["pre-dump"].Supported {
		pre.Reason = "the kernel tracks dirty memory, but runcr does not send pre-dumps over the stream yet: rounds are skipped"
	}
	modes["--pre-dump-rounds"] = pre
	lazy := OptionSupport{Reason: r.Options["lazy-pages"].Reason}
	if r.Options["lazy-pages"].Supported {
		lazy.Reason = "lazy pages work here, but runcr does not run a page server over its transport yet"
	}
	modes["--lazy-pages"] = lazy
	return modes
}
