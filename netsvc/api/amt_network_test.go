package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"amtd/amt/wsman"
	"amtd/store"
)

// TestAMTWiredNetworkOverCIRA: through a real CIRA link an operator moves
// the simulated device's wired port from DHCP to a static address of its
// own, to the host's static address, and back to DHCP; GET wired shows
// each. Bad bodies are refused with 400 naming the problem and leave the
// port as it was; a viewer may read but not change; the Wi-Fi state reads
// as MPS names it; every call is audited.
func TestAMTWiredNetworkOverCIRA(t *testing.T) {
	ce := newCIRAEnv(t)
	ce.addDevice(simUUID)
	ce.device(t, simUUID)
	viewer, op := ce.key(store.RoleViewer, "viewer"), ce.key(store.RoleOperator, "op")
	sc := &settingsCall{t: t, ce: ce}
	wired := "/api/v1/amt/networkSettings/wired/" + simUUID

	read := func() (map[string]any, string) {
		t.Helper()
		var m map[string]any
		sc.json("GET", wired, viewer, "", &m)
		b, _ := json.Marshal(m)
		return m, string(b)
	}
	w, before := read()
	if w["instanceID"] != "Intel(r) AMT Ethernet Port Settings 0" || w["dhcpEnabled"] != true || w["ipSyncEnabled"] != true ||
		w["sharedStaticIP"] != false || w["physicalConnectionType"] != "Integrated LAN NIC" || w["ieee8021x"] == nil {
		t.Fatalf("wired port at start: %v", w)
	}

	static := `{"dhcpEnabled": false, "ipSyncEnabled": false, "ipAddress": "192.168.50.20", "subnetMask": "255.255.255.0", ` +
		`"defaultGateway": "192.168.50.1", "primaryDNS": "192.168.50.2", "secondaryDNS": "9.9.9.9"}`
	for _, c := range []struct{ body, want string }{
		{``, "dhcpEnabled"},
		{`not json`, "dhcpEnabled"},
		{`{}`, "dhcpEnabled is required"},
		{`{"dhcpEnabled": "yes"}`, "dhcpEnabled"},
		{`{"dhcpEnabled": true, "x": 1}`, `unknown field \"x\"`},
		{`{"dhcpEnabled": true} {"dhcpEnabled": false}`, "more than one JSON value"},
		{`{"dhcpEnabled": true, "ipAddress": "192.168.50.20"}`, "when DHCP is enabled (ipAddress)"},
		{`{"dhcpEnabled": true, "ipSyncEnabled": false}`, "ipSyncEnabled"},
		{`{"dhcpEnabled": true, "sharedStaticIP": true}`, "sharedStaticIP true does not go"},
		{`{"dhcpEnabled": false}`, "must enable DHCP, enable IP sync, or provide static IP settings"},
		{`{"dhcpEnabled": false, "ipSyncEnabled": true, "primaryDNS": "1.1.1.1"}`, "when IP sync is enabled (primaryDNS)"},
		{`{"dhcpEnabled": false, "ipSyncEnabled": true, "sharedStaticIp": false}`, "sharedStaticIP false does not go"},
		{`{"dhcpEnabled": false, "ipAddress": "192.168.50.20", "subnetMask": "255.255.255.0"}`, "defaultGateway is required"},
		{strings.Replace(static, `"192.168.50.20"`, `"192.168.50.300"`, 1), `ipAddress \"192.168.50.300\" is not an IPv4`},
		{strings.Replace(static, `"192.168.50.20"`, `"fe80::1"`, 1), "not an IPv4"},
		{strings.Replace(static, `"255.255.255.0"`, `"255.0.255.0"`, 1), "not a usable netmask"},
		{strings.Replace(static, `"255.255.255.0"`, `"255.255.255.255"`, 1), "not a usable netmask"},
		{strings.Replace(static, `"192.168.50.20"`, `"192.168.50.255"`, 1), "broadcast address"},
		{strings.Replace(static, `"192.168.50.20"`, `"127.0.0.1"`, 1), "cannot be a host's address"},
		{strings.Replace(static, `"192.168.50.1"`, `"10.0.0.1"`, 1), "not a host on ipAddress's subnet 192.168.50.0/24"},
		{strings.Replace(static, `"9.9.9.9"`, `"224.0.0.1"`, 1), "secondaryDNS 224.0.0.1"},
	} {
		st, b := sc.do("PATCH", wired, op, c.body)
		if st != 400 || !strings.Contains(b, c.want) {
			t.Errorf("PATCH %s: %d %s; want 400 naming %q", c.body, st, b, c.want)
		}
	}
	if st, b := sc.do("PATCH", wired, op, `{"dhcpEnabled": true, "ieee8021x": {"enabled": true}}`); st != 501 || !strings.Contains(b, "802.1X") {
		t.Errorf("PATCH with 802.1X: %d %s", st, b)
	}
	if st, b := sc.do("PATCH", wired, viewer, static); st != 403 {
		t.Errorf("viewer PATCH: %d %s", st, b)
	}
	if _, after := read(); after != before {
		t.Fatalf("refused PATCHes changed the wired port:\n%s\n→\n%s", before, after)
	}

	patch := func(body string) map[string]any {
		t.Helper()
		if st, b := sc.do("PATCH", wired, op, body); st != 204 || b != "" {
			t.Fatalf("PATCH %s: %d %q", body, st, b)
		}
		m, _ := read()
		return m
	}
	// A static address of AMT's own.
	w = patch(static)
	for k, v := range map[string]any{"dhcpEnabled": false, "ipSyncEnabled": false, "sharedStaticIP": false, "ipAddress": "192.168.50.20",
		"subnetMask": "255.255.255.0", "defaultGateway": "192.168.50.1", "primaryDNS": "192.168.50.2", "secondaryDNS": "9.9.9.9"} {
		if w[k] != v {
			t.Errorf("after the static PATCH %s = %v, want %v (all: %v)", k, w[k], v, w)
		}
	}
	// The host's static address, shared; MPS's spelling of the DNS fields
	// and GET's of sharedStaticIP are both taken.
	w = patch(`{"dhcpEnabled": false, "ipSyncEnabled": true, "sharedStaticIP": true}`)
	if w["dhcpEnabled"] != false || w["ipSyncEnabled"] != true || w["sharedStaticIP"] != true {
		t.Errorf("after the shared static PATCH: %v", w)
	}
	// Back to DHCP.
	w = patch(`{"dhcpEnabled": true}`)
	if w["dhcpEnabled"] != true || w["ipSyncEnabled"] != true || w["sharedStaticIP"] != false {
		t.Errorf("after the DHCP PATCH: %v", w)
	}

	var ws map[string]string
	sc.json("GET", "/api/v1/amt/networkSettings/wireless/state/"+simUUID, viewer, "", &ws)
	if ws["state"] != "WifiDisabled" { // the fixture's CIM_WiFiPort has EnabledState 3
		t.Errorf("wireless state %v", ws)
	}

	es, err := ce.st.AuditList(context.Background(), store.AuditQuery{Object: "device/" + simUUID, Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range es {
		seen[e.Action+" "+e.Result]++
	}
	if seen["api.amt.networkSettings.wired.set ok"] != 3 || seen["api.amt.networkSettings.wired ok"] == 0 ||
		seen["api.amt.networkSettings.wireless.state ok"] != 1 {
		t.Errorf("audit rows %v", seen)
	}
	all, err := ce.st.AuditList(context.Background(), store.AuditQuery{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, e := range all {
		if e.Action == "api.amt.networkSettings.wired.set" && strings.HasPrefix(e.Result, "400") {
			refused++
		}
	}
	if refused != 21 {
		t.Errorf("%d refused PATCHes audited, want 21", refused)
	}
	noPasswords(t, ce, sc.bodies)
}

// TestAMTNetworkWithoutCIRA: with [CIRA] off the routes say so, after a
// PATCH body has been checked.
func TestAMTNetworkWithoutCIRA(t *testing.T) {
	e := newEnv(t, false)
	e.putDevice(uuidA, "a", true)
	tok := e.key(store.RoleAdmin, "admin")
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/api/v1/amt/networkSettings/wired/" + uuidA, ""},
		{"PATCH", "/api/v1/amt/networkSettings/wired/" + uuidA, `{"dhcpEnabled": true}`},
		{"GET", "/api/v1/amt/networkSettings/wireless/state/" + uuidA, ""},
	} {
		var r io.Reader
		if c.body != "" {
			r = strings.NewReader(c.body)
		}
		st, b := e.do(c.method, c.path, bearer(tok), r)
		if st != 404 || !strings.Contains(string(b), "[CIRA] is off") {
			t.Errorf("%s %s: %d %s", c.method, c.path, st, b)
		}
	}
}

// FuzzWiredBody sends arbitrary PATCH wired bodies. What parseWired
// accepts obeys AMT's rules (spec/wsman.md §6): DHCP with IP sync and no
// shared static address; otherwise SharedStaticIp = IpSyncEnabled, and a
// static address of AMT's own has an IPv4 address on a /1–/30 subnet, its
// gateway on it. Through the API, with [CIRA] off, what it accepts gets
// 404 ([CIRA] is off) and what it refuses its status, always as a JSON
// error.
func FuzzWiredBody(f *testing.F) {
	f.Add([]byte(`{"dhcpEnabled": true}`))
	f.Add([]byte(`{"dhcpEnabled": false, "ipSyncEnabled": true}`))
	f.Add([]byte(`{"dhcpEnabled": false, "ipAddress": "10.1.2.3", "subnetMask": "255.255.0.0", "defaultGateway": "10.1.0.1", "primaryDNS": "10.1.0.2"}`))
	f.Add([]byte(`{"dhcpEnabled": false, "ipSyncEnabled": false, "ipAddress": "10.1.2.3", "subnetMask": "255.255.255.252", "defaultGateway": "10.1.2.2", "primaryDNS": "8.8.8.8", "secondaryDNS": ""}`))
	f.Add([]byte(`{"dhcpEnabled": true, "ieee8021x": null, "sharedStaticIp": false}`))
	f.Add([]byte(`{"DHCPENABLED": false, "ipsyncenabled": true, "primaryDns": "::ffff:1.2.3.4"}`))
	e := newEnv(f, false)
	e.putDevice(uuidA, "a", true)
	tok := e.key(store.RoleOperator, "op")
	h := e.svc.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		p, st, msg := parseWired(body)
		if st == 0 {
			switch {
			case p.dhcp && (!p.ipSync || p.sharedStatic):
				t.Fatalf("%q: DHCP with %+v", body, p)
			case !p.dhcp && p.sharedStatic != p.ipSync:
				t.Fatalf("%q: static with SharedStaticIp != IpSyncEnabled: %+v", body, p)
			case p.static():
				bits, ok := maskBits(p.mask)
				subnet := netip.PrefixFrom(p.ip, bits).Masked()
				if !p.ip.Is4() || !ok || bits < 1 || bits > 30 || !subnet.Contains(p.gateway) || p.gateway == p.ip || !p.dns1.Is4() {
					t.Fatalf("%q: accepted static %+v", body, p)
				}
			case p.ip.IsValid() || p.gateway.IsValid() || p.dns1.IsValid():
				t.Fatalf("%q: addresses with DHCP or IP sync: %+v", body, p)
			}
		} else if msg == "" || st != 400 && st != 501 {
			t.Fatalf("%q: refused with %d %q", body, st, msg)
		}
		req := httptest.NewRequest("PATCH", "/api/v1/amt/networkSettings/wired/"+uuidA, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		var ae apiError
		if err := json.Unmarshal(w.Body.Bytes(), &ae); err != nil || ae.Message == "" {
			t.Fatalf("answer %q to %q", w.Body.String(), body)
		}
		want := st
		if st == 0 {
			want = 404
		}
		if w.Code != want || want == 404 && !strings.Contains(ae.Message, "[CIRA] is off") {
			t.Fatalf("%q: %d %q, want %d", body, w.Code, ae.Message, want)
		}
	})
}

// TestWiredPutBody: the Put carries what MPS's buildWiredSettingsRequest
// sends, in the schema's order: the port's name, key and SharedMAC, the
// three flags, and addresses only for a static address of AMT's own.
func TestWiredPutBody(t *testing.T) {
	cur := wsmanInstance("AMT_EthernetPortSettings", "DHCPEnabled", "true", "ElementName", "Intel(r) AMT Ethernet Port Settings",
		"IPAddress", "10.9.9.9", "InstanceID", "Intel(r) AMT Ethernet Port Settings 0", "LinkIsUp", "true", "MACAddress", "c8-d9-d2-7a-1e-33",
		"SharedMAC", "true", "SubnetMask", "255.0.0.0")
	names := func(body []string) string { return strings.Join(body, " ") }
	for _, c := range []struct{ body, want string }{
		{`{"dhcpEnabled": true}`, "ElementName=Intel(r) AMT Ethernet Port Settings InstanceID=Intel(r) AMT Ethernet Port Settings 0 SharedMAC=true " +
			"SharedStaticIp=false IpSyncEnabled=true DHCPEnabled=true"},
		{`{"dhcpEnabled": false, "ipSyncEnabled": true}`, "ElementName=Intel(r) AMT Ethernet Port Settings InstanceID=Intel(r) AMT Ethernet Port Settings 0 " +
			"SharedMAC=true SharedStaticIp=true IpSyncEnabled=true DHCPEnabled=false"},
		{`{"dhcpEnabled": false, "ipAddress": "10.1.2.3", "subnetMask": "255.255.0.0", "defaultGateway": "10.1.0.1", "primaryDNS": "10.1.0.2"}`,
			"ElementName=Intel(r) AMT Ethernet Port Settings InstanceID=Intel(r) AMT Ethernet Port Settings 0 SharedMAC=true SharedStaticIp=false " +
				"IpSyncEnabled=false DHCPEnabled=false IPAddress=10.1.2.3 SubnetMask=255.255.0.0 DefaultGateway=10.1.0.1 PrimaryDNS=10.1.0.2"},
	} {
		p, st, msg := parseWired([]byte(c.body))
		if st != 0 {
			t.Fatalf("%s: %d %s", c.body, st, msg)
		}
		body := wiredPut(&cur, p)
		var got []string
		for _, pr := range body.Props {
			got = append(got, pr.Name+"="+pr.Value)
		}
		if names(got) != c.want {
			t.Errorf("%s: Put body\n%s\nwant\n%s", c.body, names(got), c.want)
		}
	}
}

func TestMaskBits(t *testing.T) {
	for _, c := range []struct {
		mask string
		bits int
		ok   bool
	}{{"255.255.255.0", 24, true}, {"255.255.255.252", 30, true}, {"128.0.0.0", 1, true}, {"0.0.0.0", 0, true},
		{"255.255.255.255", 32, true}, {"255.0.255.0", 8, false}, {"0.255.255.255", 0, false}, {"255.255.254.1", 23, false}} {
		bits, ok := maskBits(netip.MustParseAddr(c.mask))
		if bits != c.bits || ok != c.ok {
			t.Errorf("maskBits(%s) = %d, %v; want %d, %v", c.mask, bits, ok, c.bits, c.ok)
		}
	}
}

// wsmanInstance builds an instance from name, value pairs.
func wsmanInstance(class string, kv ...string) wsman.Instance {
	in := wsman.Instance{Class: class}
	for i := 0; i < len(kv); i += 2 {
		in.Add(kv[i], kv[i+1])
	}
	return in
}
