package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/runcr/runcr/libcheckpoint/internal/fsutil"
)

// ImageTail hashes the memory images (pages-*.img) while CRIU writes
// them, a chunk (digestChunk) as soon as the file has grown past it, so
// that once CRIU is done a checkpoint only has the last, partial chunk of
// each and the small images left to hash (finish, then DigestImagesTailed). The
// chunks' digests are the same as DigestImages computes: a file's digest
// is defined over its chunks (digest.go).
//
// It relies on how CRIU writes them: it creates each pages-*.img and
// appends to it, never writing again below its end. Only files that did
// not exist when the tail started are followed, and a chunk hashed on the
// way is used only if, at the end, the file is still the same inode and
// at least that long; anything else is hashed again then. Should CRIU
// ever rewrite a page below the end, the digest would not match at
// restore, which would refuse the images: damage is never passed.
//
// It runs while the container is frozen, on a goroutine of its own, on
// the CPU CRIU (which dumps with one thread) leaves idle; it shares the
// memory bandwidth with CRIU's writes. Measured on 2 CPUs at 1 GiB (12
// alternating pairs): the checkpoint took 114 ms less (median 632 against
// 746 ms), CRIU's frozen time 6 ms more (605 against 599 ms; paired
// differences' median 15 ms, against a run-to-run spread of 50 ms and
// more). So it follows only a checkpoint that ends the container, which
// is down for the whole of it; one that runs on (--leave-running,
// --pre-dump) only pauses while frozen and hashes everything once
// thawed.
type ImageTail struct {
	debugf func(format string, args ...any)
	dir    string
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
	files  map[string]*tailedFile // owned by the goroutine until done
}

// tailedFile is one pages-*.img the tail follows.
type tailedFile struct {
	f        *os.File
	dev, ino uint64
	sums     []uint64 // of its first chunks
	gone     bool     // replaced, shrunk or unreadable: hashed at the end
}

// tailPoll is how often the tail looks for more to hash when it has
// caught up with CRIU.
const tailPoll = 10 * time.Millisecond

// StartImageTail starts following the memory images CRIU is about to
// write into dir. debugf, if not nil, hears why a file is left to be
// hashed after the dump.
func StartImageTail(dir string, debugf func(format string, args ...any)) *ImageTail {
	if debugf == nil {
		debugf = func(string, ...any) {}
	}
	t := &ImageTail{dir: dir, debugf: debugf, stop: make(chan struct{}), done: make(chan struct{}), files: map[string]*tailedFile{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		close(t.done)
		return t
	}
	existing := map[string]bool{}
	for _, e := range entries {
		existing[e.Name()] = true
	}
	go t.run(existing)
	return t
}

func (t *ImageTail) run(existing map[string]bool) {
	defer close(t.done)
	tick := time.NewTicker(tailPoll)
	defer tick.Stop()
	for {
		more := t.poll(existing)
		select {
		case <-t.stop:
			return
		default:
		}
		if !more {
			select {
			case <-t.stop:
				return
			case <-tick.C:
			}
		}
	}
}

// poll hashes every whole chunk written since the last poll, and tells
// whether it hashed any.
func (t *ImageTail) poll(existing map[string]bool) bool {
	entries, err := os.ReadDir(t.dir)
	if err != nil {
		return false
	}
	hashed := false
	for _, e := range entries {
		name := e.Name()
		if existing[name] || !e.Type().IsRegular() || !strings.HasPrefix(name, "pages-") || !strings.HasSuffix(name, ".img") {
			continue
		}
		tf := t.files[name]
		if tf == nil {
			f, err := fsutil.OpenRegular(filepath.Join(t.dir, name))
			if err != nil {
				continue
			}
			tf = &tailedFile{f: f}
			if st, err := statOf(f); err == nil {
				tf.dev, tf.ino = uint64(st.Dev), uint64(st.Ino) //nolint:unconvert // Stat_t.Dev and Ino are not uint64 on every GOARCH
			} else {
				tf.gone = true
			}
			t.files[name] = tf
		}
		for !tf.gone {
			select {
			case <-t.stop:
				return false
			default:
			}
			st, err := statOf(tf.f)
			if err != nil || st.Nlink == 0 {
				tf.gone = true
				break
			}
			next := int64(len(tf.sums))
			if st.Size < (next+1)*digestChunk {
				break
			}
			hf := &hashedFile{name: name, path: tf.f.Name(), f: tf.f, fd: int(tf.f.Fd()), size: st.Size, sums: make([]uint64, next+1)}
			if err := hashChunk(hf, int(next)); err != nil {
				t.debugf("hashing %s as CRIU writes it: %v; it is hashed once CRIU is done", hf.path, err)
				tf.gone = true
				break
			}
			tf.sums = append(tf.sums, hf.sums[next])
			hashed = true
		}
	}
	return hashed
}

func statOf(f *os.File) (*syscall.Stat_t, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// finish stops the tail and returns the chunk digests it has of each
// file it followed to the end, with the file still open: while it is, no
// other file can be given its inode number, so a file of the directory
// with the same device and inode numbers is that file (DigestImagesTailed
// closes them). Safe to call again (it returns nothing more), and on a
// tail that never started or is nil.
func (t *ImageTail) Finish() map[string]TailedSums {
	if t == nil {
		return nil
	}
	out := map[string]TailedSums{}
	t.once.Do(func() {
		close(t.stop)
		<-t.done
		for name, tf := range t.files {
			if !tf.gone && len(tf.sums) > 0 {
				out[name] = TailedSums{f: tf.f, dev: tf.dev, ino: tf.ino, sums: tf.sums}
				continue
			}
			tf.f.Close()
		}
		t.files = nil
	})
	return out
}

// TailedSums are the digests of the first chunks of a file, as the tail
// hashed them, and the file they were hashed of, open.
type TailedSums struct {
	f        *os.File
	dev, ino uint64
	sums     []uint64
}
