package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeLikeCRIU appends data to dir/name a MiB at a time, as CRIU writes a
// pages image.
func writeLikeCRIU(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for off := 0; off < len(data); off += 1 << 20 {
		if _, err := f.Write(data[off:min(len(data), off+1<<20)]); err != nil {
			t.Fatal(err)
		}
		if off%(8<<20) == 0 {
			time.Sleep(time.Millisecond)
		}
	}
}

// tailSettle gives the tail time to catch up with what was written.
func tailSettle() { time.Sleep(300 * time.Millisecond) }

// The tail hashes the chunks of the pages images CRIU writes; the digests
// are the same as hashing them afterwards.
func TestImageTail(t *testing.T) {
	const c = digestChunk
	dir := t.TempDir()
	data := testData(2*c + c/3)
	// Already there when the dump starts: not followed.
	if err := os.WriteFile(filepath.Join(dir, "pages-9.img"), data[:c+5], 0o600); err != nil {
		t.Fatal(err)
	}
	tail := StartImageTail(dir, nil)
	writeLikeCRIU(t, dir, "pages-1.img", data)
	writeLikeCRIU(t, dir, "pages-2.img", data[:c])
	writeLikeCRIU(t, dir, "pages-3.img", data[:c/2])
	if err := os.WriteFile(filepath.Join(dir, "core-1.img"), data[:4000], 0o600); err != nil {
		t.Fatal(err)
	}
	tailSettle()
	pre := tail.Finish()
	if got := len(pre["pages-1.img"].sums); got != 2 {
		t.Errorf("pages-1.img: %d chunks hashed on the way, want 2", got)
	}
	if got := len(pre["pages-2.img"].sums); got != 1 {
		t.Errorf("pages-2.img: %d chunks hashed on the way, want 1", got)
	}
	for _, name := range []string{"pages-3.img", "pages-9.img", "core-1.img"} {
		if _, ok := pre[name]; ok {
			t.Errorf("%s followed", name)
		}
	}
	got, err := DigestImagesTailed(dir, pre)
	if err != nil {
		t.Fatal(err)
	}
	want, err := DigestImages(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: %+v with the tail, %+v without", name, got[name], w)
		}
	}
	if got["pages-1.img"].Digest != refDigest(data) {
		t.Errorf("pages-1.img: %s, want %s", got["pages-1.img"].Digest, refDigest(data))
	}
	// Stopping again, as the checkpoint's defer does, is harmless.
	tail.Finish()
	var none *ImageTail
	none.Finish()
}

// What the tail hashed is used only for the same file: one replaced
// after it was hashed is hashed anew; one rewritten in place (CRIU never
// does) gets a digest its content does not match, so it is refused at
// restore, not passed.
func TestImageTailReplacedOrRewritten(t *testing.T) {
	const c = digestChunk
	dir := t.TempDir()
	data := testData(c + c/2)
	tail := StartImageTail(dir, nil)
	writeLikeCRIU(t, dir, "pages-1.img", data)
	writeLikeCRIU(t, dir, "pages-2.img", data)
	tailSettle()
	pre := tail.Finish()
	if len(pre["pages-1.img"].sums) != 1 || len(pre["pages-2.img"].sums) != 1 {
		t.Fatalf("not hashed on the way: %+v", pre)
	}
	other := testData(c + c/2 + 8)[8:]
	// Replaced: a new inode.
	os.Remove(filepath.Join(dir, "pages-1.img"))
	if err := os.WriteFile(filepath.Join(dir, "pages-1.img"), other, 0o600); err != nil {
		t.Fatal(err)
	}
	// Rewritten in place below the end.
	f, _ := os.OpenFile(filepath.Join(dir, "pages-2.img"), os.O_WRONLY, 0)
	if _, err := f.WriteAt(other[:4096], 4096); err != nil {
		t.Fatal(err)
	}
	f.Close()
	m := &Manifest{}
	var err error
	if m.Images, err = DigestImagesTailed(dir, pre); err != nil {
		t.Fatal(err)
	}
	if m.Images["pages-1.img"].Digest != refDigest(other) {
		t.Errorf("replaced: %s, want %s", m.Images["pages-1.img"].Digest, refDigest(other))
	}
	if err := VerifyImages(dir, m); err == nil || !strings.Contains(err.Error(), "pages-2.img: its content changed") {
		t.Errorf("rewritten in place: %v", err)
	}
}
