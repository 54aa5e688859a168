package libcheckpoint

import (
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/runcr/runcr/libcheckpoint/archive"
	"github.com/runcr/runcr/libcheckpoint/internal/errdefs"
)

// Sentinel errors; every error the package returns for bad input wraps one
// of these (test with errors.Is) and names the offending flag.
var (
	// ErrInvalidOption: an option's value is malformed or contradicts another.
	ErrInvalidOption = errdefs.ErrInvalidOption
	// ErrUnsupported: this host's CRIU or kernel lacks a feature the options need.
	ErrUnsupported = errors.New("not supported on this host")
	// ErrNoSuchContainer: no container has the id under the root.
	ErrNoSuchContainer = errors.New("no such container")
	// ErrContainerExists: restore's id is taken under the root.
	ErrContainerExists = errors.New("container already exists")
	// ErrContainerState: the container's state forbids the operation.
	ErrContainerState = errors.New("container is not running")
	// ErrBusy: another runcr is checkpointing or restoring the container.
	ErrBusy = errors.New("container is busy")
	// ErrCRIU: CRIU itself reported a failure; the error quotes its log.
	ErrCRIU = errors.New("criu failed")
)

// CgroupMode is how CRIU manages the container's cgroups
// (--manage-cgroups-mode, see criu(8)), as go-runc's CgroupMode; ""
// leaves it to CRIU (soft).
type CgroupMode string

// The modes CRIU knows.
const (
	// CgroupModeSoft restores the cgroup properties only of cgroups
	// CRIU creates (CRIU's default).
	CgroupModeSoft CgroupMode = "soft"
	// CgroupModeFull restores all cgroup properties.
	CgroupModeFull CgroupMode = "full"
	// CgroupModeStrict is full, and fails when a cgroup is already there.
	CgroupModeStrict CgroupMode = "strict"
	// CgroupModeIgnore leaves cgroups alone: not dumped, not restored.
	CgroupModeIgnore CgroupMode = "ignore"
)

// Cgroup management modes accepted by --manage-cgroups-mode.
var cgroupModes = []CgroupMode{CgroupModeSoft, CgroupModeFull, CgroupModeStrict, CgroupModeIgnore}

// Namespaces that --empty-ns may name. runc does not manage network
// devices, so CRIU only may be told to leave the network namespace empty.
var emptyNamespaces = map[specs.LinuxNamespaceType]uint32{
	specs.NetworkNamespace: unix.CLONE_NEWNET,
}

// CommonOptions are the options checkpoint and restore share; the ones
// marked "must match" have to be given to restore as they were to dump.
type CommonOptions struct {
	// ImagePath is the directory holding CRIU's image files
	// (--image-path). Empty means "checkpoint" in the working directory.
	ImagePath string
	// WorkPath is where CRIU writes its log (dump.log/restore.log) and
	// other work files (--work-path). Empty means the image directory.
	WorkPath string
	// TCPEstablished checkpoints/restores established TCP connections
	// (--tcp-established; must match).
	TCPEstablished bool
	// ExtUnixSockets allows unix sockets connected to peers outside the
	// container (--ext-unix-sk; must match).
	ExtUnixSockets bool
	// ShellJob allows a process tree that is a shell job, i.e. whose
	// session or process group leader is outside the container (--shell-job).
	ShellJob bool
	// FileLocks checkpoints/restores held file locks (--file-locks; must match).
	FileLocks bool
	// ManageCgroupsMode tells CRIU how to handle cgroups: one of the
	// CgroupMode constants, or "" for CRIU's default (--manage-cgroups-mode).
	ManageCgroupsMode CgroupMode
	// EmptyNamespaces lists namespaces CRIU creates but does not restore
	// the properties of; only "network" is supported (--empty-ns).
	EmptyNamespaces []string
	// AutoDedup punches holes in the parent images' pages as they are
	// dumped or restored, to save space (--auto-dedup).
	AutoDedup bool
	// LazyPages dumps/restores memory lazily through userfaultfd
	// (--lazy-pages).
	LazyPages bool
}

