package libcheckpoint

import (
	"os"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/runcr/runcr/libcheckpoint/internal/criuhost"
)

// criuPlan is everything CRIU gets from runcr for one run, made from the
// options (for restore, and from the checkpoint's manifest) by one
// function per direction: planCheckpoint, planRestore, and planProcess
// for what SetupProcess readies once per process. Checkpoint, Restore and
// SetupProcess only carry it out. Every option reaches CRIU through one
// of these channels; what else CRIU sees libcontainer derives from the
// container's config (mounts, namespaces, cgroups), which runcr only
// checks (extmounts.go).
type criuPlan struct {
	// rpc is what libcontainer turns into CRIU's RPC request. Its image
	// and work directories are resolved, and created for a dump, by
	// prepareCheckpointPaths / prepareRestorePaths.
	rpc *libcontainer.CriuOpts
	// configLines are lines of the per-container CRIU configuration file
	// (criuconf.go), for restore options libcontainer has no field for:
	// tcp-close, inherit-fd. CRIU reads the file that the container's
	// org.criu.config annotation names, and only specconv turns the
	// annotation into the label libcontainer reads: libcontainerConfig
	// applies the plan (criuConfig) as it runs specconv, so the two can't
	// be ordered wrong.
	configLines []string
	// env is what the criu child's environment must hold, as KEY=VALUE:
	// PATH (--criu first on it), CRIU_FAULT, CRIU_CONFIG_FILE.
	// libcontainer starts criu from PATH with this process's environment,
	// so only planProcess fills it, and SetupProcess sets it process-wide
	// before any checkpoint or restore.
	env []string
	// parentLink is, for restore, the parent images (relative to the
	// image directory) that the image directory's "parent" link must
	// lead to; restore checks the link or creates it (linkParent).
	// Empty: CRIU follows whatever link the dump left. A dump gets its
	// parent through rpc.ParentImage instead.
	parentLink string
	// release closes the descriptors duplicated for inherit-fd; call it
	// once CRIU is done. Never nil.
	release func()
}

// criuDirs are restore's image and work directories, resolved.
type criuDirs struct {
	images, work string
}

// commonRPC maps the options checkpoint and restore share.
func commonRPC(o CommonOptions, dirs criuDirs) (*libcontainer.CriuOpts, error) {
	mask, err := o.emptyNsMask()
	if err != nil {
		return nil, err
	}
	return &libcontainer.CriuOpts{
		ImagesDirectory:         dirs.images,
		WorkDirectory:           dirs.work,
		TcpEstablished:          o.TCPEstablished,
		ExternalUnixConnections: o.ExtUnixSockets,
		ShellJob:                o.ShellJob,
		FileLocks:               o.FileLocks,
		ManageCgroupsMode:       string(o.ManageCgroupsMode),
		EmptyNs:                 mask,
		AutoDedup:               o.AutoDedup,
		LazyPages:               o.LazyPages,
		StatusFd:                -1,
	}, nil
}

// planCheckpoint is everything a dump with o gives CRIU. The image and
// work directories are o's as given, until prepareCheckpointPaths
// resolves them.
func planCheckpoint(o CheckpointOptions) (*criuPlan, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	c, err := commonRPC(o.CommonOptions, criuDirs{images: o.ImagePath, work: o.WorkPath})
	if err != nil {
		return nil, err
	}
	c.ParentImage = o.ParentPath
	c.LeaveRunning = o.LeaveRunning
	c.TcpSkipInFlight = o.TCPSkipInFlight
	c.LinkRemap = o.LinkRemap
	c.PreDump = o.PreDump
	c.StatusFd = o.StatusFD
	if o.PageServer != "" {
		host, port, err := parsePageServer(o.PageServer)
		if err != nil {
			return nil, err
		}
		c.PageServer = libcontainer.CriuPageServerInfo{Address: host, Port: port}
	}
	return &criuPlan{rpc: c, release: func() {}}, nil
}

