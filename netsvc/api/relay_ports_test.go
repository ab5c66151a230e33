package api

import (
	"context"
	"errors"
	"net"
	"testing"
)

// portDialer records the port the relay dials and refuses it, so that no
// TLS follows. livePortDialer also tells the link's ports (DevicePorts).
type portDialer struct {
	dialed uint16
}

var errPortDialer = errors.New("port recorded")

func (d *portDialer) Dial(_ context.Context, _ string, port uint16) (net.Conn, error) {
	d.dialed = port
	return nil, errPortDialer
}

type livePortDialer struct {
	portDialer
	live   []uint16
	linked bool
}

func (d *livePortDialer) BoundPorts(string) ([]uint16, bool) { return d.live, d.linked }

// TestRelayPortChoice: the relay dials 16995 or 16994 from the ports the
// live CIRA link forwards when the DeviceDialer knows them, so a link that
// just came up (its device row not yet written, or written by an earlier
// link) gets the right port at once; the stored row is the fallback.
func TestRelayPortChoice(t *testing.T) {
	tests := []struct {
		name   string
		stored []uint16
		dialer interface {
			DeviceDialer
			port() uint16
		}
		want uint16
	}{
		{"fresh TLS-only link, row not yet written", nil,
			&livePortDialer{live: []uint16{16993, 16995}, linked: true}, redirTLSPort},
		{"fresh link, row from an older firmware's link", []uint16{16992, 16993, 16994, 16995},
			&livePortDialer{live: []uint16{16993, 16995}, linked: true}, redirTLSPort},
		{"fresh plain link, row from a TLS-only link", []uint16{16993, 16995},
			&livePortDialer{live: []uint16{16992, 16994}, linked: true}, redirPort},
		{"no live link known: the row", []uint16{16993, 16995},
			&livePortDialer{}, redirTLSPort},
		{"dialer without DevicePorts: the row", []uint16{16993, 16995},
			&portDialer{}, redirTLSPort},
		{"nothing known: 16994", nil, &portDialer{}, redirPort},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Service{opts: Options{Devices: tc.dialer}}
			_, port, err := s.dialRedirection(context.Background(), simUUID, tc.stored)
			if !errors.Is(err, errPortDialer) {
				t.Fatalf("dial: %v", err)
			}
			if got := tc.dialer.port(); got != tc.want || port != tc.want {
				t.Fatalf("dialed %d (reported %d), want %d", got, port, tc.want)
			}
		})
	}
}

func (d *portDialer) port() uint16 { return d.dialed }
