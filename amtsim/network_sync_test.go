package amtsim

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"

	"amtd/amt/wsman"
)

func TestEthernetPortStatic(t *testing.T) {
	d, err := New(Config{Net: NetIdentity{IP: netip.MustParseAddr("10.1.2.3")}})
	if err != nil {
		t.Fatal(err)
	}
	user, pw := d.LocalSystemAccount()
	c := wsman.NewClient(func(context.Context) (net.Conn, error) {
		a, b := net.Pipe()
		go d.ServeLocal(b)
		return a, nil
	}, wsman.Credentials{Host: d.UUID.String() + ":16992", Username: user, Password: pw})
	ctx := context.Background()
	wired := func() wsman.Instance {
		t.Helper()
		var in wsman.Instance
		if err := c.Get(ctx, "AMT_EthernetPortSettings", &in, wsman.Selector{Name: "InstanceID", Value: "Intel(r) AMT Ethernet Port Settings 0"}); err != nil {
			t.Fatal(err)
		}
		return in
	}
	put := func(kv ...string) error {
		in := wired()
		for i := 0; i < len(kv); i += 2 {
			in.Set(kv[i], kv[i+1])
		}
		_, err := c.Put(ctx, "AMT_EthernetPortSettings", in, wsman.Selector{Name: "InstanceID", Value: in.Value("InstanceID")})
		return err
	}
	if w := wired(); w.Value("IPAddress") != "10.1.2.3" {
		t.Fatalf("DHCP mode shows %q, not the lease", w.Value("IPAddress"))
	}
	var f *wsman.Fault
	if err := put("DHCPEnabled", "false", "IpSyncEnabled", "false", "IPAddress", "not-an-ip"); !errors.As(err, &f) {
		t.Fatalf("static without an address: %v", err)
	}
	if w := wired(); w.Value("DHCPEnabled") != "true" {
		t.Fatal("a refused Put changed the port")
	}
	if err := put("DHCPEnabled", "false", "IpSyncEnabled", "false", "IPAddress", "192.168.9.9", "SubnetMask", "255.255.255.0"); err != nil {
		t.Fatal(err)
	}
	if w := wired(); w.Value("IPAddress") != "192.168.9.9" {
		t.Fatalf("static mode shows %q", w.Value("IPAddress"))
	}
}
