package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"
)

// ErrUnreachable is wrapped by Client errors when no daemon answers on the
// socket (missing, refused, or nobody accepting in time).
var ErrUnreachable = errors.New("daemon not reachable")

// Client talks to the control socket. It is not safe for concurrent use.
type Client struct {
	path string
	conn net.Conn
	r    *bufio.Reader
}

// Dial connects to the control socket at path.
func Dial(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("%w: control socket %s: %w", ErrUnreachable, path, err)
	}
	return &Client{path: path, conn: c, r: bufio.NewReaderSize(c, 4096)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Call sends cmd with args (nil for none) and decodes the result into result
// (nil to discard). An error response comes back as an error with the
// daemon's message.
func (c *Client) Call(ctx context.Context, cmd string, args, result any) error {
	req := Request{Cmd: cmd}
	if args != nil {
		b, err := json.Marshal(args)
		if err != nil {
			return fmt.Errorf("control %s: encoding args: %w", cmd, err)
		}
		req.Args = b
	}
	line, err := json.Marshal(req)
	if err != nil {
		return err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(requestTimeout)
	}
	c.conn.SetDeadline(deadline)
	if _, err := c.conn.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("%w: control socket %s: sending %s: %w", ErrUnreachable, c.path, cmd, err)
	}
	respLine, err := readLine(c.r)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return fmt.Errorf("%w: control socket %s: no answer to %s before the deadline (is the daemon starting or wedged?)", ErrUnreachable, c.path, cmd)
		}
		return fmt.Errorf("%w: control socket %s: reading the answer to %s: %w", ErrUnreachable, c.path, cmd, err)
	}
	var resp Response
	if err := json.Unmarshal(respLine, &resp); err != nil {
		return fmt.Errorf("control %s: the daemon's answer is not JSON: %w", cmd, err)
	}
	if !resp.OK {
		return fmt.Errorf("amtd: %s", resp.Error)
	}
	if result != nil {
		if err := json.Unmarshal(resp.Result, result); err != nil {
			return fmt.Errorf("control %s: decoding the result: %w", cmd, err)
		}
	}
	return nil
}
