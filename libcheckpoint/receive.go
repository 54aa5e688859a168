package libcheckpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/runcr/runcr/libcheckpoint/archive"
	"github.com/runcr/runcr/libcheckpoint/internal/criuhost"
	"github.com/runcr/runcr/libcheckpoint/internal/fsutil"
	"github.com/runcr/runcr/libcheckpoint/migrate"
)

// ReceiveOptions configure Runtime.Receive, the target end of Migrate.
type ReceiveOptions struct {
	// In carries the source's stream; Out the answers.
	In  io.Reader
	Out io.Writer
	// Bundle is the bundle directory on this host; "" is the source's
	// bundle path. It must not exist, be empty, or hold a config.json and
	// the same rootfs (then only what differs is sent).
	Bundle string
	// ID overrides the id the source asks for.
	ID string
	// StdioLog is where the container's standard output and error go,
	// through a pipe that a logger process (cat) drains; its standard
	// input is a pipe that logger holds open. "" is BUNDLE/ID.stdio.log.
	StdioLog string
	// ImportLimit caps the checkpoint's unpacked size, as for restore.
	ImportLimit string
}

// ReceiveResult says what Receive restored.
type ReceiveResult struct {
	ID       string
	Pid      int
	Bundle   string
	StdioLog string
}

// receiver is one Receive under way, with what it made, for rollback.
type receiver struct {
	rt           *Runtime
	opts         ReceiveOptions
	fr           *migrate.Reader
	rw           *migrate.ReplyWriter
	hello        migrate.Hello
	id           string
	bundle       string
	madeBundle   bool // runcr created the directory
	filledBundle bool // runcr filled an empty directory
	sameBundle   bool
	rootfs       string
	rounds       int
	restored     bool
	logger       *exec.Cmd
	stdioLog     string
	madeStdioLog bool
}

// Receive takes a container that Migrate sends: it answers the handshake,
// receives the bundle and the checkpoint and restores the container,
// detached, with its standard streams on pipes to a log. Until the source
// commits, any failure, an abort or the end of the stream undoes all of
// it: the restored container is killed and deleted, a bundle Receive
// created is removed.
func (rt *Runtime) Receive(ctx context.Context, opts ReceiveOptions) (_ *ReceiveResult, err error) {
	r := &receiver{rt: rt, opts: opts, fr: migrate.NewReader(opts.In), rw: migrate.NewReplyWriter(opts.Out)}
	step := stepHandshake
	defer func() {
		if err != nil {
			r.rollback()
			_ = r.rw.Send(migrate.Reply{Step: step, Error: err.Error()})
			err = fmt.Errorf("receive: step %s failed: %w; rolled back: no container %q and no bundle, image or log file left by runcr", step, err, r.id)
		}
	}()
	// A signal ends ctx; reading the stream does not notice, so close it.
	if c, ok := opts.In.(io.Closer); ok {
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()
	}
	if err := r.fr.Expect(migrate.FrameHello, &r.hello); err != nil {
		return nil, fmt.Errorf("reading the source's hello: %w", err)
	}
	rep, err := r.handshake(ctx)
	if err != nil {
		return nil, err
	}
	if err := r.rw.Send(rep); err != nil {
		return nil, err
	}
	for {
		t, _, err := r.peek()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("the stream ended before the commit: the source gave up or died")
			}
			return nil, interruptedOr(ctx, err)
		}
		switch t {
		case migrate.FrameListing:
			step = stepBundle
			if r.rounds > 0 {
				step = stepRootfs
			}
			if err := r.syncRootfs(step); err != nil {
				return nil, interruptedOr(ctx, err)
			}
			r.rounds++
		case migrate.FrameArchive:
			step = stepRestore
			res, err := r.restore(ctx)
			if err != nil {
				return nil, interruptedOr(ctx, err)
			}
			if err := r.rw.Send(migrate.Reply{Step: stepRestore, OK: true, Pid: res.Pid, Stdio: res.StdioLog}); err != nil {
				return nil, err
			}
			step = stepCommit
			if err := r.fr.Expect(migrate.FrameCommit, nil); err != nil {
				if errors.Is(err, io.EOF) {
					err = errors.New("the stream ended before the commit: the source gave up or died")
				}
				return nil, interruptedOr(ctx, err)
			}
			_ = r.rw.Send(migrate.Reply{Step: stepCommit, OK: true})
			return res, nil
		default:
			return nil, fmt.Errorf("unexpected frame %q", t)
		}
	}
}

func interruptedOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%w)", ErrInterrupted, context.Cause(ctx))
	}
	return err
}

// peek tells the type of the next frame and puts it back for the step's
// own reader.
func (r *receiver) peek() (byte, []byte, error) {
	t, p, err := r.fr.Next()
	if err != nil {
		return 0, nil, err
	}
	r.fr = r.fr.Unread(t, p)
	return t, p, nil
}

