package netsvc

import (
	"net"
	"strings"
	"testing"
)

// A reload builds the new service on the same socket before closing the old
// one: closing a service's listener must not close the registry's socket.
func TestStreamSurvivesServiceClose(t *testing.T) {
	l := NewListeners(nil)
	defer l.Close()
	a, err := l.Stream("hello", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := a.Addr().String()
	b, err := l.Stream("hello", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if b.Addr().String() != addr {
		t.Fatalf("second Stream bound a new socket %s, want the same %s", b.Addr(), addr)
	}
	a.Close()
	done := make(chan error, 1)
	go func() {
		c, err := b.Accept()
		if err == nil {
			c.Close()
		}
		done <- err
	}()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial after closing the first copy: %v", err)
	}
	c.Close()
	if err := <-done; err != nil {
		t.Fatalf("accept on the second copy: %v", err)
	}
	b.Close()
}

func TestStreamAddressInUseSaysWhatToDo(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	l := NewListeners(nil)
	defer l.Close()
	_, err = l.Stream("api", busy.Addr().String())
	if err == nil {
		t.Fatal("binding a busy address succeeded")
	}
	if want := "address in use"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
}

func TestPacketSharedAcrossCopies(t *testing.T) {
	l := NewListeners(nil)
	defer l.Close()
	a, err := l.Packet("dns", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Packet("dns", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if a.LocalAddr().String() != b.LocalAddr().String() {
		t.Fatalf("copies on different sockets: %s vs %s", a.LocalAddr(), b.LocalAddr())
	}
	a.Close()
	b.Close()
}