// planRestore is everything a restore with o from images with manifest m
// (nil for runc's images) in dirs gives CRIU. The options the dump was
// made with that restore must repeat (m.Options) are added to o's. Each
// descriptor o.PreserveFDs hands over that stands for a pipe or socket
// the init held at checkpoint (m.InheritedFDs) is duplicated with dup,
// to a number CRIU inherits, and named in an inherit-fd line; the plan's
// release closes the duplicates.
func planRestore(o RestoreOptions, m *Manifest, dirs criuDirs, dup func(fd int) (int, error)) (*criuPlan, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if m != nil {
		mo := m.Options
		o.TCPEstablished = o.TCPEstablished || mo.TCPEstablished
		o.ExtUnixSockets = o.ExtUnixSockets || mo.ExtUnixSockets
		o.ShellJob = o.ShellJob || mo.ShellJob
		o.FileLocks = o.FileLocks || mo.FileLocks
	}
	c, err := commonRPC(o.CommonOptions, dirs)
	if err != nil {
		return nil, err
	}
	c.LsmProfile = o.LSMProfile
	c.LsmMountContext = o.LSMMountContext
	p := &criuPlan{rpc: c, parentLink: o.ParentPath, release: func() {}}
	if o.TCPClose {
		p.configLines = append(p.configLines, "tcp-close")
	}
	if m != nil && o.PreserveFDs > 0 {
		lines, closeAll, err := inheritPreservedFDs(m.InheritedFDs, o.PreserveFDs, dup)
		if err != nil {
			return nil, err
		}
		p.configLines = append(p.configLines, lines...)
		p.release = closeAll
	}
	return p, nil
}

// dupHigh duplicates fd to a free number from 1000 on, without
// close-on-exec, for CRIU to inherit (libcontainer's own extra files take
// the low ones).
func dupHigh(fd int) (int, error) {
	return unix.FcntlInt(uintptr(fd), unix.F_DUPFD, 1000)
}

// criuHost is what SetupProcess found out for planProcess.
type criuHost struct {
	// path is PATH as it is.
	path string
	// criuDir is a directory whose "criu" is --criu, or "" without it.
	criuDir string
	// noBreakpoints: hardware breakpoints don't fire here (CRIU would
	// hang with the container frozen) and CRIU_FAULT isn't set already.
	noBreakpoints bool
	// criuConfig is a CRIU configuration runcr owns: the nftables network
	// lock, when a dump locks the network and nftables works, and a dump's
	// cgroup yard (cgroupyard.go); "" for none, or when the user named a
	// configuration in CRIU_CONFIG_FILE.
	criuConfig string
}

// planProcess is the environment the criu child needs on host h.
func planProcess(h criuHost) *criuPlan {
	var env []string
	if h.criuDir != "" {
		env = append(env, "PATH="+h.criuDir+string(os.PathListSeparator)+h.path)
	}
	if h.noBreakpoints {
		env = append(env, "CRIU_FAULT="+criuhost.NoBreakpoints)
	}
	if h.criuConfig != "" {
		env = append(env, "CRIU_CONFIG_FILE="+h.criuConfig)
	}
	return &criuPlan{env: env, release: func() {}}
}

// criuConfig points spec's org.criu.config annotation at the
// configuration file the plan's configLines go to, in the container's
// state directory stateDir, and returns the file, to be written once the
// state directory exists; nil when there are no lines. Only
// libcontainerConfig calls it, right before specconv.
func (p *criuPlan) criuConfig(stateDir string, spec *specs.Spec) *criuConfigFile {
	if len(p.configLines) == 0 {
		return nil
	}
	return newCriuConfigFile(stateDir, spec, p.configLines)
}

// linkParent makes the image directory's "parent" link agree with the
// plan's parentLink (see linkParent).
func (p *criuPlan) linkParent() error {
	if p.parentLink == "" {
		return nil
	}
	return linkParent(p.rpc.ImagesDirectory, p.parentLink)
}
