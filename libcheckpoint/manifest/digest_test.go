package manifest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/zeebo/xxh3"
	"golang.org/x/sys/unix"

	"github.com/runcr/runcr/libcheckpoint/internal/testutil"
)

// BenchmarkDigestImages: hashing (as a checkpoint does) and verifying (as
// a restore does) 1 GiB of images on tmpfs (/dev/shm when there is one);
// tests/bench's BenchmarkDigest sets the same against whole checkpoints
// and restores.
func BenchmarkDigestImages(b *testing.B) {
	base := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		base = "/dev/shm"
	}
	dir, err := os.MkdirTemp(base, "runcr-digest-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	page := make([]byte, 1<<20)
	for i := range page {
		page[i] = byte(i * 7)
	}
	f, err := os.Create(filepath.Join(dir, "pages-1.img"))
	if err != nil {
		b.Fatal(err)
	}
	for i := range 1024 {
		page[0] = byte(i)
		if _, err := f.Write(page); err != nil {
			b.Fatal(err)
		}
	}
	f.Close()
	for _, n := range []string{"core-1.img", "mm-1.img", "pagemap-1.img", "inventory.img"} {
		if err := os.WriteFile(filepath.Join(dir, n), page[:4096], 0o600); err != nil {
			b.Fatal(err)
		}
	}
	m := &Manifest{}
	b.SetBytes(1<<30 + 4*4096)
	b.Run("hash", func(b *testing.B) {
		b.SetBytes(1<<30 + 4*4096)
		for b.Loop() {
			if m.Images, err = DigestImages(dir); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verify", func(b *testing.B) {
		b.SetBytes(1<<30 + 4*4096)
		for b.Loop() {
			if err := VerifyImages(dir, m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// refDigest is the digest by chunks as its definition in digest.go says,
// computed the plain way.
func refDigest(data []byte) string {
	var sums []byte
	for off := 0; off < len(data); off += digestChunk {
		sums = binary.LittleEndian.AppendUint64(sums, xxh3.Hash(data[off:min(len(data), off+digestChunk)]))
	}
	return fmt.Sprintf("xxh3-64m:%016x", xxh3.Hash(sums))
}

// testData is n bytes that differ from page to page.
func testData(n int) []byte {
	data := make([]byte, n)
	x := uint64(0x9e3779b97f4a7c15)
	for i := 0; i+8 <= n; i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(data[i:], x)
	}
	return data
}

// The digest is the one its definition gives, read or mapped, whole
// chunks or a last partial one, and as an import hashes the stream.
func TestDigestDefinition(t *testing.T) {
	if got := refDigest(nil); got != "xxh3-64m:2d06800538d394c2" {
		t.Fatalf("empty: %s, want XXH3-64 of nothing", got) // the reference's test vector
	}
	const mib = 1 << 20
	const c = digestChunk
	sizes := []int{0, 1, 4095, 4096, mib - 1, mib, 3*mib + 17, c, c + 1, 2*c - 4096, 2*c + 123}
	dir := t.TempDir()
	all := testData(2*c + 123)
	want := map[string]string{}
	for _, n := range sizes {
		name := fmt.Sprintf("pages-%d.img", n)
		if err := os.WriteFile(filepath.Join(dir, name), all[:n], 0o600); err != nil {
			t.Fatal(err)
		}
		want[name] = refDigest(all[:n])
	}
	got, err := DigestImages(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, w := range want {
		if got[name].Digest != w {
			t.Errorf("%s: %s, want %s", name, got[name].Digest, w)
		}
		// Streamed in odd pieces, as an import writes it.
		data, _ := os.ReadFile(filepath.Join(dir, name))
		h := NewImageHasher()
		for len(data) > 0 {
			k := min(len(data), 1+len(data)%(3*mib+5))
			if _, err := h.Write(data[:k]); err != nil {
				t.Fatal(err)
			}
			data = data[k:]
		}
		if f := h.File(); f.Digest != w || f.Size != got[name].Size {
			t.Errorf("%s streamed: %+v, want %s", name, f, w)
		}
	}
	// With a hole it is read, not mapped, and the same.
	sparse := filepath.Join(dir, "pages-sparse.img")
	f, err := os.Create(sparse)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(all[:4*mib], 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(all[c:c+4*mib], c); err != nil {
		t.Fatal(err)
	}
	f.Close()
	data, _ := os.ReadFile(sparse)
	hf, _, err := openHashed(dir, "pages-sparse.img", nil)
	if err != nil {
		t.Fatal(err)
	}
	hf.f.Close()
	if fd, _ := os.Open(sparse); fd != nil {
		if hole, _ := unix.Seek(int(fd.Fd()), 0, unix.SEEK_HOLE); hole < int64(len(data)) && hf.mapped {
			t.Errorf("a file with a hole at %d is mapped", hole)
		}
		fd.Close()
	}
	if got, err := DigestImages(dir); err != nil || got["pages-sparse.img"].Digest != refDigest(data) {
		t.Errorf("sparse: %+v, %v; want %s", got["pages-sparse.img"], err, refDigest(data))
	}
}

// Any 4096 bytes flipped are found: at the start, middle and end of a
// chunk, across two, in the last partial chunk, in a small (read) file.
func TestVerifyFindsEveryFlippedPage(t *testing.T) {
	dir := t.TempDir()
	const c = digestChunk
	big, small := testData(2*c+c/2+8192), testData(100000)
	if err := os.WriteFile(filepath.Join(dir, "pages-1.img"), big, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "core-1.img"), small, 0o600); err != nil {
		t.Fatal(err)
	}
	m := &Manifest{}
	var err error
	if m.Images, err = DigestImages(dir); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		file string
		off  int64
	}{
		{"pages-1.img", 0},
		{"pages-1.img", c/2 + 1234},
		{"pages-1.img", c - 4096},
		{"pages-1.img", c - 2048}, // across the first two chunks
		{"pages-1.img", c},
		{"pages-1.img", 2*c + 4096},
		{"pages-1.img", 2*c + c/2 + 8192 - 4096}, // the end of the last, partial chunk
		{"core-1.img", 0},
		{"core-1.img", 100000 - 4096},
	}
	for _, tc := range cases {
		path := filepath.Join(dir, tc.file)
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		page := make([]byte, 4096)
		if _, err := f.ReadAt(page, tc.off); err != nil {
			t.Fatal(err)
		}
		flipped := make([]byte, 4096)
		for i := range page {
			flipped[i] = page[i] ^ 0xff
		}
		if _, err := f.WriteAt(flipped, tc.off); err != nil {
			t.Fatal(err)
		}
		err = VerifyImages(dir, m)
		if !errors.Is(err, ErrDamagedImage) || !strings.Contains(err.Error(), path+": its content changed") {
			t.Errorf("%s flipped at %d: %v", tc.file, tc.off, err)
		}
		// One bit is found too.
		if _, err := f.WriteAt(page, tc.off); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte{page[7] ^ 0x10}, tc.off+7); err != nil {
			t.Fatal(err)
		}
		if err := VerifyImages(dir, m); !errors.Is(err, ErrDamagedImage) {
			t.Errorf("%s one bit flipped at %d: %v", tc.file, tc.off+7, err)
		}
		if _, err := f.WriteAt(page, tc.off); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if err := VerifyImages(dir, m); err != nil {
			t.Fatalf("restored: %v", err)
		}
	}
	// Two chunks swapped: each intact, in the wrong place.
	swapped := slices.Concat(big[c:2*c], big[:c], big[2*c:])
	if err := os.WriteFile(filepath.Join(dir, "pages-1.img"), swapped, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := VerifyImages(dir, m); !errors.Is(err, ErrDamagedImage) || !strings.Contains(err.Error(), "content changed") {
		t.Errorf("chunks swapped: %v", err)
	}
}

// A file truncated while it is mapped: an error naming it, not SIGBUS.
func TestDigestFileShrinksWhileMapped(t *testing.T) {
	const c = digestChunk
	dir := t.TempDir()
	path := filepath.Join(dir, "pages-1.img")
	if err := os.WriteFile(path, testData(2*c+c/2), 0o600); err != nil {
		t.Fatal(err)
	}
	hf, _, err := openHashed(dir, "pages-1.img", nil)
	if err != nil || !hf.mapped {
		t.Fatalf("not mapped: %v", err)
	}
	hf.sums = make([]uint64, 3)
	if err := os.Truncate(path, c+c/4); err != nil {
		t.Fatal(err)
	}
	// Chunk 2 is gone, chunk 1 partly: reading them faults.
	for _, i := range []int{2, 1} {
		if err := hashChunk(hf, i); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "faulted: the file shrank") {
			t.Errorf("chunk %d: %v", i, err)
		}
	}
	// Chunk 0 is still there; the size changed all the same.
	if err := hashChunk(hf, 0); err != nil {
		t.Errorf("chunk 0: %v", err)
	}
	if err := hf.sameSize(); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("sameSize: %v", err)
	}
	hf.f.Close()
	// As restore meets it: of another size, named.
	if err := os.WriteFile(path, testData(2*c+c/2), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &Manifest{}
	if m.Images, err = DigestImages(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, c+c/4); err != nil {
		t.Fatal(err)
	}
	if err := VerifyImages(dir, m); !errors.Is(err, ErrDamagedImage) || !strings.Contains(err.Error(), fmt.Sprintf("%s is %d bytes", path, c+c/4)) {
		t.Errorf("truncated: %v", err)
	}
}

// Verifying many files, big and small, uses little memory: the big ones
// are mapped, the small ones read through one buffer per worker.
func TestDigestBoundedMemory(t *testing.T) {
	const mib = 1 << 20
	dir := t.TempDir()
	data := testData(64 * mib)
	if err := os.WriteFile(filepath.Join(dir, "pages-1.img"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("core-%d.img", i)), data[:1000*i], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A sparse file, read through the buffer.
	f, _ := os.Create(filepath.Join(dir, "pages-2.img"))
	if err := f.Truncate(32 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var m Manifest
	var err error
	if err := testutil.Bounded(t, "hash", func() error { m.Images, err = DigestImages(dir); return err }); err != nil {
		t.Fatal(err)
	}
	if err := testutil.Bounded(t, "verify", func() error { return VerifyImages(dir, &m) }); err != nil {
		t.Fatal(err)
	}
}
