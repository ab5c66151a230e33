package cira

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"amtd/amt/apf"
	"amtd/amt/guid"
)

// Channels amtd opens to a device (spec/apf.md §7.1): Service.Dial returns
// one as a net.Conn. The session's reader only appends to a channel's
// buffer, which the window bounds, so a channel nobody reads never holds up
// the others or the link.

const (
	// chanWindow is amtd's receive window per channel; the device may send
	// that much before amtd grants more (spec/apf.md §7.2). 81920 is MPS's
	// default cira_window_size, the value AMT firmware meets from Open AMT
	// (MPS allows 32 KiB–1 MiB; larger values are not known to be tested
	// against firmware). The former 16 KiB held one KVM stream to about a
	// third of a plain TLS pipe: the device idled a round trip per 8 KiB.
	// A channel's buffer grows to at most this (chanBufStart doubling), so a
	// device costs at most maxOpenChannels × chanWindow of unread data.
	chanWindow = 81920
	// chanBufStart is a channel's first receive buffer: one WS-Man answer
	// or a few AMT chunks fit, and a channel that only ever gets small
	// answers never holds a whole window.
	chanBufStart = 8 << 10
	// chanChunk is the largest CHANNEL_DATA amtd sends (GWM's 4096,
	// spec/apf.md §7.2).
	chanChunk = 4096
	// maxOpenChannels is how many channels amtd keeps open to one device:
	// AMT refuses beyond a few, MPS allows 3 (spec/apf.md §7.6).
	maxOpenChannels = 3
	// maxQueuedDials bounds the Dials waiting for one device's slots; more
	// fail at once rather than pile up goroutines.
	maxQueuedDials = 64
	// openTimeout bounds a pending CHANNEL_OPEN: a device that never answers
	// must not hang the caller (rpc-go#55, spec/apf.md §7.6).
	openTimeout = 30 * time.Second
	// closeTimeout is how long a closed channel waits for the device's
	// CHANNEL_CLOSE before its slot is freed anyway; ids are never reused,
	// so a late CLOSE finds nothing.
	closeTimeout = 10 * time.Second
	// openRetries and openRetryDelay: AMT answers CONNECT_FAILED or
	// RESOURCE_SHORTAGE when busy; try again after a pause (spec/apf.md §7.6,
	// MPS's minTime of 250 ms).
	openRetries    = 3
	openRetryDelay = 250 * time.Millisecond
)

// ErrNotConnected is wrapped by Dial when the device has no CIRA link to
// this instance.
var ErrNotConnected = errors.New("device is not connected over CIRA")

// ErrChannelRefused is wrapped by Dial when the device answers
// CHANNEL_OPEN_FAILURE.
var ErrChannelRefused = errors.New("device refused the channel")

// errLinkClosed ends the channels of a link that went away.
var errLinkClosed = errors.New("cira: the device's CIRA link closed")

// chans is a session's channel table.
type chans struct {
	slots   chan struct{} // one token per open channel, maxOpenChannels
	waiting int           // Dials queued for a slot; guarded by mu
	mu      sync.Mutex
	next    uint32 // last id given; MPS starts at 4 (spec/apf.md §7.1)
	byID    map[uint32]*channel
	dead    chan struct{} // closed when the link ends
	isDead  bool
}

func newChans() *chans {
	return &chans{slots: make(chan struct{}, maxOpenChannels), next: 3, byID: map[uint32]*channel{}, dead: make(chan struct{})}
}

