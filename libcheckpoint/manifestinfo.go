package libcheckpoint

// What a checkpoint records about itself that the manifest package,
// which imports neither libcontainer nor go-criu, cannot find out.

import (
	"bufio"
	"os"
	"runtime/debug"
	"strings"

	"github.com/checkpoint-restore/go-criu/v7/crit"
	"golang.org/x/sys/unix"
)

// manifestOptions records o as a manifest does.
func manifestOptions(o CheckpointOptions) ManifestOptions {
	return ManifestOptions{
		ImagePath:         o.ImagePath,
		WorkPath:          o.WorkPath,
		ParentPath:        o.ParentPath,
		LeaveRunning:      o.LeaveRunning,
		TCPEstablished:    o.TCPEstablished,
		TCPSkipInFlight:   o.TCPSkipInFlight,
		ExtUnixSockets:    o.ExtUnixSockets,
		ShellJob:          o.ShellJob,
		FileLocks:         o.FileLocks,
		LinkRemap:         o.LinkRemap,
		ManageCgroupsMode: o.ManageCgroupsMode,
		EmptyNamespaces:   o.EmptyNamespaces,
		AutoDedup:         o.AutoDedup,
		LazyPages:         o.LazyPages,
		PageServer:        o.PageServer,
		PreDump:           o.PreDump,
	}
}

// libcontainerVersion is the version of runc's module built into this
// binary, from the build information.
func libcontainerVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, d := range bi.Deps {
		if d.Path == "github.com/opencontainers/runc" {
			if d.Replace != nil {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return ""
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// criuVersionFromLog reads the version CRIU prints at the top of its log
// ("Version: 4.2.1 (gitid ...)"), which costs nothing, unlike asking a
// CRIU process.
func criuVersionFromLog(logFile string) string {
	f, err := os.Open(logFile)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for i := 0; i < 20 && sc.Scan(); i++ {
		if _, v, ok := strings.Cut(sc.Text(), "Version: "); ok {
			if sp := strings.IndexByte(v, ' '); sp > 0 {
				v = v[:sp]
			}
			return v
		}
	}
	return ""
}

// ReadDumpStats reads CRIU's stats-dump from dir. It decodes it with
// crit (see readStats): go-criu's stats package registers the same
// protobuf file as crit and the two cannot be linked together.
func ReadDumpStats(dir string) (*DumpStats, error) {
	st, err := readStats(dir, crit.StatsDump)
	if err != nil {
		return nil, err
	}
	s := st.GetDump()
	if s == nil {
		return nil, badImage(dir, crit.StatsDump, "holds no dump statistics")
	}
	return &DumpStats{
		FreezingTime:         s.GetFreezingTime(),
		FrozenTime:           s.GetFrozenTime(),
		MemdumpTime:          s.GetMemdumpTime(),
		MemwriteTime:         s.GetMemwriteTime(),
		PagesScanned:         s.GetPagesScanned(),
		PagesSkippedParent:   s.GetPagesSkippedParent(),
		PagesWritten:         s.GetPagesWritten(),
		PagesLazy:            s.GetPagesLazy(),
		IrmapResolve:         s.GetIrmapResolve(),
		ShpagesScanned:       s.GetShpagesScanned(),
		ShpagesSkippedParent: s.GetShpagesSkippedParent(),
		ShpagesWritten:       s.GetShpagesWritten(),
	}, nil
}

// ReadRestoreStats reads CRIU's stats-restore from dir.
func ReadRestoreStats(dir string) (*RestoreStats, error) {
	st, err := readStats(dir, crit.StatsRestore)
	if err != nil {
		return nil, err
	}
	s := st.GetRestore()
	if s == nil {
		return nil, badImage(dir, crit.StatsRestore, "holds no restore statistics")
	}
	return &RestoreStats{
		PagesCompared:   s.GetPagesCompared(),
		PagesSkippedCow: s.GetPagesSkippedCow(),
		ForkingTime:     s.GetForkingTime(),
		RestoreTime:     s.GetRestoreTime(),
		PagesRestored:   s.GetPagesRestored(),
	}, nil
}
