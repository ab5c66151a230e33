package apf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Reader decodes APF messages from a byte stream such as a CIRA TLS
// connection. It reassembles messages split across reads and hands out
// several that arrived in one read one at a time (spec/apf.md §1). Its buffer
// never grows past Limits.MaxMessageLen, because every announced length is
// checked before the Reader waits for the bytes.
type Reader struct {
	r          io.Reader
	lim        Limits
	buf        []byte
	start, end int   // unparsed bytes are buf[start:end]
	consumed   int64 // stream offset of buf[start]
	err        error // sticky error from r
}

// initialReadBuffer fits every message but CHANNEL_DATA and a few long
// global requests; the buffer doubles when a message needs more. An idle
// CIRA link holds only this (tests/ciraload measured the former 4096 bytes
// as a third of a held link's heap: 512 saves about 3.5 KiB a device).
const initialReadBuffer = 512

// NewReader returns a Reader of r with the given limits (the zero Limits
// means the spec's).
func NewReader(r io.Reader, lim Limits) *Reader {
	lim = lim.norm()
	return &Reader{r: r, lim: lim, buf: make([]byte, min(initialReadBuffer, lim.MaxMessageLen()))}
}

// Offset is the stream offset of the next message to be returned: the number
// of bytes of the stream decoded so far. After a decoding error it is the
// offset of the message that failed.
func (r *Reader) Offset() int64 { return r.consumed }

// ReadMessage returns the next message. CHANNEL_DATA payloads are copied, so
// a message stays valid after the next call.
//
// At a clean end of stream it returns io.EOF. A stream that ends inside a
// message gives an error wrapping io.ErrUnexpectedEOF; a read error is
// returned as is (errors.Is(err, net.ErrClosed) is a clean shutdown); a
// message that cannot be decoded gives an error wrapping its *ParseError.
// Errors are sticky.
func (r *Reader) ReadMessage() (Message, error) { return r.next(true) }

// ReadMessageNoCopy is ReadMessage without the copy: the Data of a
// CHANNEL_DATA or UDP_SEND_TO aliases the Reader's buffer and is valid only
// until the next call. It is for a caller that consumes each message before
// reading the next (the CIRA relay copies CHANNEL_DATA into the channel's
// buffer at once), saving an allocation and a copy per message.
func (r *Reader) ReadMessageNoCopy() (Message, error) { return r.next(false) }

func (r *Reader) next(clone bool) (Message, error) {
	for {
		final := r.err != nil
		m, n, err := parse(r.buf[r.start:r.end], r.lim, final)
		switch {
		case err == nil:
			r.start += n
			r.consumed += int64(n)
			if r.start == r.end {
				r.start, r.end = 0, 0
			}
			if !clone {
				return m, nil
			}
			if d, ok := m.(ChannelData); ok {
				d.Data = bytes.Clone(d.Data)
				m = d
			} else if u, ok := m.(UDPSendTo); ok {
				u.Data = bytes.Clone(u.Data)
				m = u
			}
			return m, nil
		case !errors.Is(err, ErrShort):
			return nil, fmt.Errorf("apf: message at stream offset %d: %w", r.consumed, err)
		}
		if r.err != nil {
			if r.err == io.EOF {
				if r.start == r.end {
					return nil, io.EOF
				}
				return nil, fmt.Errorf("apf: stream ends %d bytes into a %s message at offset %d: %w",
					r.end-r.start, MsgType(r.buf[r.start]), r.consumed, io.ErrUnexpectedEOF)
			}
			return nil, r.err
		}
		if err := r.fill(); err != nil {
			return nil, err
		}
	}
}

// fill makes room and reads once more from r.
func (r *Reader) fill() error {
	if r.start > 0 {
		r.end = copy(r.buf, r.buf[r.start:r.end])
		r.start = 0
	}
	if r.end == len(r.buf) {
		limit := r.lim.MaxMessageLen()
		if len(r.buf) >= limit {
			// Unreachable while parse bounds every length; kept so that a
			// future message type cannot turn into unbounded growth.
			return fmt.Errorf("apf: message at stream offset %d longer than %d bytes", r.consumed, limit)
		}
		nb := make([]byte, min(2*len(r.buf), limit))
		copy(nb, r.buf[:r.end])
		r.buf = nb
	}
	n, err := r.r.Read(r.buf[r.end:])
	r.end += n
	if err != nil {
		r.err = err
	} else if n == 0 {
		// A reader that returns 0, nil repeatedly would spin; io.Reader
		// discourages it, and one more call is the documented remedy.
		n, err = r.r.Read(r.buf[r.end:])
		r.end += n
		if n == 0 && err == nil {
			err = io.ErrNoProgress
		}
		r.err = err
	}
	return nil
}
