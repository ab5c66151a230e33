package amtsim

import (
	"io"
	"net"
	"sync"
	"time"

	"amtd/amt/apf"
)

// maxChunk is the largest CHANNEL_DATA the device sends (GWM chunks at
// 4096; spec/apf.md §7.2).
const maxChunk = 4096

// channel is one APF channel seen from the device as a net.Conn, so the
// WS-Man and redirection handlers serve it like a socket. Flow control
// follows spec/apf.md §7.2: the device sends at most the peer's credits and
// grants WINDOW_ADJUST once it has consumed half its own window.
type channel struct {
	c        *ciraState
	id, peer uint32

	mu        sync.Mutex
	cond      *sync.Cond
	buf       []byte
	credits   uint32
	consumed  uint32
	rclosed   bool // peer sent CHANNEL_CLOSE or the tunnel died
	closeSent bool
	rdl, wdl  time.Time
	timer     *time.Timer
}

func newChannel(c *ciraState, id, peer, window uint32) *channel {
	ch := &channel{c: c, id: id, peer: peer, credits: window}
	ch.cond = sync.NewCond(&ch.mu)
	return ch
}

// deliver queues data from the peer; false if it overran the window.
func (ch *channel) deliver(b []byte) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if len(ch.buf)+len(b) > int(ch.c.opt.Window) {
		return false
	}
	ch.buf = append(ch.buf, b...)
	ch.cond.Broadcast()
	return true
}

func (ch *channel) credit(n uint32) {
	ch.mu.Lock()
	ch.credits += n
	ch.cond.Broadcast()
	ch.mu.Unlock()
}

func (ch *channel) remoteClosed() {
	ch.mu.Lock()
	ch.rclosed = true
	send := !ch.closeSent
	ch.closeSent = true
	ch.cond.Broadcast()
	ch.mu.Unlock()
	if send {
		_ = ch.c.send(apf.ChannelClose{RecipientChannel: ch.peer})
	}
}

// abort ends the channel when the tunnel is gone.
func (ch *channel) abort() {
	ch.mu.Lock()
	ch.rclosed, ch.closeSent = true, true
	ch.cond.Broadcast()
	ch.mu.Unlock()
}

func (ch *channel) expired(dl time.Time) bool { return !dl.IsZero() && !time.Now().Before(dl) }

func (ch *channel) Read(p []byte) (int, error) {
	ch.mu.Lock()
	for len(ch.buf) == 0 {
		if ch.rclosed {
			ch.mu.Unlock()
			return 0, io.EOF
		}
		if ch.expired(ch.rdl) {
			ch.mu.Unlock()
			return 0, errDeadline
		}
		ch.cond.Wait()
	}
	n := copy(p, ch.buf)
	ch.buf = ch.buf[n:]
	if len(ch.buf) == 0 {
		ch.buf = nil // free the backing array of an idle channel
	}
	ch.consumed += uint32(n)
	var adjust uint32
	if ch.consumed >= ch.c.opt.Window/2 {
		adjust, ch.consumed = ch.consumed, 0
	}
	ch.mu.Unlock()
	if adjust > 0 {
		_ = ch.c.send(apf.ChannelWindowAdjust{RecipientChannel: ch.peer, BytesToAdd: adjust})
	}
	return n, nil
}

func (ch *channel) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		ch.mu.Lock()
		for ch.credits == 0 && !ch.rclosed && !ch.expired(ch.wdl) {
			ch.cond.Wait()
		}
		switch {
		case ch.rclosed || ch.closeSent:
			ch.mu.Unlock()
			return written, net.ErrClosed
		case ch.credits == 0:
			ch.mu.Unlock()
			return written, errDeadline
		}
		n := min(len(p), maxChunk, int(ch.credits))
		ch.credits -= uint32(n)
		ch.mu.Unlock()
		if err := ch.c.send(apf.ChannelData{RecipientChannel: ch.peer, Data: p[:n]}); err != nil {
			return written, err
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

func (ch *channel) Close() error {
	ch.mu.Lock()
	send := !ch.closeSent
	ch.closeSent = true
	ch.rclosed = true
	ch.cond.Broadcast()
	if ch.timer != nil {
		ch.timer.Stop()
	}
	ch.mu.Unlock()
	if send {
		ch.c.mu.Lock()
		delete(ch.c.chans, ch.id)
		err := ch.c.sendLocked(apf.ChannelClose{RecipientChannel: ch.peer})
		ch.c.mu.Unlock()
		return err
	}
	return nil
}

type chanAddr struct{ s string }

func (a chanAddr) Network() string { return "apf" }
func (a chanAddr) String() string  { return a.s }

func (ch *channel) LocalAddr() net.Addr  { return chanAddr{"amt"} }
func (ch *channel) RemoteAddr() net.Addr { return chanAddr{"mps"} }

func (ch *channel) SetDeadline(t time.Time) error {
	ch.mu.Lock()
	ch.rdl, ch.wdl = t, t
	ch.armLocked()
	ch.mu.Unlock()
	return nil
}

func (ch *channel) SetReadDeadline(t time.Time) error {
	ch.mu.Lock()
	ch.rdl = t
	ch.armLocked()
	ch.mu.Unlock()
	return nil
}

func (ch *channel) SetWriteDeadline(t time.Time) error {
	ch.mu.Lock()
	ch.wdl = t
	ch.armLocked()
	ch.mu.Unlock()
	return nil
}

// armLocked wakes waiters when the earliest deadline passes.
func (ch *channel) armLocked() {
	if ch.timer != nil {
		ch.timer.Stop()
	}
	next := ch.rdl
	if next.IsZero() || (!ch.wdl.IsZero() && ch.wdl.Before(next)) {
		next = ch.wdl
	}
	if next.IsZero() {
		return
	}
	ch.timer = time.AfterFunc(time.Until(next)+time.Millisecond, func() {
		ch.mu.Lock()
		ch.cond.Broadcast()
		ch.mu.Unlock()
	})
}