// Dial opens a channel to port on the device's live link and returns it as
// a net.Conn (spec/apf.md §7). At most maxOpenChannels are open to a device;
// further Dials wait for one to close, until ctx ends. Errors wrap
// ErrNotConnected when the device has no link, ErrChannelRefused when it
// answers CHANNEL_OPEN_FAILURE (after retries when it is busy).
func (sv *Service) Dial(ctx context.Context, uuid string, port uint16) (net.Conn, error) {
	u, err := guid.Parse(uuid)
	if err != nil {
		return nil, fmt.Errorf("cira: dial: %w", err)
	}
	uuid = u.String() // lower case, as the registry keys links
	s := sv.reg.get(uuid)
	if s == nil {
		return nil, fmt.Errorf("cira: dial %s port %d: %w (it connects by itself when its CIRA policy fires; see amtd status)", uuid, port, ErrNotConnected)
	}
	s.mu.Lock()
	bound := slices.Contains(s.ports, port)
	s.mu.Unlock()
	if !bound {
		return nil, fmt.Errorf("cira: dial %s port %d: the device did not forward that port on its link", uuid, port)
	}
	for try := 1; ; try++ {
		c, err := s.open(ctx, port)
		var rf refusal
		if errors.As(err, &rf) && (rf.reason == apf.OpenConnectFailed || rf.reason == apf.OpenResourceShortage) && try < openRetries {
			t := time.NewTimer(openRetryDelay)
			select {
			case <-t.C:
				continue
			case <-ctx.Done():
				t.Stop()
			case <-s.ch.dead:
				t.Stop()
			}
		}
		if err != nil {
			sv.chanResults.With(chanResult(err)).Inc()
			return nil, fmt.Errorf("cira: dial %s port %d: %w", uuid, port, err)
		}
		sv.chanResults.With("opened").Inc()
		return c, nil
	}
}

// refusal is CHANNEL_OPEN_FAILURE as an error.
type refusal struct{ reason apf.OpenFailureReason }

func (r refusal) Error() string { return fmt.Sprintf("%v (%s)", ErrChannelRefused, r.reason) }
func (r refusal) Unwrap() error { return ErrChannelRefused }

func chanResult(err error) string {
	switch {
	case errors.Is(err, ErrChannelRefused):
		return "refused"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "cancelled"
	case errors.Is(err, errTooManyWaiting):
		return "queue_full"
	}
	return "error"
}

var errTooManyWaiting = fmt.Errorf("%d requests already wait for a channel to this device", maxQueuedDials)

// open takes a slot, sends CHANNEL_OPEN and waits for the answer.
func (s *session) open(ctx context.Context, port uint16) (*channel, error) {
	t := s.ch
	t.mu.Lock()
	if t.isDead {
		t.mu.Unlock()
		return nil, errLinkClosed
	}
	if t.waiting >= maxQueuedDials {
		t.mu.Unlock()
		return nil, errTooManyWaiting
	}
	t.waiting++
	t.mu.Unlock()
	var err error
	select {
	case t.slots <- struct{}{}:
	case <-ctx.Done():
		err = ctx.Err()
	case <-t.dead:
		err = errLinkClosed
	}
	t.mu.Lock()
	t.waiting--
	if err == nil && t.isDead {
		err = errLinkClosed
		<-t.slots
	}
	if err != nil {
		t.mu.Unlock()
		return nil, err
	}
	t.next++
	c := newChannel(s, t.next, port)
	t.byID[c.id] = c
	t.mu.Unlock()

	n := c.id
	if err := s.send(apf.ChannelOpen{ChannelType: apf.ChannelForwardedTCPIP, SenderChannel: c.id, InitialWindow: s.svc.window,
		Reserved: apf.ChannelOpenReserved, ConnectedPort: uint32(port), OriginatorAddress: "1.2.3.4", OriginatorPort: 1024 + n%30000}); err != nil {
		c.release()
		return nil, err
	}
	timer := time.NewTimer(openTimeout)
	defer timer.Stop()
	select {
	case <-c.opened:
	case <-ctx.Done():
		err = ctx.Err()
	case <-timer.C:
		err = fmt.Errorf("no answer to CHANNEL_OPEN in %s", openTimeout)
	}
	c.mu.Lock()
	state, ferr := c.state, c.err
	if err != nil && state == chanPending {
		// Abandoned while pending: CLOSE goes out when the confirmation
		// arrives (spec/apf.md §7.3).
		c.state = chanAbandoned
		c.mu.Unlock()
		c.awaitClose() // a device that never answers gives the slot back
		return nil, err
	}
	c.mu.Unlock()
	switch state {
	case chanOpen:
		return c, nil
	case chanRefused:
		return nil, ferr
	}
	return nil, errLinkClosed
}