func (r *receiver) handshake(ctx context.Context) (migrate.Reply, error) {
	h := r.hello
	if h.Protocol != migrate.ProtocolVersion {
		return migrate.Reply{}, fmt.Errorf("the source speaks migration protocol %d, this runcr (%s) speaks %d: use the same runcr release on both hosts", h.Protocol, r.rt.Version, migrate.ProtocolVersion)
	}
	r.id = h.ID
	if r.opts.ID != "" {
		r.id = r.opts.ID
	}
	if err := validateID(r.id); err != nil {
		return migrate.Reply{}, err
	}
	if _, err := os.Stat(filepath.Join(r.rt.root(), r.id)); err == nil {
		return migrate.Reply{}, fmt.Errorf("%w: %q under --root %s on the target; migrate with --new-id, or delete that container there first", ErrContainerExists, r.id, r.rt.root())
	}
	criuPath, err := exec.LookPath("criu")
	if err != nil {
		return migrate.Reply{}, fmt.Errorf("criu is not installed on the target")
	}
	if out, err := criuhost.RunProbe(ctx, "criu", "check"); err != nil {
		return migrate.Reply{}, fmt.Errorf("`criu check` fails on the target: %s", lastLine(string(out)))
	}
	v, err := cachedCriuVersion(ctx, criuPath)
	if err != nil {
		return migrate.Reply{}, fmt.Errorf("CRIU's version on the target: %w", err)
	}
	if v < h.CriuVersion {
		return migrate.Reply{}, fmt.Errorf("the target's CRIU %s is older than the source's %s, and may not read its images: install CRIU %s or newer on the target",
			formatVersion(v), formatVersion(h.CriuVersion), formatVersion(h.CriuVersion))
	}
	if len(h.Cpuinfo) > 0 {
		dir, err := os.MkdirTemp("", "runcr-receive-cpuinfo-")
		if err != nil {
			return migrate.Reply{}, err
		}
		defer os.RemoveAll(dir)
		if err := os.WriteFile(filepath.Join(dir, "cpuinfo.img"), h.Cpuinfo, 0o600); err != nil {
			return migrate.Reply{}, err
		}
		if out, err := criuhost.RunProbe(ctx, "criu", "cpuinfo", "check", "-D", dir); err != nil {
			return migrate.Reply{}, fmt.Errorf("CPU check: the source's CPU features are not all on the target (`criu cpuinfo check`: %s); migrate between hosts with compatible CPUs", lastLine(string(out)))
		}
	}
	if err := r.prepareBundle(); err != nil {
		return migrate.Reply{}, err
	}
	state := "empty"
	if r.sameBundle {
		state = "same"
	}
	return migrate.Reply{Step: stepHandshake, OK: true, Runcr: r.rt.Version, CriuVersion: v, Bundle: state, BundlePath: r.bundle, ID: r.id}, nil
}

// prepareBundle decides what the bundle directory is: new, empty, or
// holding a config.json and a rootfs (whose sameness the first rootfs
// round checks).
func (r *receiver) prepareBundle() error {
	dir := r.opts.Bundle
	if dir == "" {
		dir = r.hello.Bundle
	}
	abs, err := absPath(dir, "")
	if err != nil || abs == "" {
		return invalid("bundle", "%q: give the bundle directory on the target with --bundle", dir)
	}
	r.bundle = abs
	rel := filepath.Clean(r.hello.RootfsPath)
	if rel == "" || filepath.IsAbs(rel) || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("the source's rootfs path %q is not inside its bundle", r.hello.RootfsPath)
	}
	r.rootfs = filepath.Join(abs, rel)
	entries, err := os.ReadDir(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(abs, 0o711); err != nil {
			return invalid("bundle", "cannot create %s: %v", abs, fsutil.UnwrapPathError(err))
		}
		r.madeBundle = true
	case err != nil:
		return invalid("bundle", "%s: %v", abs, fsutil.UnwrapPathError(err))
	case len(entries) == 0:
		r.filledBundle = true
	default:
		if _, err := os.Stat(filepath.Join(abs, "config.json")); err != nil {
			return invalid("bundle", "%s is not empty and holds no config.json; give a new or empty directory, or a bundle of the same rootfs", abs)
		}
		if fi, err := os.Stat(r.rootfs); err != nil || !fi.IsDir() {
			return invalid("bundle", "%s is not empty and has no rootfs at %s; give a new or empty directory, or a bundle of the same rootfs", abs, r.hello.RootfsPath)
		}
		r.sameBundle = true
		return nil
	}
	if err := os.WriteFile(filepath.Join(abs, "config.json"), r.hello.Config, 0o644); err != nil {
		return err
	}
	return os.Mkdir(r.rootfs, 0o755)
}

