package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"amtd/daemon/config"
	"amtd/netsvc/api"
	"amtd/store"
)

// TestDaemonWiringDisconnect: the API the daemon's service table builds
// drops a device's CIRA link through the CIRA service the table built
// (DELETE /api/v1/devices/disconnect), and the device comes back.
func TestDaemonWiringDisconnect(t *testing.T) {
	const conf = `[Site]
Domain=corp.example.com
Hostname=amtd.corp.example.com
Address=127.0.0.1

[CIRA]
Enable=yes
Listen=127.0.0.1:0

[API]
Enable=yes
Listen=127.0.0.1:0
`
	ctx := context.Background()
	st, tok := wiringStore(t, store.RoleOperator)
	cfg, err := config.Parse("amtd.conf", strings.NewReader(conf))
	if err != nil {
		t.Fatal(err)
	}
	apiAddr, ciraAddr := startWiring(t, cfg, st)
	api.StartSimDevice(t, st, ciraAddr, api.SimUUID, nil)
	before, err := st.Devices().Get(ctx, api.SimUUID)
	if err != nil {
		t.Fatal(err)
	}

	status, body := wiringCall(t, st, "DELETE", apiAddr, "/api/v1/devices/disconnect/"+api.SimUUID, tok)
	if status != 200 || !strings.Contains(string(body), "disconnected") {
		t.Fatalf("disconnect through the daemon's CIRA service: %d %s", status, body)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		d, err := st.Devices().Get(ctx, api.SimUUID)
		if err == nil && d.CIRA.Connected && d.CIRA.ConnectedSince.After(before.CIRA.ConnectedSince) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new CIRA link after the disconnect: %+v", d.CIRA)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
