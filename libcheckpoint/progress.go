package libcheckpoint

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Progress lines: nothing for the first progressDelay (short exports and
// imports stay quiet), then one line rewritten in place every
// progressTick.
const (
	progressDelay = time.Second
	progressTick  = 250 * time.Millisecond
)

// progress counts the bytes an export or import has moved and reports
// them on out (a terminal) as "VERB NAME: DONE of TOTAL (P%), RATE".
// A nil *progress counts nothing and prints nothing.
type progress struct {
	out   io.Writer
	what  string
	done  atomic.Int64
	total atomic.Int64 // 0: unknown
	start time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
}

// startProgress starts reporting on out; nil out gives a nil progress.
func startProgress(out io.Writer, what string, total int64) *progress {
	if out == nil {
		return nil
	}
	p := &progress{out: out, what: what, start: time.Now(), stop: make(chan struct{})}
	p.total.Store(total)
	p.wg.Add(1)
	go p.loop()
	return p
}

func (p *progress) setTotal(n int64) {
	if p != nil {
		p.total.Store(n)
	}
}

func (p *progress) loop() {
	defer p.wg.Done()
	t := time.NewTicker(progressTick)
	defer t.Stop()
	printed := false
	for {
		select {
		case <-p.stop:
			if printed {
				fmt.Fprintf(p.out, "\r%s\n", p.line())
			}
			return
		case <-t.C:
			if time.Since(p.start) >= progressDelay {
				fmt.Fprintf(p.out, "\r%s", p.line())
				printed = true
			}
		}
	}
}

func (p *progress) line() string {
	done, total := p.done.Load(), p.total.Load()
	secs := time.Since(p.start).Seconds()
	s := fmt.Sprintf("%s: %s", p.what, mib(done))
	if total > 0 {
		s += fmt.Sprintf(" of %s (%d%%)", mib(total), done*100/total)
	}
	if secs > 0 {
		s += fmt.Sprintf(", %s/s", mib(int64(float64(done)/secs)))
	}
	return s + "   " // covers the tail of a longer previous line
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// finish stops the reports, ending a printed line with a newline.
func (p *progress) finish() {
	if p == nil {
		return
	}
	close(p.stop)
	p.wg.Wait()
}

// writer counts what is written through it.
func (p *progress) writer(w io.Writer) io.Writer {
	if p == nil {
		return w
	}
	return &countingWriter{w, p}
}

// reader counts what is read through it.
func (p *progress) reader(r io.Reader) io.Reader {
	if p == nil {
		return r
	}
	return &countingReader{r, p}
}

type countingWriter struct {
	w io.Writer
	p *progress
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.p.done.Add(int64(n))
	return n, err
}

type countingReader struct {
	r io.Reader
	p *progress
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.p.done.Add(int64(n))
	return n, err
}
