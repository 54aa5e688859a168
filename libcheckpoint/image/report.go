package image

import (
	"time"

	"github.com/runcr/runcr/libcheckpoint/archive"
)

// What inspect reports beyond CRIU's images: an engine archive's own
// files, and what --verify checked. The façade fills them in.

// ArchiveFile is a top-level file of an engine archive.
type ArchiveFile struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// EngineInfo is what an engine archive says beyond CRIU's images: which
// engine made it, of which container, and the container's file system
// changes.
type EngineInfo struct {
	// Engine is "Podman", "CRI-O" or "containerd" (told by spec.dump's
	// annotations), or "" when spec.dump is missing or says neither.
	Engine string `json:"engine"`
	// EngineVersion is the engine's version when the archive records it
	// (the org.criu.checkpoint.engine.version annotation).
	EngineVersion string `json:"engine_version,omitempty"`
	// ContainerID, ContainerName and Image are config.dump's id, name and
	// rootfsImageName; containerd's CRI names the container in
	// spec.dump's annotations.
	ContainerID   string `json:"container_id,omitempty"`
	ContainerName string `json:"container_name,omitempty"`
	Image         string `json:"image,omitempty"`
	// PodName and PodNamespace are the Kubernetes pod's (CRI archives),
	// or Podman's pod id.
	PodName      string `json:"pod_name,omitempty"`
	PodNamespace string `json:"pod_namespace,omitempty"`
	// Runtime is the OCI runtime the engine ran the container with, and
	// RuntimeVersion its version when recorded (annotation, or runcr's
	// manifest when runcr was the runtime).
	Runtime        string `json:"runtime,omitempty"`
	RuntimeVersion string `json:"runtime_version,omitempty"`
	// CRIUVersion is the version of CRIU that dumped (annotation,
	// dump.log, or runcr's manifest), "" when the archive doesn't say.
	CRIUVersion string `json:"criu_version,omitempty"`
	// Created is when the container was created; Checkpointed when it
	// was checkpointed (config.dump, else checkpoint/inventory.img's
	// time in the archive).
	Created      *time.Time `json:"created,omitempty"`
	Checkpointed *time.Time `json:"checkpointed,omitempty"`
	// CheckpointBytes is the size of CRIU's images (checkpoint/).
	CheckpointBytes int64 `json:"checkpoint_bytes"`
	// RootfsDiff summarises rootfs-diff.tar; nil when there is none.
	RootfsDiff *RootfsDiffSummary `json:"rootfs_diff"`
	// DeletedFiles are the paths deleted.files lists (the first 200).
	DeletedFiles      []string `json:"deleted_files"`
	DeletedFilesCount int      `json:"deleted_files_count"`
	// Files are the archive's top-level files.
	Files []ArchiveFile `json:"files"`
	// Skipped are entries of other directories, not read (the first 200).
	Skipped []string `json:"skipped,omitempty"`
}

// RootfsDiffSummary describes rootfs-diff.tar.
type RootfsDiffSummary struct {
	// Bytes is the size of rootfs-diff.tar in the archive;
	// Compression how it is compressed (containerd's is gzip).
	Bytes       int64               `json:"bytes"`
	Compression archive.Compression `json:"compression"`
	// Entries counts its entries, Files the regular files among them,
	// ContentBytes their size. Whiteouts are deletions in the overlay
	// style (.wh.NAME, .wh..wh..opq) that containerd's diff holds.
	Entries      int   `json:"entries"`
	Files        int   `json:"files"`
	Dirs         int   `json:"dirs"`
	Symlinks     int   `json:"symlinks"`
	HardLinks    int   `json:"hard_links"`
	Whiteouts    int   `json:"whiteouts"`
	ContentBytes int64 `json:"content_bytes"`
	// Paths are the paths it changes (the first 200).
	Paths []string `json:"paths"`
}

// VerifyReport says what inspect --verify checked.
type VerifyReport struct {
	// Files and Bytes are the image files checked and their total size.
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
	// Algorithm is the digests', DigestAlgorithm ("xxh3-16m"), or
	// "xxh64" for manifests written before it.
	Algorithm string `json:"algorithm"`
}
