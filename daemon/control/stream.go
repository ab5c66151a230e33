package control

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// Stream is a Handler result that hands the control connection over: the
// server answers {"ok":true,"result":Result} and from then on copies bytes
// between the connection and Conn, untouched, until either end closes. One
// connection carries one stream (`amtd forward` opens one per TCP
// connection it accepts).
type Stream struct {
	// Conn is the far end (a CIRA channel to a device). The server closes
	// it when the stream ends.
	Conn net.Conn
	// Result is encoded as the response's result, before the first byte.
	Result any
}

// Limits of the streams one server carries.
const (
	// maxStreams bounds streams open at once. They do not count against
	// maxConns: a forwarded console left open must not lock out `amtd
	// status`. Each device has at most 3 channels anyway (spec/apf.md §7.6).
	maxStreams = 64
	// After the client's end-of-file, what the device still sends is
	// passed on until it is quiet for streamQuiet, for at most streamLinger:
	// a CIRA channel has no half-close (spec/apf.md §7.3), so the device is
	// never told the client is done, and a closed client must not hold one
	// of the device's 3 channels for long.
	streamQuiet  = 2 * time.Second
	streamLinger = 30 * time.Second
	// streamBuffer is what one stream reads from the device at a time.
	streamBuffer = 32 << 10
)

// errTooManyStreams is the answer when maxStreams are open.
var errTooManyStreams = fmt.Errorf("%d forwarded connections are open already, the most the daemon carries; close some and retry", maxStreams)

// closeWriter is a connection that can half-close (TCP, unix).
type closeWriter interface{ CloseWrite() error }

func closeWrite(c net.Conn) bool {
	if cw, ok := c.(closeWriter); ok {
		return cw.CloseWrite() == nil
	}
	return false
}

// pipe copies client (read through cr, which may hold bytes read past the
// request line) to dev and back until one end is done, then closes dev. A
// client's end-of-file is passed on as a half-close where dev has one, and
// dev's remaining output is passed on (see streamQuiet); when dev ends, the
// client gets end-of-file and a little time to close. It returns the bytes
// copied each way.
func (s *Server) pipe(client net.Conn, cr io.Reader, dev net.Conn) (up, down int64) {
	client.SetDeadline(time.Time{})
	// Checked after clearing the deadline: a Close from now on sets it
	// again, and one before has closed done.
	select {
	case <-s.done:
		dev.Close()
		return 0, 0
	default:
	}
	var lingering atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, streamBuffer)
		for {
			n, err := dev.Read(buf)
			if n > 0 {
				if lingering.Load() {
					dev.SetReadDeadline(time.Now().Add(streamQuiet))
				}
				w, werr := client.Write(buf[:n])
				down += int64(w)
				if werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		// The client sees end-of-file, reads what is left and closes; the
		// deadline ends the other direction if it does not.
		closeWrite(client)
		client.SetReadDeadline(time.Now().Add(time.Second))
	}()
	up, err := io.Copy(dev, cr)
	if err == nil { // the client's end-of-file
		if !closeWrite(dev) {
			lingering.Store(true)
			dev.SetReadDeadline(time.Now().Add(streamQuiet))
		}
		t := time.NewTimer(streamLinger)
		select {
		case <-done:
		case <-t.C:
		case <-s.done:
		}
		t.Stop()
	}
	dev.Close()
	<-done
	return up, down
}

// Stream sends cmd with args and, once the daemon accepts it, returns the
// connection as a raw byte pipe to what the handler opened; result (nil to
// discard) receives the response's result. The Client is used up: close the
// returned connection, not the Client. On error the Client is still open.
func (c *Client) Stream(ctx context.Context, cmd string, args, result any) (net.Conn, error) {
	if err := c.Call(ctx, cmd, args, result); err != nil {
		return nil, err
	}
	if err := c.conn.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("control %s: %w", cmd, err)
	}
	return &streamConn{Conn: c.conn, r: c.r}, nil
}

// streamConn is the control connection after a Stream: reads drain what the
// line reader buffered past the response first.
type streamConn struct {
	net.Conn
	r *bufio.Reader
}

func (s *streamConn) Read(p []byte) (int, error) { return s.r.Read(p) }

// CloseWrite half-closes the connection: the daemon sees end-of-file.
func (s *streamConn) CloseWrite() error {
	if cw, ok := s.Conn.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return errors.New("control stream: no half-close on this connection")
}
