package image

import (
	"github.com/checkpoint-restore/go-criu/v7/crit"

	"github.com/runcr/runcr/libcheckpoint/manifest"
)

// ReadDumpStats reads CRIU's stats-dump from dir. It decodes it with
// crit (see readStats): go-criu's stats package registers the same
// protobuf file as crit and the two cannot be linked together.
func ReadDumpStats(dir string) (*manifest.DumpStats, error) {
	st, err := readStats(dir, crit.StatsDump)
	if err != nil {
		return nil, err
	}
	s := st.GetDump()
	if s == nil {
		return nil, badImage(dir, crit.StatsDump, "holds no dump statistics")
	}
	return &manifest.DumpStats{
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
func ReadRestoreStats(dir string) (*manifest.RestoreStats, error) {
	st, err := readStats(dir, crit.StatsRestore)
	if err != nil {
		return nil, err
	}
	s := st.GetRestore()
	if s == nil {
		return nil, badImage(dir, crit.StatsRestore, "holds no restore statistics")
	}
	return &manifest.RestoreStats{
		PagesCompared:   s.GetPagesCompared(),
		PagesSkippedCow: s.GetPagesSkippedCow(),
		ForkingTime:     s.GetForkingTime(),
		RestoreTime:     s.GetRestoreTime(),
		PagesRestored:   s.GetPagesRestored(),
	}, nil
}