// syncRootfs answers one rootfs round: what it needs, then unpacks it.
func (r *receiver) syncRootfs(step string) error {
	var src []migrate.Entry
	raw, err := io.ReadAll(r.fr.Stream(migrate.FrameListing))
	if err != nil {
		return fmt.Errorf("reading the rootfs listing: %w", err)
	}
	if err := json.Unmarshal(raw, &src); err != nil {
		return fmt.Errorf("reading the rootfs listing: %w", err)
	}
	root, err := os.OpenRoot(r.rootfs)
	if err != nil {
		return err
	}
	defer root.Close()
	need, extra, matched, err := migrate.Need(src, root)
	if err != nil {
		return err
	}
	if r.sameBundle && r.rounds == 0 && matched*2 < len(src) {
		return fmt.Errorf("the bundle %s holds another rootfs (only %d of the source's %d files are the same there); give a new or empty directory, or a bundle of the same rootfs", r.bundle, matched, len(src))
	}
	if err := migrate.RemoveExtra(root, extra); err != nil {
		return err
	}
	if err := r.rw.Send(migrate.Reply{Step: step, OK: true, Need: need}); err != nil {
		return err
	}
	limit, _, err := archive.Ceiling(r.rootfs, "")
	if err != nil {
		return err
	}
	files := r.fr.Stream(migrate.FrameFiles)
	n, err := migrate.ReadFiles(files, root, limit)
	if err == nil {
		// tar stops at its end marker; the stream's end frame follows.
		_, err = io.Copy(io.Discard, files)
	}
	if err != nil {
		return fmt.Errorf("receiving the rootfs: %w", err)
	}
	return r.rw.Send(migrate.Reply{Step: step + "-files", OK: true, Received: n})
}

// restore restores the container from the archive stream, detached, its
// stdio on pipes drained into the log.
func (r *receiver) restore(ctx context.Context) (*ReceiveResult, error) {
	r.stdioLog = r.opts.StdioLog
	if r.stdioLog == "" {
		r.stdioLog = filepath.Join(r.bundle, r.id+".stdio.log")
	}
	if _, err := os.Stat(r.stdioLog); errors.Is(err, os.ErrNotExist) {
		r.madeStdioLog = true
	}
	logFile, err := os.OpenFile(r.stdioLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--stdio-log %s: %w", r.stdioLog, err)
	}
	defer logFile.Close()
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer inR.Close()
	defer inW.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer outR.Close()
	defer outW.Close()
	// The logger: drains the container's output into the log and keeps
	// its standard input open. Its own session: it outlives runcr.
	r.logger = exec.Command("/bin/sh", "-c", `exec cat`)
	r.logger.Stdin, r.logger.Stdout, r.logger.Stderr = outR, logFile, logFile
	r.logger.ExtraFiles = []*os.File{inW}
	r.logger.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := r.logger.Start(); err != nil {
		return nil, fmt.Errorf("starting the container's stdio logger: %w", err)
	}
	var restored Restored
	stream := r.fr.Stream(migrate.FrameArchive)
	ropts := RestoreOptions{
		Bundle:      r.bundle,
		Detach:      true,
		Import:      "the migration stream",
		ImportFrom:  stream,
		ImportLimit: r.opts.ImportLimit,
		Stdio:       Stdio{In: inR, Out: outW, Err: outW},
		OnRestored:  func(res Restored) { restored = res },
	}
	if _, err := r.rt.Restore(ctx, r.id, ropts); err != nil {
		return nil, err
	}
	r.restored = true
	// The archive's reader may stop at its end marker, before the
	// stream's end frame.
	if _, err := io.Copy(io.Discard, stream); err != nil {
		return nil, fmt.Errorf("the end of the checkpoint stream: %w", err)
	}
	go func() { _ = r.logger.Wait() }()
	return &ReceiveResult{ID: r.id, Pid: restored.Pid, Bundle: r.bundle, StdioLog: r.stdioLog}, nil
}

// rollback undoes what the receiver made.
func (r *receiver) rollback() {
	if r.restored {
		if c, err := r.rt.load(r.id); err == nil {
			warnIf(killAndDestroy(c), "removing the restored container %q", r.id)
		}
	}
	if r.logger != nil && r.logger.Process != nil {
		_ = r.logger.Process.Kill()
	}
	if r.madeStdioLog && !r.madeBundle && !r.filledBundle {
		os.Remove(r.stdioLog)
	}
	switch {
	case r.madeBundle:
		warnIf(os.RemoveAll(r.bundle), "removing the bundle %s", r.bundle)
	case r.filledBundle:
		removeAllBut(r.bundle, "")
	}
}

// killAndDestroy kills a container's processes and deletes it.
func killAndDestroy(c *libcontainer.Container) error {
	if err := c.Signal(unix.SIGKILL); err != nil {
		logrus.Debugf("killing %q: %v", c.ID(), err)
	}
	thawUnlessPaused(c, false)
	for range 300 {
		if st, err := c.Status(); err != nil || st == libcontainer.Stopped {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return c.Destroy()
}
