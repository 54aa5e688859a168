package libcheckpoint

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is written by the progress goroutine and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestProgress(t *testing.T) {
	// Short: nothing printed.
	var quick lockedBuffer
	p := startProgress(&quick, "exporting x", 100)
	if _, err := io.Copy(p.writer(io.Discard), strings.NewReader("hello")); err != nil {
		t.Fatal(err)
	}
	p.finish()
	if quick.String() != "" {
		t.Errorf("a short export printed %q", quick.String())
	}

	// Long: carriage-return lines with bytes and rate, then a newline.
	var long lockedBuffer
	p = startProgress(&long, "importing y", 4<<20)
	if _, err := io.Copy(io.Discard, p.reader(bytes.NewReader(make([]byte, 2<<20)))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(progressDelay + 2*progressTick)
	p.finish()
	out := long.String()
	if !strings.HasPrefix(out, "\rimporting y: 2.0 MiB of 4.0 MiB (50%), ") || !strings.Contains(out, "MiB/s") || !strings.HasSuffix(out, "\n") {
		t.Errorf("progress output %q", out)
	}

	// nil: no output and no panic.
	var none *progress
	none.setTotal(1)
	if none.reader(strings.NewReader("x")) == nil {
		t.Error("nil progress lost the reader")
	}
	none.finish()
}
