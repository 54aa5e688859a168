package libcheckpoint

import (
	"io"

	"github.com/runcr/runcr/libcheckpoint/archive"
)

// Archives live in package archive, which imports neither libcontainer
// nor go-criu; these names keep the façade's API.

// Compression is how an archive is compressed.
type Compression = archive.Compression

// Compressions.
const (
	CompressZstd = archive.CompressZstd
	CompressGzip = archive.CompressGzip
	CompressNone = archive.CompressNone
)

// ArchiveConfigFile is the name of the bundle's config.json in an archive.
const ArchiveConfigFile = archive.ConfigFile

// ArchiveSizesFile is the size declaration that leads runcr's archives.
const ArchiveSizesFile = archive.SizesFile

// ArchiveSizes is the content of ArchiveSizesFile.
type ArchiveSizes = archive.Sizes

// DefaultImportLimit is what an import unpacks at most unless told.
const DefaultImportLimit = archive.DefaultImportLimit

// ErrBadArchive: an archive is not one runcr can import.
var ErrBadArchive = archive.ErrBad

// ImportArchive unpacks a runcr archive into targetDir; see archive.Import.
func ImportArchive(r io.Reader, targetDir string) (*Manifest, error) {
	return archive.Import(r, targetDir)
}

// ImportArchiveLimit is ImportArchive within limit; see archive.ImportLimit.
func ImportArchiveLimit(r io.Reader, targetDir, limit string) (*Manifest, error) {
	return archive.ImportLimit(r, targetDir, limit)
}

// DetectCompression tells an archive's compression from its first bytes.
func DetectCompression(head []byte) (Compression, error) { return archive.DetectCompression(head) }

// ParseSize parses a size such as 8G or 512M (--import-limit).
func ParseSize(s string) (int64, error) { return archive.ParseSize(s) }
