package libcheckpoint

// What a checkpoint records about itself that the manifest package,
// which imports neither libcontainer nor go-criu, cannot find out.

import (
	"bufio"
	"os"
	"runtime/debug"
	"strings"

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
		ManageCgroupsMode: string(o.ManageCgroupsMode),
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
