package cira

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"amtd/amt/apf"
	"amtd/metrics"
	"amtd/netsvc"
	"amtd/secret"
)

// FuzzProbe feeds the bytes a connection opens with to the classifier and,
// for HTTP, the header reader: no panic, and never more than maxHTTPHeader
// bytes read before the page is sent.
func FuzzProbe(f *testing.F) {
	for _, s := range []string{"GET / HTTP/1.1\r\nHost: amtd\r\n\r\n", "HEAD / HTTP/1.0\n\n", "\x16\x03\x01\x02\x00\x01", "SSH-2.0-x\r\n", "GET " + strings.Repeat("a", 5000)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		k := classify(b)
		if k == kindTLS && (len(b) < 3 || b[0] != 0x16) {
			t.Fatalf("%q classified as TLS", b)
		}
		if k != kindHTTPGet && k != kindHTTPHead {
			return
		}
		cr := &countingReader{r: bytes.NewReader(b)}
		endOfHeader(bufio.NewReaderSize(cr, 64))
		if cr.n > maxHTTPHeader+64 {
			t.Fatalf("read %d bytes of a header", cr.n)
		}
		var out bytes.Buffer
		answerHTTP(&out, k == kindHTTPHead)
		if !strings.HasPrefix(out.String(), "HTTP/1.1 200 OK\r\n") {
			t.Fatalf("page %q", out.String())
		}
	})
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// loginStream is what a device with devA's credentials sends: the seed of
// FuzzSession that reaches the authenticated state.
func loginStream() []byte {
	var b []byte
	for _, m := range []apf.Message{
		apf.ProtocolVersion{Major: 1, Trigger: apf.TriggerPeriodic, UUID: uuidOf(devA)},
		apf.ServiceRequest{Service: apf.ServiceAuth},
		apf.UserauthRequest{User: "u", Service: apf.ServicePortForward, Method: apf.MethodPassword, Password: secret.FromString("p")},
		apf.ServiceRequest{Service: apf.ServicePortForward},
		apf.TCPIPForward{WantReply: true, Address: "h", Port: 16992},
		apf.TCPIPForward{WantReply: true, Address: "h", Port: 5900},
		apf.GlobalRequest{Name: "x", WantReply: true},
		apf.KeepaliveRequest{Cookie: 1},
		apf.ChannelOpen{ChannelType: apf.ChannelForwardedTCPIP, SenderChannel: 1, InitialWindow: 1, Reserved: apf.ChannelOpenReserved},
		apf.CancelTCPIPForward{WantReply: true, Address: "h", Port: 16992},
		apf.KeepaliveOptionsReply{Interval: 30, Timeout: 90},
	} {
		b, _ = m.AppendBinary(b)
	}
	return b
}

// FuzzSession runs the server's APF state machine (after TLS) over
// arbitrary device bytes: no panic, no hang, and no link left registered
// once the stream ends.
func FuzzSession(f *testing.F) {
	good := loginStream()
	f.Add(good)
	f.Add(good[:93])
	f.Add(append(good[:93:93], 5, 0xff, 0xff, 0xff, 0xff))
	f.Add([]byte{0xfa, 0, 0, 0, 2, '{', '}'})
	// Channel messages for channels amtd never opened: dropped.
	stray := good
	for _, m := range []apf.Message{apf.ChannelOpenConfirmation{RecipientChannel: 4, SenderChannel: 1, InitialWindow: 10},
		apf.ChannelData{RecipientChannel: 4, Data: []byte("x")}, apf.ChannelWindowAdjust{RecipientChannel: 4, BytesToAdd: 1},
		apf.ChannelClose{RecipientChannel: 4}} {
		stray, _ = m.AppendBinary(slices.Clip(stray))
	}
	f.Add(stray)
	f.Fuzz(func(t *testing.T, b []byte) {
		sv, err := New(testConfig(), netsvc.Deps{Metrics: metrics.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		dir := newFakeDir()
		dir.add(devA, "u", "p")
		sv.dir = dir
		client, server := net.Pipe()
		_ = server.SetDeadline(time.Now().Add(10 * time.Second))
		go func() { _, _ = io.Copy(io.Discard, client) }()
		go func() {
			_, _ = client.Write(b)
			client.Close()
		}()
		s := &session{svc: sv, conn: server, remote: "pipe", ch: newChans()}
		r := apf.NewReader(server, apf.Limits{MaxData: maxChannelData})
		if s.authenticate(context.Background(), r) == resultAuthenticated {
			s.run(r)
		}
		server.Close()
		if n := sv.ConnectedDevices(); n != 0 {
			t.Fatalf("%d links registered after the stream ended", n)
		}
	})
}