// dispatch hands a channel message to its channel. It never blocks on a
// channel's reader; a device that overruns the window is a protocol error.
func (s *session) dispatch(m apf.Message) error {
	var id uint32
	switch m := m.(type) {
	case apf.ChannelOpenConfirmation:
		id = m.RecipientChannel
	case apf.ChannelOpenFailure:
		id = m.RecipientChannel
	case apf.ChannelWindowAdjust:
		id = m.RecipientChannel
	case apf.ChannelData:
		id = m.RecipientChannel
	case apf.ChannelClose:
		id = m.RecipientChannel
	}
	s.ch.mu.Lock()
	c := s.ch.byID[id]
	s.ch.mu.Unlock()
	if c == nil {
		return nil // a channel already freed: late or stray, dropped
	}
	switch m := m.(type) {
	case apf.ChannelOpenConfirmation:
		c.confirm(m)
	case apf.ChannelOpenFailure:
		c.refuse(m.Reason)
	case apf.ChannelWindowAdjust:
		c.credit(m.BytesToAdd)
	case apf.ChannelData:
		return c.deliver(m.Data)
	case apf.ChannelClose:
		c.remoteClose()
	}
	return nil
}

// failChannels ends every channel when the link goes.
func (s *session) failChannels() {
	t := s.ch
	t.mu.Lock()
	if t.isDead {
		t.mu.Unlock()
		return
	}
	t.isDead = true
	close(t.dead)
	all := make([]*channel, 0, len(t.byID))
	for _, c := range t.byID {
		all = append(all, c)
	}
	t.mu.Unlock()
	for _, c := range all {
		c.mu.Lock()
		c.err = errLinkClosed
		c.state = chanDead
		c.rclosed = true
		c.cond.Broadcast()
		c.signalOpenLocked()
		c.mu.Unlock()
		c.release()
	}
}

type chanState int

const (
	chanPending   chanState = iota // CHANNEL_OPEN sent
	chanAbandoned                  // the Dial gave up while pending
	chanOpen                       // confirmed
	chanRefused                    // OPEN_FAILURE
	chanDead                       // the link ended
)

// channel is amtd's end of one channel, a net.Conn. Flow control follows
// spec/apf.md §7.2: amtd sends at most the device's credits, and grants
// WINDOW_ADJUST once the reader has consumed half its window.
type channel struct {
	s      *session
	id     uint32
	port   uint16
	opened chan struct{} // closed once the open is answered or the link dies

	mu         sync.Mutex
	cond       *sync.Cond
	state      chanState
	err        error // why open failed, or errLinkClosed
	peer       uint32
	credits    uint32
	buf        []byte // unread data, inside arr
	arr        []byte // buf's backing array, at most the window's size
	consumed   uint32
	rclosed    bool // the device sent CHANNEL_CLOSE (or the link died)
	closeSent  bool
	closed     bool // Close was called
	signalled  bool
	freed      bool
	rdl, wdl   time.Time
	timer      *time.Timer
	closeTimer *time.Timer
}

func newChannel(s *session, id uint32, port uint16) *channel {
	c := &channel{s: s, id: id, port: port, opened: make(chan struct{})}
	c.cond = sync.NewCond(&c.mu)
	return c
}

func (c *channel) signalOpenLocked() {
	if !c.signalled {
		c.signalled = true
		close(c.opened)
	}
}

