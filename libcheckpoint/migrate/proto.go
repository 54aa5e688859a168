// Package migrate is the wire protocol of `runcr migrate` and `runcr
// receive`: pure framing and message types, no container semantics.
//
// The source writes frames to the transport (the receiver's standard
// input): one type byte, a 4-byte big-endian payload length, the payload.
// Messages are JSON in one frame; bulk data (the rootfs listing, the
// rootfs tar, the checkpoint archive) is a run of data frames of one type
// ended by an end frame of the matching lower-case type. An abort frame
// may come at any point instead; the receiver then rolls back.
//
// The receiver answers on its standard output with one JSON Reply per
// line.
package migrate

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ProtocolVersion changes whenever a frame or message changes meaning.
const ProtocolVersion = 1

// Frame types, source to receiver.
const (
	FrameHello      byte = 'H' // Hello, JSON
	FrameListing    byte = 'L' // rootfs listing (JSON []Entry), streamed
	FrameListingEnd byte = 'l'
	FrameFiles      byte = 'F' // rootfs files (tar), streamed
	FrameFilesEnd   byte = 'f'
	FrameArchive    byte = 'A' // the checkpoint archive, streamed
	FrameArchiveEnd byte = 'a'
	FrameCommit     byte = 'C' // the source is committed: keep the container
	FrameAbort      byte = 'X' // Abort, JSON: roll back
)

// MaxFrame is the largest payload of one frame.
const MaxFrame = 1 << 20

// ErrAborted is returned by readers when the source sent FrameAbort.
var ErrAborted = errors.New("the source aborted the migration")

// Hello opens a migration: who is sending what.
type Hello struct {
	Protocol    int    `json:"protocol"`
	Runcr       string `json:"runcr"`
	CriuVersion int    `json:"criu_version"`
	// Source is the container's id on the source, ID the one it gets on
	// the target (receive --id overrides it).
	Source string `json:"source"`
	ID     string `json:"id"`
	// Cpuinfo is `criu cpuinfo dump`'s cpuinfo.img of the source, for
	// `criu cpuinfo check` on the target.
	Cpuinfo []byte `json:"cpuinfo,omitempty"`
	// Config is the bundle's config.json, written on the target when it
	// has no bundle yet (root.path made "rootfs" if it was absolute).
	Config []byte `json:"config"`
	// RootfsPath is root.path relative to the bundle on the target.
	RootfsPath string `json:"rootfs_path"`
	// Bundle is the bundle's path on the source, the default on the target.
	Bundle         string `json:"bundle"`
	TCPEstablished bool   `json:"tcp_established,omitempty"`
}

// Abort says why the source gave up.
type Abort struct {
	Step   string `json:"step"`
	Reason string `json:"reason"`
}

