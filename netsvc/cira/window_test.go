package cira

import (
	"errors"
	"io"
	"net"
	"testing"

	"amtd/amt/apf"
)

// windowLink is a device logged in on a pipe service with one channel
// open to 16992 at amtd's real window; msgs carries everything amtd sends
// after the CHANNEL_OPEN (keep-alive requests left out), closed when the
// link ends.
type windowLink struct {
	c    *client
	ch   net.Conn
	id   uint32 // amtd's channel id, the recipient of the device's data
	msgs chan apf.Message
}

const windowDevicePeer = 9 // the device's channel id

func openWindowLink(t *testing.T) *windowLink {
	t.Helper()
	dir := newFakeDir()
	dir.add(devA, "u", "p")
	s := newPipeService(t, testConfig(), dir)
	c := s.dial(t)
	t.Cleanup(func() { c.raw.Close() })
	c.login(devA, "u", "p")
	c.forward(16992)
	got := make(chan net.Conn, 1)
	go func() {
		ch, _ := s.Dial(ctxT(t), devA, 16992)
		got <- ch
	}()
	var open apf.ChannelOpen
	for {
		m, err := c.read()
		if err != nil {
			t.Fatal(err)
		}
		if o, ok := m.(apf.ChannelOpen); ok {
			open = o
			break
		}
	}
	if open.InitialWindow != chanWindow {
		t.Fatalf("CHANNEL_OPEN grants %d bytes, want amtd's window %d", open.InitialWindow, chanWindow)
	}
	c.mustSend(apf.ChannelOpenConfirmation{RecipientChannel: open.SenderChannel, SenderChannel: windowDevicePeer,
		InitialWindow: 4096, Reserved: apf.ChannelOpenReserved})
	ch := <-got
	if ch == nil {
		t.Fatal("no channel")
	}
	t.Cleanup(func() { ch.Close() })
	w := &windowLink{c: c, ch: ch, id: open.SenderChannel, msgs: make(chan apf.Message, 64)}
	// amtd's writes to the pipe wait for the device to read them; read
	// all the time so that a Read's WINDOW_ADJUST never blocks the test.
	go func() {
		defer close(w.msgs)
		for {
			m, err := c.read()
			if err != nil {
				return
			}
			if _, ka := m.(apf.KeepaliveOptionsRequest); !ka {
				w.msgs <- m
			}
		}
	}()
	return w
}

// send sends n bytes of CHANNEL_DATA in AMT's 4096-byte chunks.
func (w *windowLink) send(n int) {
	for n > 0 {
		k := min(n, 4096)
		w.c.mustSend(apf.ChannelData{RecipientChannel: w.id, Data: make([]byte, k)})
		n -= k
	}
}

func (w *windowLink) read(t *testing.T, n int) {
	t.Helper()
	if _, err := io.ReadFull(w.ch, make([]byte, n)); err != nil {
		t.Fatalf("reading %d bytes: %v", n, err)
	}
}

// expectAdjust waits for amtd's next message and wants it to be a
// WINDOW_ADJUST of n bytes to the device's channel.
func (w *windowLink) expectAdjust(t *testing.T, n uint32) {
	t.Helper()
	want := apf.ChannelWindowAdjust{RecipientChannel: windowDevicePeer, BytesToAdd: n}
	if m, ok := <-w.msgs; !ok || m.String() != want.String() {
		t.Fatalf("got %v (link open %v), want %s", m, ok, want)
	}
}

// expectProtocolDrop wants the link to end with DISCONNECT(protocol error)
// and the channel to fail with the link.
func (w *windowLink) expectProtocolDrop(t *testing.T) {
	t.Helper()
	var last apf.Message
	for m := range w.msgs {
		last = m
	}
	if want := (apf.Disconnect{Reason: apf.DisconnectProtocolError}); last == nil || last.String() != want.String() {
		t.Fatalf("last message before the link ended: %v, want %s", last, want)
	}
	if _, err := io.ReadAll(w.ch); !errors.Is(err, errLinkClosed) {
		t.Fatalf("channel after the overrun: %v", err)
	}
}

// TestWindowExactUse: the device may fill amtd's whole window before amtd
// reads anything, and after amtd's WINDOW_ADJUST exactly the granted bytes
// more; amtd grants once more than half the window is read (spec/apf.md
// §7.2).
func TestWindowExactUse(t *testing.T) {
	w := openWindowLink(t)
	w.send(chanWindow)
	// 64 KiB read: over half the window, so all of it is granted back.
	w.read(t, 64<<10)
	w.expectAdjust(t, 64<<10)
	// The rest stays counted, not granted: the device has 64 KiB of
	// credit, and the 16 KiB read plus 64 KiB new fill the window again.
	w.read(t, chanWindow-64<<10)
	w.send(64 << 10)
	w.read(t, 64<<10)
	// One more grant once over half the window is read; how much depends
	// on how the reads met the deliveries, never more than was read.
	m, ok := <-w.msgs
	a, isAdjust := m.(apf.ChannelWindowAdjust)
	if !ok || !isAdjust || a.RecipientChannel != windowDevicePeer || a.BytesToAdd <= chanWindow/2 || a.BytesToAdd > chanWindow {
		t.Fatalf("got %v (link open %v), want one WINDOW_ADJUST to %d of more than half the window, at most all of it", m, ok, windowDevicePeer)
	}
	if _, err := w.ch.Write([]byte("still open")); err != nil {
		t.Fatalf("channel after using the window exactly: %v", err)
	}
	if m := <-w.msgs; m.String() != (apf.ChannelData{RecipientChannel: windowDevicePeer, Data: []byte("still open")}).String() {
		t.Fatalf("got %v, want the channel's data", m)
	}
}

// TestWindowOverrun: a device that sends past amtd's window (it ignores
// flow control) is a protocol error: amtd drops the link with
// DISCONNECT(protocol error) rather than buffer past the window
// (spec/apf.md §1: a stream that breaks the protocol is dropped; the
// window bounds each channel's buffer, channel.go).
func TestWindowOverrun(t *testing.T) {
	t.Run("unread", func(t *testing.T) {
		w := openWindowLink(t)
		w.send(chanWindow)
		w.send(1)
		w.expectProtocolDrop(t)
	})
	// Bytes amtd read but has not yet granted back still count: amtd's
	// buffer has room, but the device has no credit.
	t.Run("read, not yet granted", func(t *testing.T) {
		w := openWindowLink(t)
		w.send(chanWindow)
		w.read(t, 1000) // under half the window: no WINDOW_ADJUST
		w.send(1000)
		w.expectProtocolDrop(t)
	})
}
