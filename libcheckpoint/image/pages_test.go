package image

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/pagemap"
	"github.com/checkpoint-restore/go-criu/v7/magic"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/runcr/runcr/libcheckpoint/internal/errdefs"
)

// pagemapImage encodes a pagemap as CRIU 4 writes it: nr_pages in field 5.
func pagemapImage(t *testing.T, pagesID uint32, entries []struct{ pages, flags uint32 }) []byte {
	t.Helper()
	m := magic.LoadMagic().ByName
	out := binary.LittleEndian.AppendUint32(nil, uint32(m["IMG_COMMON"]))
	out = binary.LittleEndian.AppendUint32(out, uint32(m["PAGEMAP"]))
	add := func(msg proto.Message) {
		b, err := proto.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		out = binary.LittleEndian.AppendUint32(out, uint32(len(b)))
		out = append(out, b...)
	}
	add(&pagemap.PagemapHead{PagesId: proto.Uint32(pagesID)})
	for i, e := range entries {
		pe := &pagemap.PagemapEntry{Vaddr: proto.Uint64(uint64(i) << 20), NrPages: proto.Uint32(0), Flags: proto.Uint32(e.flags)}
		unknown := protowire.AppendTag(nil, 5, protowire.VarintType)
		pe.ProtoReflect().SetUnknown(protowire.AppendVarint(unknown, uint64(e.pages)))
		add(pe)
	}
	return out
}

func TestCheckPagesComplete(t *testing.T) {
	ps := uint64(os.Getpagesize())
	// 3 pages here, 5 in the parent, 2 lazy on a page server.
	entries := []struct{ pages, flags uint32 }{{2, PagemapPresent}, {5, 1 /* PE_PARENT */}, {1, PagemapPresent}, {2, 2 /* PE_LAZY */}}
	img := pagemapImage(t, 7, entries)
	tests := []struct {
		name    string
		pagemap []byte
		pages   int64 // size of pages-7.img; -1 for none
		want    string
	}{
		{"complete", img, int64(3 * ps), ""},
		{"pages elsewhere (page server or parent)", img, -1, ""},
		{"truncated pages", img, int64(3*ps) - 1, "pages-7.img is truncated"},
		{"empty pages", img, 0, "is truncated"},
		{"wrong magic", append([]byte("garbage!"), img[8:]...), 0, "wrong magic"},
		{"cut-short pagemap", img[:len(img)-3], int64(3 * ps), "cut short"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "pagemap-1.img"), tc.pagemap, 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.pages >= 0 {
				if err := os.WriteFile(filepath.Join(dir, "pages-7.img"), make([]byte, tc.pages), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			err := CheckPagesComplete(dir)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, errdefs.ErrInvalidOption) || !strings.Contains(err.Error(), "--image-path") ||
				!strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "intact copy") {
				t.Fatalf("got %v, want errdefs.ErrInvalidOption naming --image-path and %q", err, tc.want)
			}
		})
	}
}