// CheckpointOptions configure Checkpoint. The zero value (with StatusFD
// set to -1 by NewCheckpointOptions) behaves as `runc checkpoint`.
type CheckpointOptions struct {
	CommonOptions
	// ParentPath is the image directory of a previous pre-dump, relative
	// to ImagePath (--parent-path). It must exist.
	ParentPath string
	// LeaveRunning keeps the container running after a successful dump
	// (--leave-running); otherwise it is destroyed.
	LeaveRunning bool
	// TCPSkipInFlight skips TCP connections still in the handshake
	// instead of failing (--tcp-skip-in-flight).
	TCPSkipInFlight bool
	// LinkRemap lets CRIU link unlinked-but-open files back in place
	// (--link-remap).
	LinkRemap bool
	// StatusFD is a file descriptor that receives "\0" once the lazy-pages
	// page server is ready (--status-fd); -1 for none.
	StatusFD int
	// PageServer is ADDRESS:PORT of a `criu page-server` that receives
	// the memory pages instead of the image directory (--page-server).
	PageServer string
	// PreDump dumps memory only, for a later iterative dump, and leaves
	// the container running (--pre-dump). Needs soft-dirty tracking.
	PreDump bool
	// Export also writes the checkpoint (images, manifest and the bundle's
	// config.json) as one archive file, mode 0600, at this path
	// (--export). Without ImagePath the images go to a private temporary
	// directory under $TMPDIR that is removed once the archive is written.
	Export string
	// ExportTo, if set, receives the archive instead of a file (--export
	// -: standard output); Export then only names it in messages. An
	// existing Export that is not a regular file (a device, a FIFO,
	// /dev/stdout) is written through, never replaced.
	ExportTo io.Writer
	// Compress is the archive's compression: CompressZstd (the default,
	// also for ""), CompressGzip or CompressNone (--compress). Only with
	// Export.
	Compress Compression
	// Progress, if set, receives a progress line (rewritten in place with
	// carriage returns) while a long export runs; the command sets it to
	// standard error when that is a terminal.
	Progress io.Writer
	// CallerFroze says the caller froze the running container for this
	// checkpoint (Migrate does, to keep it frozen until the target runs):
	// the images record it thawed, as for a container runcr froze, and
	// with LeaveRunning it stays frozen for the caller to thaw or destroy.
	CallerFroze bool
}

// NewCheckpointOptions returns the options `runc checkpoint` uses when no
// flag is given.
func NewCheckpointOptions() CheckpointOptions {
	return CheckpointOptions{StatusFD: -1}
}

