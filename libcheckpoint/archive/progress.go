package archive

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
type Progress struct {
	out   io.Writer
	what  string
	done  atomic.Int64
	total atomic.Int64 // 0: unknown
	start time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
}

// StartProgress starts reporting on out; nil out gives a nil progress.
func StartProgress(out io.Writer, what string, total int64) *Progress {
	if out == nil {
		return nil
	}
	p := &Progress{out: out, what: what, start: time.Now(), stop: make(chan struct{})}
	p.total.Store(total)
	p.wg.Add(1)
	go p.loop()
	return p
}

func (p *Progress) SetTotal(n int64) {
	if p != nil {
		p.total.Store(n)
	}
}

func (p *Progress) loop() {
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

func (p *Progress) line() string {
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

// Finish stops the reports, ending a printed line with a newline.
func (p *Progress) Finish() {
	if p == nil {
		return
	}
	close(p.stop)
	p.wg.Wait()
}

// Writer counts what is written through it.
func (p *Progress) Writer(w io.Writer) io.Writer {
	if p == nil {
		return w
	}
	return &countingWriter{w, p}
}

// Reader counts what is read through it.
func (p *Progress) Reader(r io.Reader) io.Reader {
	if p == nil {
		return r
	}
	return &countingReader{r, p}
}

type countingWriter struct {
	w io.Writer
	p *Progress
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.p.done.Add(int64(n))
	return n, err
}

type countingReader struct {
	r io.Reader
	p *Progress
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.p.done.Add(int64(n))
	return n, err
}