func (c *channel) confirm(m apf.ChannelOpenConfirmation) {
	c.mu.Lock()
	switch c.state {
	case chanPending:
		c.state, c.peer, c.credits = chanOpen, m.SenderChannel, m.InitialWindow
		c.signalOpenLocked()
		c.mu.Unlock()
	case chanAbandoned:
		c.state, c.peer, c.closed, c.closeSent = chanOpen, m.SenderChannel, true, true
		c.mu.Unlock()
		_ = c.s.send(apf.ChannelClose{RecipientChannel: m.SenderChannel})
		c.awaitClose()
	default:
		c.mu.Unlock() // a second confirmation: ignored
	}
}

func (c *channel) refuse(r apf.OpenFailureReason) {
	c.mu.Lock()
	if c.state != chanPending && c.state != chanAbandoned {
		c.mu.Unlock()
		return
	}
	c.state, c.err = chanRefused, refusal{r}
	c.signalOpenLocked()
	c.mu.Unlock()
	c.release() // never confirmed: nothing to close (spec/apf.md §7.3)
}

func (c *channel) credit(n uint32) {
	c.mu.Lock()
	if c.state == chanOpen {
		c.credits = uint32(min(uint64(c.credits)+uint64(n), math.MaxUint32))
		c.cond.Broadcast()
	}
	c.mu.Unlock()
}

func (c *channel) deliver(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.state != chanOpen:
		return fmt.Errorf("%w: CHANNEL_DATA on channel %d before its confirmation", errProtocol, c.id)
	case c.closed || c.rclosed:
		return nil // in flight when amtd closed: dropped
	case len(c.buf)+int(c.consumed)+len(b) > int(c.s.svc.window):
		// Unread plus read-but-not-yet-granted bytes are what the device
		// has used of the window; past it the device ignored flow control.
		return fmt.Errorf("%w: the device overran channel %d's window of %d bytes", errProtocol, c.id, c.s.svc.window)
	}
	if need := len(c.buf) + len(b); need > cap(c.buf) {
		// Slide the unread data to the front of the array, which doubles
		// from chanBufStart up to the window when the unread data needs it
		// and is then reused for every later window.
		if need > cap(c.arr) {
			n := max(cap(c.arr), min(chanBufStart, int(c.s.svc.window)))
			for n < need {
				n = min(2*n, int(c.s.svc.window))
			}
			c.arr = make([]byte, 0, n)
		}
		c.buf = c.arr[:copy(c.arr[:len(c.buf)], c.buf)]
	}
	c.buf = append(c.buf, b...) // copies: b aliases the reader's buffer
	c.cond.Broadcast()
	return nil
}

// remoteClose answers the device's CHANNEL_CLOSE once and frees the channel
// (spec/apf.md §7.3).
func (c *channel) remoteClose() {
	c.mu.Lock()
	if c.state != chanOpen {
		c.mu.Unlock()
		return // never confirmed: no close-ack
	}
	c.rclosed = true
	send := !c.closeSent
	c.closeSent = true
	c.cond.Broadcast()
	c.mu.Unlock()
	if send {
		_ = c.s.send(apf.ChannelClose{RecipientChannel: c.peer})
	}
	c.release()
}

// awaitClose frees the channel if the device does not answer amtd's
// CHANNEL_CLOSE in closeTimeout.
func (c *channel) awaitClose() {
	c.mu.Lock()
	if !c.freed && c.closeTimer == nil {
		c.closeTimer = time.AfterFunc(closeTimeout, c.release)
	}
	c.mu.Unlock()
}