// RestoreOptions configure Restore.
type RestoreOptions struct {
	CommonOptions
	// Bundle is the OCI bundle directory holding config.json (--bundle);
	// empty means the working directory.
	Bundle string
	// Detach returns once the container is restored instead of waiting for
	// it to exit (--detach).
	Detach bool
	// PidFile receives the restored init's host pid, written atomically
	// (--pid-file).
	PidFile string
	// ConsoleSocket is an AF_UNIX socket that receives the pty master of a
	// terminal container (--console-socket).
	ConsoleSocket string
	// NoSubreaper keeps runcr from becoming a child subreaper while it waits
	// (--no-subreaper): for the caller that waits (see Wait).
	NoSubreaper bool
	// NoPivot restores without pivot_root, for a rootfs on a ramdisk
	// (--no-pivot).
	NoPivot bool
	// LSMProfile is the LSM profile (TYPE:NAME, TYPE apparmor or selinux)
	// the restored processes get (--lsm-profile).
	LSMProfile string
	// LSMMountContext is the LSM mount context for restored mounts
	// (--lsm-mount-context).
	LSMMountContext string
	// TCPClose restores established TCP connections closed, so the
	// application sees them fail instead of resuming them (--tcp-close;
	// Podman's restore --tcp-close).
	TCPClose bool
	// NoNewKeyring keeps the container from getting a new session keyring
	// (--no-new-keyring, as conmon passes it).
	NoNewKeyring bool
	// PreserveFDs is the number of file descriptors after stdio (3, 4, ...)
	// the caller hands over (--preserve-fds, as Podman passes it). They
	// must be open. Each one that the manifest says was a pipe or socket
	// of the container's init at checkpoint replaces it (CRIU inherit-fd).
	PreserveFDs int
	// ParentPath names the images of the pre-dump the checkpoint was made
	// on, relative to ImagePath, as go-runc passes it (--parent-path).
	// CRIU finds them through the image directory's "parent" link, which
	// restore checks or creates.
	ParentPath string
	// Import restores from an archive that checkpoint's Export wrote
	// (--import). It is unpacked into ImagePath, which must then be empty
	// or not exist and is kept; without ImagePath into a private temporary
	// directory under $TMPDIR, removed once CRIU has restored (or failed;
	// then only CRIU's restore.log is kept there, and the error names it).
	Import string
	// ImportFrom, if set, is read for the archive instead of a file
	// (--import -: standard input); Import then only names it in messages.
	ImportFrom io.Reader
	// ImportLimit caps what an import may unpack (--import-limit,
	// RUNCR_IMPORT_LIMIT): bytes, or a number with a K, M, G or T suffix
	// (powers of 1024); "" is DefaultImportLimit. The target's free space
	// minus a reserve caps it further (see importCeiling).
	ImportLimit string
	// Progress, if set, receives a progress line (rewritten in place with
	// carriage returns) while a long import runs.
	Progress io.Writer
	// Stdio are the restored container's standard input, output and
	// error (in the foreground without a terminal, where its output is
	// copied to); nil ones are this process's.
	Stdio Stdio
	// OnRestored, when set, is called once CRIU has restored the
	// container and the pid file is written: before Restore returns when
	// detached, before it starts waiting for the container in the
	// foreground (so a caller can report on the restore while the
	// container runs). It runs on Restore's goroutine and should not
	// block.
	OnRestored func(Restored)
	// Wait, when set, waits for a container restored in the foreground
	// (not Detach) and returns its init's exit status (128+signal when
	// killed). Forwarding signals, subreaping, reaping and copying the
	// container's stdio (RestoredContainer) are the caller's: runcr's
	// command line copies, forwards every signal and reaps, as runc does.
	// Without it, the container gets Stdio's files themselves and Restore
	// just waits for the init, forwarding nothing (a container with a
	// terminal needs it).
	Wait func(*RestoredContainer) (int, error)
}

func invalid(flag, format string, args ...any) error {
	return errdefs.Invalid(flag, format, args...)
}

// OptionError is an option refused for what it says: Option is the
// option as runc spells it (--image-path), Msg why and what to do.
// It is an ErrInvalidOption. A caller with its own names for the options
// (runcr's lxc-checkpoint dialect) renames Option and keeps Msg.
type OptionError = errdefs.OptionError

// Validate checks the options that both commands share.
func (o *CommonOptions) Validate() error {
	if o.ManageCgroupsMode != "" && !slices.Contains(cgroupModes, o.ManageCgroupsMode) {
		modes := make([]string, len(cgroupModes))
		for i, m := range cgroupModes {
			modes[i] = string(m)
		}
		return invalid("manage-cgroups-mode", "%q is not one of %s", o.ManageCgroupsMode, strings.Join(modes, ", "))
	}
	if _, err := o.emptyNsMask(); err != nil {
		return err
	}
	return nil
}

