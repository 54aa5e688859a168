package image

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/cgroup"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/mnt"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pagemap"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pstree"
	"google.golang.org/protobuf/proto"
)

// FuzzImageDecoders: whatever an image holds (huge, zero-filled,
// truncated, garbage entry sizes), the decoders return an error or a
// result, never panic, and stay within the limits.
func FuzzImageDecoders(f *testing.F) {
	m := Magics().ByName
	head := func(magic string) []byte {
		b := binary.LittleEndian.AppendUint32(nil, uint32(m["IMG_COMMON"]))
		return binary.LittleEndian.AppendUint32(b, uint32(m[magic]))
	}
	for _, magic := range []string{"PAGEMAP", "PSTREE", "MNTS", "CGROUP"} {
		f.Add(magic, head(magic), uint32(0))
		f.Add(magic, append(head(magic), make([]byte, 4096)...), uint32(0))        // zero-filled
		f.Add(magic, append(head(magic), 0xff, 0xff, 0xff, 0x7f), uint32(0))       // an entry claiming 2 GiB
		f.Add(magic, append(head(magic), 8, 0, 0, 0, 1, 2), uint32(0))             // truncated entry
		f.Add(magic, head(magic)[:6], uint32(0))                                   // truncated header
		f.Add(magic, append(head(magic), 2, 0, 0, 0, 0x08, 0x07), uint32(64<<20))  // sparse tail
		f.Add(magic, append(head(magic), 4, 0, 0, 0, 0x28, 0x80, 0x80), uint32(3)) // bad varint
	}
	// Every limited image kind, not only those with a decoder of their own
	// (a magic without a file name once made the test write to its dir).
	for magic := range imageLimits {
		f.Add(magic, append(head(magic), 2, 0, 0, 0, 0x08, 0x07), uint32(0))
	}
	f.Fuzz(func(t *testing.T, magic string, data []byte, sparse uint32) {
		if _, ok := imageLimits[magic]; !ok {
			return
		}
		dir := t.TempDir()
		names := map[string]string{"PAGEMAP": "pagemap-1.img", "PSTREE": "pstree.img", "MNTS": "mountpoints-1.img", "CGROUP": "cgroup.img"}
		name, ok := names[magic]
		if !ok {
			name = strings.ToLower(magic) + ".img"
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if sparse > 0 {
			if err := os.Truncate(path, int64(len(data))+int64(sparse)); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		switch magic {
		case "PAGEMAP":
			_ = CheckPagesComplete(dir)
			_, _, _ = pagesInMap(path, 4096)
		case "MNTS":
			_, _ = ExternalMountKeys(dir)
		case "CGROUP":
			_, _ = FreezerStates(dir)
		}
		types := map[string]proto.Message{"PAGEMAP": &pagemap.PagemapEntry{}, "PSTREE": &pstree.PstreeEntry{}, "MNTS": &mnt.MntEntry{}, "CGROUP": &cgroup.CgroupEntry{}}
		if msg, ok := types[magic]; ok {
			_, _ = decodeCriuImage(dir, name, magic, msg)
		}
		_ = scanImage(dir, name, magic, func([]byte) error { return nil })
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("%d bytes (+%d sparse) took %v", len(data), sparse, d)
		}
	})
}
