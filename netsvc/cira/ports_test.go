package cira

import (
	"slices"
	"strings"
	"testing"

	"amtd/amt/apf"
)

// TestBoundPorts: the ports a link forwards are known the moment AMT's
// tcpip-forward is answered, not when the store is next written; a
// cancelled forward goes at once; a device without a link has none.
func TestBoundPorts(t *testing.T) {
	dir := newFakeDir()
	dir.add(devA, "u", "p")
	s := newPipeService(t, testConfig(), dir)
	if p, ok := s.BoundPorts(devA); ok || p != nil {
		t.Fatalf("before any link: %v %v", p, ok)
	}
	c := s.dial(t)
	defer c.raw.Close()
	c.login(devA, "u", "p")
	c.forward(16993, 16995)
	// Any case, as Dial takes it.
	if p, ok := s.BoundPorts(strings.ToUpper(devA)); !ok || !slices.Equal(p, []uint16{16993, 16995}) {
		t.Fatalf("after the forwards: %v %v, want [16993 16995] true", p, ok)
	}
	c.mustSend(apf.CancelTCPIPForward{WantReply: true, Address: "dev.corp.example.com", Port: 16993})
	for {
		m, err := c.read()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m.(apf.RequestSuccess); ok {
			break
		}
	}
	if p, ok := s.BoundPorts(devA); !ok || !slices.Equal(p, []uint16{16995}) {
		t.Fatalf("after cancelling 16993: %v %v, want [16995] true", p, ok)
	}
	if p, ok := s.BoundPorts("not-a-uuid"); ok || p != nil {
		t.Fatalf("a malformed UUID: %v %v", p, ok)
	}
}
