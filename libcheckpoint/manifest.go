package libcheckpoint

import "github.com/runcr/runcr/libcheckpoint/manifest"

// The manifest and its digests live in package manifest, which imports
// neither libcontainer nor go-criu; these names keep the façade's API.

// ManifestFile is the name of the manifest runcr writes into every image
// directory it makes. runc's image directories have none.
const ManifestFile = manifest.File

// ManifestVersion is the version of the manifest format this package
// writes; it reads this version and refuses newer ones.
const ManifestVersion = manifest.Version

// Manifest states (see manifest.StateIncomplete).
const (
	ManifestIncomplete = manifest.StateIncomplete
	ManifestComplete   = manifest.StateComplete
)

// ErrIncompleteCheckpoint: the image directory holds a checkpoint that did
// not finish.
var ErrIncompleteCheckpoint = manifest.ErrIncomplete

// ErrDamagedImage: an image file differs from what the manifest recorded.
var ErrDamagedImage = manifest.ErrDamagedImage

type (
	// Manifest describes a checkpoint; see manifest.Manifest.
	Manifest = manifest.Manifest
	// ManifestVersions: see manifest.Versions.
	ManifestVersions = manifest.Versions
	// ManifestOptions: see manifest.Options.
	ManifestOptions = manifest.Options
	// DumpStats: see manifest.DumpStats.
	DumpStats = manifest.DumpStats
	// RestoreStats: see manifest.RestoreStats.
	RestoreStats = manifest.RestoreStats
	// ConfigShape: see manifest.ConfigShape.
	ConfigShape = manifest.ConfigShape
	// ImageFile: see manifest.ImageFile.
	ImageFile = manifest.ImageFile
	// DumpReport: see manifest.DumpReport.
	DumpReport = manifest.DumpReport
	// RestoreReport: see manifest.RestoreReport.
	RestoreReport = manifest.RestoreReport
	// FrozenProfile says where a checkpoint's stop went; see
	// manifest.FrozenProfile.
	FrozenProfile = manifest.FrozenProfile
	// ProfilePhase is one phase of a FrozenProfile.
	ProfilePhase = manifest.ProfilePhase
)

// ReadManifest reads dir's manifest. A directory without one (as runc
// makes them) gives (nil, nil).
func ReadManifest(dir string) (*Manifest, error) { return manifest.Read(dir) }

// DecodeManifest parses and checks a manifest.
func DecodeManifest(data []byte) (*Manifest, error) { return manifest.Decode(data) }

// DigestImages hashes every regular image file of dir as a checkpoint
// records them in its manifest.
func DigestImages(dir string) (map[string]ImageFile, error) { return manifest.DigestImages(dir) }

// VerifyImages checks dir's image files against m's digests.
func VerifyImages(dir string, m *Manifest) error { return manifest.VerifyImages(dir, m) }
