package archive

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
	p := StartProgress(&quick, "exporting x", 100)
	if _, err := io.Copy(p.Writer(io.Discard), strings.NewReader("hello")); err != nil {
		t.Fatal(err)
	}
	p.Finish()
	if quick.String() != "" {
		t.Errorf("a short export printed %q", quick.String())
	}

	// Long: carriage-return lines with bytes and rate, then a newline.
	var long lockedBuffer
	p = StartProgress(&long, "importing y", 4<<20)
	if _, err := io.Copy(io.Discard, p.Reader(bytes.NewReader(make([]byte, 2<<20)))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(progressDelay + 2*progressTick)
	p.Finish()
	out := long.String()
	if !strings.HasPrefix(out, "\rimporting y: 2.0 MiB of 4.0 MiB (50%), ") || !strings.Contains(out, "MiB/s") || !strings.HasSuffix(out, "\n") {
		t.Errorf("progress output %q", out)
	}

	// nil: no output and no panic.
	var none *Progress
	none.SetTotal(1)
	if none.Reader(strings.NewReader("x")) == nil {
		t.Error("nil progress lost the reader")
	}
	none.Finish()
}
