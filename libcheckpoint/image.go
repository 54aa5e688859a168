package libcheckpoint

import "github.com/runcr/runcr/libcheckpoint/image"

// Decoding CRIU's images lives in package image, the one user of
// go-criu's crit; these names keep the façade's API.

// ErrBadImage: an image file of a checkpoint is missing, truncated or not
// what its name says.
var ErrBadImage = image.ErrBadImage

type (
	// Inspection describes a checkpoint; see image.Inspection.
	Inspection = image.Inspection
	// InspectedProcess is one dumped process.
	InspectedProcess = image.InspectedProcess
	// MemoryUsage is a process's dumped memory.
	MemoryUsage = image.MemoryUsage
	// FilesSummary summarises open file descriptors.
	FilesSummary = image.FilesSummary
	// OpenFile is one open file.
	OpenFile = image.OpenFile
	// OpenSocket is one open socket.
	OpenSocket = image.OpenSocket
	// InspectedNamespace is one namespace of the root process.
	InspectedNamespace = image.InspectedNamespace
	// InspectedMount is one mount as CRIU recorded it.
	InspectedMount = image.InspectedMount
	// EngineInfo is what an engine archive says beyond CRIU's images.
	EngineInfo = image.EngineInfo
	// ArchiveFile is one top-level file of an engine archive.
	ArchiveFile = image.ArchiveFile
	// RootfsDiffSummary describes rootfs-diff.tar.
	RootfsDiffSummary = image.RootfsDiffSummary
	// VerifyReport says what inspect --verify checked.
	VerifyReport = image.VerifyReport
)

// Inspect describes the checkpoint in image directory dir; see
// image.Inspect.
func Inspect(dir string) (*Inspection, error) { return image.Inspect(dir) }

// ReadDumpStats reads CRIU's stats-dump from dir.
func ReadDumpStats(dir string) (*DumpStats, error) { return image.ReadDumpStats(dir) }

// ReadRestoreStats reads CRIU's stats-restore from dir.
func ReadRestoreStats(dir string) (*RestoreStats, error) { return image.ReadRestoreStats(dir) }
