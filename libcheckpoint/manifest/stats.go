package manifest

// DumpReport is CRIU's dump statistics with times in milliseconds.
type DumpReport struct {
	FreezingMs         float64 `json:"freezing_ms"`
	FrozenMs           float64 `json:"frozen_ms"`
	MemdumpMs          float64 `json:"memdump_ms"`
	MemwriteMs         float64 `json:"memwrite_ms"`
	PagesScanned       uint64  `json:"pages_scanned"`
	PagesSkippedParent uint64  `json:"pages_skipped_parent"`
	PagesWritten       uint64  `json:"pages_written"`
	PagesLazy          uint64  `json:"pages_lazy,omitempty"`
	// Profile is where the time the container was stopped went
	// (profile.go), when the checkpoint recorded it.
	Profile *FrozenProfile `json:"frozen_profile,omitempty"`
}

// Report gives s with times in milliseconds.
func (s *DumpStats) Report() *DumpReport {
	return &DumpReport{
		FreezingMs:         usToMs(s.FreezingTime),
		FrozenMs:           usToMs(s.FrozenTime),
		MemdumpMs:          usToMs(s.MemdumpTime),
		MemwriteMs:         usToMs(s.MemwriteTime),
		PagesScanned:       s.PagesScanned,
		PagesSkippedParent: s.PagesSkippedParent,
		PagesWritten:       s.PagesWritten,
		PagesLazy:          s.PagesLazy,
		Profile:            s.Profile,
	}
}

// RestoreReport is CRIU's restore statistics with times in milliseconds.
type RestoreReport struct {
	ForkingMs       float64 `json:"forking_ms"`
	RestoreMs       float64 `json:"restore_ms"`
	PagesRestored   uint64  `json:"pages_restored"`
	PagesCompared   uint64  `json:"pages_compared"`
	PagesSkippedCow uint64  `json:"pages_skipped_cow"`
}

// Report gives s with times in milliseconds.
func (s *RestoreStats) Report() *RestoreReport {
	return &RestoreReport{
		ForkingMs:       usToMs(s.ForkingTime),
		RestoreMs:       usToMs(s.RestoreTime),
		PagesRestored:   s.PagesRestored,
		PagesCompared:   s.PagesCompared,
		PagesSkippedCow: s.PagesSkippedCow,
	}
}

func usToMs(us uint32) float64 { return float64(us) / 1000 }