// Reply is the receiver's answer to one step.
type Reply struct {
	Step  string `json:"step"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Handshake.
	Runcr       string `json:"runcr,omitempty"`
	CriuVersion int    `json:"criu_version,omitempty"`
	Bundle      string `json:"bundle,omitempty"` // "empty" or "same"
	BundlePath  string `json:"bundle_path,omitempty"`
	ID          string `json:"id,omitempty"`
	// Rootfs sync: the paths the receiver wants sent.
	Need []string `json:"need,omitempty"`
	// Restore.
	Pid      int    `json:"pid,omitempty"`
	Stdio    string `json:"stdio,omitempty"`
	Received int64  `json:"received,omitempty"`
}

// Entry is one file of a rootfs listing.
type Entry struct {
	Path  string `json:"p"`
	Mode  uint32 `json:"m"` // os.FileMode bits
	Size  int64  `json:"s,omitempty"`
	Mtime int64  `json:"t,omitempty"` // unix nanoseconds
	Link  string `json:"l,omitempty"`
	UID   int    `json:"u,omitempty"`
	GID   int    `json:"g,omitempty"`
}

// Writer writes frames; it counts the bytes it wrote.
type Writer struct {
	w     *bufio.Writer
	Bytes int64
}

// NewWriter writes frames to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: bufio.NewWriterSize(w, MaxFrame+5)} }

// Frame writes one frame and flushes it.
func (w *Writer) Frame(typ byte, payload []byte) error {
	if err := w.frame(typ, payload); err != nil {
		return err
	}
	return w.w.Flush()
}

func (w *Writer) frame(typ byte, payload []byte) error {
	if len(payload) > MaxFrame {
		return fmt.Errorf("frame of %d bytes exceeds %d", len(payload), MaxFrame)
	}
	var hdr [5]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	if _, err := w.w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.w.Write(payload)
	w.Bytes += int64(len(payload)) + 5
	return err
}

// JSON writes v as one frame.
func (w *Writer) JSON(typ byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return w.Frame(typ, b)
}

// Stream returns a writer whose bytes go out as frames of type typ; its
// Close writes the end frame (typ's lower case) and flushes.
func (w *Writer) Stream(typ byte) io.WriteCloser { return &streamWriter{w: w, typ: typ} }

type streamWriter struct {
	w   *Writer
	typ byte
}

func (s *streamWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := p
		if len(chunk) > MaxFrame {
			chunk = chunk[:MaxFrame]
		}
		if err := s.w.frame(s.typ, chunk); err != nil {
			return n, err
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

func (s *streamWriter) Close() error { return s.w.Frame(s.typ+('a'-'A'), nil) }

// Reader reads frames.
type Reader struct {
	r       *bufio.Reader
	Bytes   int64
	pending *frame
}

type frame struct {
	typ     byte
	payload []byte
}

// Unread puts a frame Next returned back, to be returned again; it
// returns r.
func (r *Reader) Unread(typ byte, payload []byte) *Reader {
	r.pending = &frame{typ, payload}
	return r
}

// NewReader reads frames from r.
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReaderSize(r, MaxFrame+5)} }

// Next reads one frame. An abort frame comes back as an error wrapping
// ErrAborted with its reason; the end of input before a frame as io.EOF.
func (r *Reader) Next() (byte, []byte, error) {
	if f := r.pending; f != nil {
		r.pending = nil
		return f.typ, f.payload, nil
	}
	var hdr [5]byte
	if _, err := io.ReadFull(r.r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > MaxFrame {
		return 0, nil, fmt.Errorf("frame of %d bytes exceeds %d: not a runcr migration stream", n, MaxFrame)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r.r, payload); err != nil {
		return 0, nil, io.ErrUnexpectedEOF
	}
	r.Bytes += int64(n) + 5
	if hdr[0] == FrameAbort {
		var a Abort
		_ = json.Unmarshal(payload, &a)
		return 0, nil, fmt.Errorf("%w at step %q: %s", ErrAborted, a.Step, a.Reason)
	}
	return hdr[0], payload, nil
}

// Expect reads one frame of type typ and decodes its JSON into v.
func (r *Reader) Expect(typ byte, v any) error {
	t, p, err := r.Next()
	if err != nil {
		return err
	}
	if t != typ {
		return fmt.Errorf("expected frame %q, got %q", typ, t)
	}
	if v == nil {
		return nil
	}
	return json.Unmarshal(p, v)
}

// Stream returns a reader of the data frames of type typ, which ends (io.EOF)
// at the matching end frame. A premature end of input is
// io.ErrUnexpectedEOF; an abort, ErrAborted.
func (r *Reader) Stream(typ byte) io.Reader { return &streamReader{r: r, typ: typ} }

type streamReader struct {
	r    *Reader
	typ  byte
	buf  []byte
	done bool
}

func (s *streamReader) Read(p []byte) (int, error) {
	for len(s.buf) == 0 {
		if s.done {
			return 0, io.EOF
		}
		t, payload, err := s.r.Next()
		switch {
		case errors.Is(err, io.EOF):
			return 0, io.ErrUnexpectedEOF
		case err != nil:
			return 0, err
		case t == s.typ+('a'-'A'):
			s.done = true
		case t == s.typ:
			s.buf = payload
		default:
			return 0, fmt.Errorf("expected frame %q, got %q", s.typ, t)
		}
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

// ReplyWriter writes the receiver's replies, one JSON line each.
type ReplyWriter struct{ enc *json.Encoder }

// NewReplyWriter writes replies to w.
func NewReplyWriter(w io.Writer) *ReplyWriter { return &ReplyWriter{enc: json.NewEncoder(w)} }

// Send writes r.
func (w *ReplyWriter) Send(r Reply) error { return w.enc.Encode(r) }

// ReplyReader reads the receiver's replies.
type ReplyReader struct{ dec *json.Decoder }

// NewReplyReader reads replies from r.
func NewReplyReader(r io.Reader) *ReplyReader { return &ReplyReader{dec: json.NewDecoder(r)} }

// Expect reads the reply to step. A reply that is not OK comes back as
// an error holding the receiver's message; the end of input, as
// io.ErrUnexpectedEOF.
func (r *ReplyReader) Expect(step string) (Reply, error) {
	var rep Reply
	if err := r.dec.Decode(&rep); err != nil {
		if errors.Is(err, io.EOF) {
			return rep, io.ErrUnexpectedEOF
		}
		return rep, fmt.Errorf("reading the receiver's answer: %w", err)
	}
	if rep.Step != step {
		if !rep.OK && rep.Error != "" {
			return rep, fmt.Errorf("the receiver failed at its step %s: %s", rep.Step, rep.Error)
		}
		return rep, fmt.Errorf("the receiver answered step %q, expected %q", rep.Step, step)
	}
	if !rep.OK {
		return rep, fmt.Errorf("the receiver refused: %s", rep.Error)
	}
	return rep, nil
}