// emptyNsMask returns the CLONE_NEW* mask of namespaces CRIU must leave
// empty. The network namespace is always in it: runc doesn't restore
// network devices, so libcontainer/runc always pass it.
func (o *CommonOptions) emptyNsMask() (uint32, error) {
	mask := uint32(unix.CLONE_NEWNET)
	for _, ns := range o.EmptyNamespaces {
		bit, ok := emptyNamespaces[specs.LinuxNamespaceType(ns)]
		if !ok {
			return 0, invalid("empty-ns", "namespace %q is not supported; only %q is", ns, specs.NetworkNamespace)
		}
		mask |= bit
	}
	return mask, nil
}

// Validate checks the checkpoint options for syntax and consistency; it
// does not touch the file system or the container.
func (o *CheckpointOptions) Validate() error {
	if err := o.CommonOptions.Validate(); err != nil {
		return err
	}
	if o.ParentPath != "" && filepath.IsAbs(o.ParentPath) {
		return invalid("parent-path", "%q must be relative to --image-path", o.ParentPath)
	}
	if o.PageServer != "" {
		if _, _, err := parsePageServer(o.PageServer); err != nil {
			return err
		}
	}
	if o.StatusFD < -1 {
		return invalid("status-fd", "%d is not a file descriptor", o.StatusFD)
	}
	return o.validateExport()
}

// validateExport checks --export and --compress against the options
// whose images an archive cannot hold.
func (o *CheckpointOptions) validateExport() error {
	if err := archive.ValidCompression(o.Compress); err != nil {
		return err
	}
	if o.Export == "" {
		if o.Compress != "" {
			return invalid("compress", "only applies to --export")
		}
		return nil
	}
	why := ""
	switch {
	case o.PreDump:
		why = "--pre-dump writes memory only, for a later checkpoint; export that one"
	case o.ParentPath != "":
		why = "--parent-path makes images that need their parent's; an archive holds one image directory, so checkpoint without it"
	case o.LazyPages:
		why = "--lazy-pages keeps the memory pages out of the images"
	case o.PageServer != "":
		why = "--page-server sends the memory pages elsewhere, not into the images"
	case strings.HasSuffix(o.Export, "/"):
		why = fmt.Sprintf("%q names a directory; give a file name", o.Export)
	}
	if why != "" {
		return invalid("export", "%s", why)
	}
	return nil
}

// Validate checks the restore options for syntax and consistency.
func (o *RestoreOptions) Validate() error {
	if err := o.CommonOptions.Validate(); err != nil {
		return err
	}
	if o.ParentPath != "" && filepath.IsAbs(o.ParentPath) {
		return invalid("parent-path", "%q must be relative to --image-path", o.ParentPath)
	}
	if o.PreserveFDs < 0 {
		return invalid("preserve-fds", "%d is not a number of file descriptors", o.PreserveFDs)
	}
	if o.ImportLimit != "" {
		if _, err := ParseSize(o.ImportLimit); err != nil {
			return invalid("import-limit", "%v", err)
		}
	}
	if o.Import != "" {
		switch {
		case o.LazyPages:
			return invalid("import", "--lazy-pages needs a lazy-pages daemon serving the images, which an archive cannot provide")
		case o.ParentPath != "":
			return invalid("import", "an archive holds one image directory, without parent images; drop --parent-path")
		}
	}
	if o.LSMProfile != "" {
		typ, name, ok := strings.Cut(o.LSMProfile, ":")
		if !ok || name == "" || (typ != "apparmor" && typ != "selinux") {
			return invalid("lsm-profile", "%q is not TYPE:NAME with TYPE apparmor or selinux", o.LSMProfile)
		}
	}
	return nil
}

// parsePageServer splits ADDRESS:PORT as runc does, with a named error.
func parsePageServer(s string) (string, int32, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" || port == "" {
		return "", 0, invalid("page-server", "%q is not ADDRESS:PORT", s)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return "", 0, invalid("page-server", "port %q is not a number from 1 to 65535", port)
	}
	return host, int32(n), nil
}