// release removes the channel from the table and gives its slot back, once.
func (c *channel) release() {
	c.mu.Lock()
	if c.freed {
		c.mu.Unlock()
		return
	}
	c.freed = true
	if c.closeTimer != nil {
		c.closeTimer.Stop()
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	t := c.s.ch
	t.mu.Lock()
	delete(t.byID, c.id)
	t.mu.Unlock()
	<-t.slots
}

func expired(dl time.Time) bool { return !dl.IsZero() && !time.Now().Before(dl) }

// Read returns the device's data; io.EOF once the device closed the channel
// and the data is consumed.
func (c *channel) Read(p []byte) (int, error) {
	c.mu.Lock()
	for len(c.buf) == 0 {
		switch {
		case c.closed:
			c.mu.Unlock()
			return 0, net.ErrClosed
		case c.err != nil:
			err := c.err
			c.mu.Unlock()
			return 0, err
		case c.rclosed:
			c.mu.Unlock()
			return 0, io.EOF
		case expired(c.rdl):
			c.mu.Unlock()
			return 0, os.ErrDeadlineExceeded
		}
		c.cond.Wait()
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	if len(c.buf) == 0 {
		c.buf = c.arr[:0]
	}
	c.consumed += uint32(n)
	var adjust uint32
	if c.consumed > c.s.svc.window/2 && !c.rclosed {
		adjust, c.consumed = c.consumed, 0
	}
	peer := c.peer
	c.mu.Unlock()
	if adjust > 0 {
		c.s.svc.adjusts.Add(1)
		// A failed write means the link is going; the session's reader
		// sees it and fails the channel, so the bytes read stand.
		_ = c.s.send(apf.ChannelWindowAdjust{RecipientChannel: peer, BytesToAdd: adjust})
	}
	return n, nil
}

// Write sends p in chunks of at most chanChunk, within the device's credits.
func (c *channel) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		c.mu.Lock()
		for c.credits == 0 && !c.closed && !c.rclosed && !expired(c.wdl) {
			c.cond.Wait()
		}
		switch {
		case c.closed:
			c.mu.Unlock()
			return written, net.ErrClosed
		case c.err != nil:
			err := c.err
			c.mu.Unlock()
			return written, err
		case c.rclosed:
			c.mu.Unlock()
			return written, fmt.Errorf("cira: channel to port %d: %w", c.port, errClosedByDevice)
		case c.credits == 0:
			c.mu.Unlock()
			return written, os.ErrDeadlineExceeded
		}
		n := min(len(p), chanChunk, int(c.credits))
		c.credits -= uint32(n)
		peer := c.peer
		c.mu.Unlock()
		if err := c.s.send(apf.ChannelData{RecipientChannel: peer, Data: p[:n]}); err != nil {
			return written, fmt.Errorf("%w: %v", errLinkClosed, err)
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

var errClosedByDevice = errors.New("closed by the device")

// Close sends CHANNEL_CLOSE (once) and frees the channel when the device
// answers, or after closeTimeout.
func (c *channel) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.buf, c.arr = nil, nil
	c.cond.Broadcast()
	send := !c.closeSent && c.state == chanOpen
	c.closeSent = true
	done := c.rclosed
	peer := c.peer
	c.mu.Unlock()
	if done {
		return nil // the device closed first; already answered and freed
	}
	var err error
	if send {
		err = c.s.send(apf.ChannelClose{RecipientChannel: peer})
	}
	c.awaitClose()
	return err
}

type chanAddr struct{ s string }

func (a chanAddr) Network() string { return "apf" }
func (a chanAddr) String() string  { return a.s }

func (c *channel) LocalAddr() net.Addr { return chanAddr{"amtd"} }
func (c *channel) RemoteAddr() net.Addr {
	return chanAddr{fmt.Sprintf("%s:%d", c.s.uuid, c.port)}
}

func (c *channel) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdl, c.wdl = t, t
	c.armLocked()
	c.mu.Unlock()
	return nil
}

func (c *channel) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdl = t
	c.armLocked()
	c.mu.Unlock()
	return nil
}

func (c *channel) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.wdl = t
	c.armLocked()
	c.mu.Unlock()
	return nil
}

// armLocked wakes waiters when the earliest deadline passes.
func (c *channel) armLocked() {
	if c.timer != nil {
		c.timer.Stop()
	}
	next := c.rdl
	if next.IsZero() || (!c.wdl.IsZero() && c.wdl.Before(next)) {
		next = c.wdl
	}
	if next.IsZero() {
		return
	}
	c.timer = time.AfterFunc(time.Until(next)+time.Millisecond, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
}
