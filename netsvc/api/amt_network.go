package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"amtd/amt/wsman"
	"amtd/store"
)

// networkRoutes are MPS's wired network routes and the Wi-Fi state
// (spec/redirection.md §7.2). MPS's POST /amt/network/linkPreference is
// not served: spec/wsman.md does not describe AMT_EthernetPortSettings'
// SetLinkPreference and no fixture has its answer. The wireless profile and
// profile-sync routes are not served either.
func (s *Service) networkRoutes() []route {
	return []route{
		{"GET", "/api/v1/amt/networkSettings/wired/{guid}", "amt.networkSettings.wired", store.RoleViewer, s.getWired},
		{"PATCH", "/api/v1/amt/networkSettings/wired/{guid}", "amt.networkSettings.wired.set", store.RoleOperator, s.patchWired},
		{"GET", "/api/v1/amt/networkSettings/wireless/state/{guid}", "amt.networkSettings.wireless.state", store.RoleViewer, s.wirelessState},
	}
}

// findWiredPort picks the wired port among the device's
// AMT_EthernetPortSettings as provisioning does: PhysicalConnectionType 0
// (integrated LAN NIC; 3 is wireless), else, on firmware that leaves the
// type out, instance "Intel(r) AMT Ethernet Port Settings 0".
func findWiredPort(ports []wsman.Instance) *wsman.Instance {
	for i := range ports {
		if ports[i].Value("PhysicalConnectionType") == "0" {
			return &ports[i]
		}
	}
	for i := range ports {
		if _, has := ports[i].Get("PhysicalConnectionType"); !has && strings.HasSuffix(ports[i].Value("InstanceID"), " 0") {
			return &ports[i]
		}
	}
	return nil
}

// readWired enumerates the ports and returns the wired one; when ok is
// false the answer is sent (404 when there is no wired port, as MPS).
func (s *Service) readWired(w http.ResponseWriter, r *http.Request, c *wsman.Client, u string) (*wsman.Instance, int, bool) {
	ports, err := c.Enumerate(r.Context(), "AMT_EthernetPortSettings")
	if err != nil {
		return nil, s.deviceError(w, u, err), false
	}
	p := findWiredPort(ports)
	if p == nil {
		return nil, writeError(w, http.StatusNotFound, "device "+u+" reports no wired port among its "+
			strconv.Itoa(len(ports))+" AMT_EthernetPortSettings"), false
	}
	return p, 0, true
}

// getWired is GET /api/v1/amt/networkSettings/wired/{guid}: the wired port
// as in GET networkSettings (MPS's toWiredNetworkInfo), with its 802.1X
// state from IPS_IEEE8021xSettings (empty when the firmware faults on it).
func (s *Service) getWired(w http.ResponseWriter, r *http.Request) (string, int) {
	c, done, u, obj, st, ok := s.deviceClient(w, r)
	if !ok {
		return obj, st
	}
	defer done()
	p, st, ok := s.readWired(w, r, c, u)
	if !ok {
		return obj, st
	}
	out := networkInfo(p)
	var x wsman.Instance
	if err := c.Get(r.Context(), "IPS_IEEE8021xSettings", &x); err != nil && !isFault(err) {
		return obj, s.deviceError(w, u, err)
	}
	out["ieee8021x"] = map[string]any{"enabled": enumName(&x, "Enabled", ieee8021xEnabledNames),
		"availableInS0": propBool(&x, "AvailableInS0"), "pxeTimeout": propInt(&x, "PxeTimeout")}
	return obj, writeJSON(w, http.StatusOK, out)
}

// wiredRequest is the body of PATCH wired in MPS's field names (its
// WiredNetworkConfigRequest). sharedStaticIP is amtd's: MPS derives it,
// and so does amtd; a client that sends it (as GET spells it) must agree
// with AMT's rule. JSON field names match without regard to case, so
// "primaryDns" and "sharedStaticIp" are taken too.
type wiredRequest struct {
	DHCPEnabled    *bool           `json:"dhcpEnabled"`
	IPSyncEnabled  *bool           `json:"ipSyncEnabled"`
	SharedStaticIP *bool           `json:"sharedStaticIP"`
	IPAddress      string          `json:"ipAddress"`
	SubnetMask     string          `json:"subnetMask"`
	DefaultGateway string          `json:"defaultGateway"`
	PrimaryDNS     string          `json:"primaryDNS"`
	SecondaryDNS   string          `json:"secondaryDNS"`
	IEEE8021x      json.RawMessage `json:"ieee8021x"`
}

// wiredPlan is what a valid PATCH puts on the wired port: the three flags
// of spec/wsman.md §6 and, for a static address of AMT's own, the
// addresses (secondary DNS may be invalid: none).
type wiredPlan struct {
	dhcp, ipSync, sharedStatic bool
	ip, mask, gateway, dns1    netip.Addr
	dns2                       netip.Addr
}

// static reports whether the plan gives AMT addresses of its own.
func (p wiredPlan) static() bool { return !p.dhcp && !p.ipSync }

const wiredWant = `want a JSON body {"dhcpEnabled": bool, "ipSyncEnabled": bool, "ipAddress", "subnetMask", "defaultGateway", "primaryDNS", "secondaryDNS"}: ` +
	`{"dhcpEnabled": true} for DHCP, {"dhcpEnabled": false, "ipSyncEnabled": true} to share the host's static address, ` +
	`or {"dhcpEnabled": false, "ipSyncEnabled": false} with ipAddress, subnetMask, defaultGateway and primaryDNS (secondaryDNS optional)`

// parseWired reads and checks a PATCH wired body against AMT's rules
// (spec/wsman.md §6 AMT_EthernetPortSettings) before the device is asked
// anything. DHCP: IpSyncEnabled on, SharedStaticIp off, no addresses.
// Static: SharedStaticIp = IpSyncEnabled; with sync AMT takes the host's
// address (no addresses may be given), without it needs an address, mask,
// gateway and DNS server of its own (MPS's rule). ipSyncEnabled left out
// with DHCP off is read from the addresses: given means off. Empty strings
// count as absent, as in MPS. The error is the status and the message.
func parseWired(body []byte) (wiredPlan, int, string) {
	var req wiredRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return wiredPlan{}, http.StatusBadRequest, "body: " + truncate(err.Error(), 120) + "; " + wiredWant
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return wiredPlan{}, http.StatusBadRequest, "body: more than one JSON value; " + wiredWant
	}
	if len(req.IEEE8021x) > 0 && string(req.IEEE8021x) != "null" {
		// As MPS: 802.1X on the wired port is not configured here.
		return wiredPlan{}, http.StatusNotImplemented, "ieee8021x: 802.1X settings of the wired port are not supported; leave ieee8021x out"
	}
	if req.DHCPEnabled == nil {
		return wiredPlan{}, http.StatusBadRequest, "dhcpEnabled is required: " + wiredWant
	}
	var p wiredPlan
	var given []string
	for _, f := range []struct {
		name, v string
		dst     *netip.Addr
	}{{"ipAddress", req.IPAddress, &p.ip}, {"subnetMask", req.SubnetMask, &p.mask}, {"defaultGateway", req.DefaultGateway, &p.gateway},
		{"primaryDNS", req.PrimaryDNS, &p.dns1}, {"secondaryDNS", req.SecondaryDNS, &p.dns2}} {
		if f.v == "" {
			continue
		}
		given = append(given, f.name)
		a, err := netip.ParseAddr(f.v)
		if err != nil || !a.Is4() {
			return wiredPlan{}, http.StatusBadRequest, f.name + " " + strconv.Quote(truncate(f.v, 40)) + " is not an IPv4 address (AMT's wired settings are IPv4; a.b.c.d)"
		}
		*f.dst = a
	}
	p.dhcp = *req.DHCPEnabled
	switch {
	case p.dhcp:
		if req.IPSyncEnabled != nil && !*req.IPSyncEnabled {
			return wiredPlan{}, http.StatusBadRequest, `ipSyncEnabled: with DHCP AMT shares the host's address, so IP sync is on; send "ipSyncEnabled": true or leave it out`
		}
		if len(given) > 0 {
			return wiredPlan{}, http.StatusBadRequest, "cannot specify static IP settings when DHCP is enabled (" + strings.Join(given, ", ") +
				"): AMT takes its address from DHCP; send them with \"dhcpEnabled\": false"
		}
		p.ipSync = true
	case req.IPSyncEnabled != nil:
		p.ipSync = *req.IPSyncEnabled
	default:
		p.ipSync = len(given) == 0
		if p.ipSync {
			return wiredPlan{}, http.StatusBadRequest, "must enable DHCP, enable IP sync, or provide static IP settings: " + wiredWant
		}
	}
	if !p.dhcp && p.ipSync && len(given) > 0 {
		return wiredPlan{}, http.StatusBadRequest, "cannot specify static IP settings when IP sync is enabled (" + strings.Join(given, ", ") +
			"): AMT then shares the host's static address; send \"ipSyncEnabled\": false to give AMT its own"
	}
	p.sharedStatic = !p.dhcp && p.ipSync
	if req.SharedStaticIP != nil && *req.SharedStaticIP != p.sharedStatic {
		return wiredPlan{}, http.StatusBadRequest, "sharedStaticIP " + strconv.FormatBool(*req.SharedStaticIP) + " does not go with dhcpEnabled " +
			strconv.FormatBool(p.dhcp) + " and ipSyncEnabled " + strconv.FormatBool(p.ipSync) + ": AMT shares a static address exactly when " +
			"DHCP is off and IP sync on (spec/wsman.md §6); leave sharedStaticIP out"
	}
	if p.static() {
		if msg := checkStatic(p); msg != "" {
			return wiredPlan{}, http.StatusBadRequest, msg
		}
	}
	return p, 0, ""
}

// checkStatic checks a static address of AMT's own: all four required (as
// MPS), a contiguous mask, an address usable on its subnet, a gateway on
// that subnet and a DNS server that can be a host. A wrong one would leave
// the device unreachable, which the console cannot undo over CIRA.
func checkStatic(p wiredPlan) string {
	for _, f := range []struct {
		name string
		a    netip.Addr
	}{{"ipAddress", p.ip}, {"subnetMask", p.mask}, {"defaultGateway", p.gateway}, {"primaryDNS", p.dns1}} {
		if !f.a.IsValid() {
			return f.name + " is required for static IP configuration (with dhcpEnabled and ipSyncEnabled false AMT needs ipAddress, subnetMask, defaultGateway and primaryDNS)"
		}
	}
	bits, ok := maskBits(p.mask)
	if !ok || bits == 0 || bits > 30 {
		return "subnetMask " + p.mask.String() + " is not a usable netmask: want contiguous ones from /1 to /30, e.g. 255.255.255.0"
	}
	host := func(name string, a netip.Addr) string {
		if a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || a.IsLinkLocalUnicast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			return name + " " + a.String() + " cannot be a host's address (unspecified, loopback, link-local, multicast or broadcast)"
		}
		return ""
	}
	for _, f := range []struct {
		name string
		a    netip.Addr
	}{{"ipAddress", p.ip}, {"defaultGateway", p.gateway}, {"primaryDNS", p.dns1}, {"secondaryDNS", p.dns2}} {
		if f.a.IsValid() {
			if msg := host(f.name, f.a); msg != "" {
				return msg
			}
		}
	}
	subnet := netip.PrefixFrom(p.ip, bits).Masked()
	if p.ip == subnet.Addr() || p.ip == lastAddr(subnet) {
		return "ipAddress " + p.ip.String() + " is the network or broadcast address of " + subnet.String()
	}
	if !subnet.Contains(p.gateway) || p.gateway == subnet.Addr() || p.gateway == lastAddr(subnet) {
		return "defaultGateway " + p.gateway.String() + " is not a host on ipAddress's subnet " + subnet.String()
	}
	if p.gateway == p.ip {
		return "defaultGateway " + p.gateway.String() + " is ipAddress itself"
	}
	return ""
}

// maskBits is the prefix length of an IPv4 netmask; ok is false when its
// ones are not contiguous.
func maskBits(mask netip.Addr) (bits int, ok bool) {
	m := mask.As4()
	v := uint32(m[0])<<24 | uint32(m[1])<<16 | uint32(m[2])<<8 | uint32(m[3])
	for bits < 32 && v&(1<<(31-bits)) != 0 {
		bits++
	}
	return bits, v<<bits == 0
}

// lastAddr is a subnet's broadcast address.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	for i := p.Bits(); i < 32; i++ {
		a[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom4(a)
}

// wiredPut is the Put body of a plan over the device's wired port: the
// properties MPS and Console send (buildWiredSettingsRequest), in the
// class schema's order, which is the order they write them to real
// firmware. Addresses go only with a static address of AMT's own: with
// DHCP or IP sync AMT rejects explicit ones (MPS leaves them out).
func wiredPut(cur *wsman.Instance, p wiredPlan) wsman.Instance {
	uri, _ := wsman.ResourceURI("AMT_EthernetPortSettings")
	body := wsman.Instance{Class: "AMT_EthernetPortSettings", Namespace: uri}
	for _, name := range []string{"ElementName", "InstanceID", "SharedMAC"} {
		if v, ok := cur.Get(name); ok {
			body.Add(name, v)
		}
	}
	body.Add("SharedStaticIp", strconv.FormatBool(p.sharedStatic))
	body.Add("IpSyncEnabled", strconv.FormatBool(p.ipSync))
	body.Add("DHCPEnabled", strconv.FormatBool(p.dhcp))
	if p.static() {
		body.Add("IPAddress", p.ip.String())
		body.Add("SubnetMask", p.mask.String())
		body.Add("DefaultGateway", p.gateway.String())
		body.Add("PrimaryDNS", p.dns1.String())
		if p.dns2.IsValid() {
			body.Add("SecondaryDNS", p.dns2.String())
		}
	}
	return body
}

// patchWired is PATCH /api/v1/amt/networkSettings/wired/{guid}: the body
// is checked whole (parseWired) before the device is asked; then the wired
// port is read, put with the new settings, and read back: a device that
// answers the Put but keeps other settings is a 502 saying what it
// reports. Success is 204 with no body, as MPS. AMT refusing the Put (a
// fault) is a 400 with its reason.
func (s *Service) patchWired(w http.ResponseWriter, r *http.Request) (string, int) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return "amt", writeError(w, http.StatusBadRequest, "reading the body: "+truncate(err.Error(), 120))
	}
	plan, st, msg := parseWired(body)
	if st != 0 {
		return "amt", writeError(w, st, msg)
	}
	c, done, u, obj, st, ok := s.deviceClient(w, r)
	if !ok {
		return obj, st
	}
	defer done()
	ctx := r.Context()
	port, st, ok := s.readWired(w, r, c, u)
	if !ok {
		return obj, st
	}
	id := port.Value("InstanceID")
	sel := wsman.Selector{Name: "InstanceID", Value: id}
	if _, err := c.Put(ctx, "AMT_EthernetPortSettings", wiredPut(port, plan), sel); err != nil {
		var f *wsman.Fault
		if errors.As(err, &f) {
			return obj, writeError(w, http.StatusBadRequest, "device "+u+" refused the wired settings: "+truncate(f.Error(), 300))
		}
		return obj, s.deviceError(w, u, err)
	}
	var got wsman.Instance
	if err := c.Get(ctx, "AMT_EthernetPortSettings", &got, sel); err != nil {
		return obj, s.deviceError(w, u, err)
	}
	have := wiredPlan{dhcp: propBool(&got, "DHCPEnabled"), ipSync: propBool(&got, "IpSyncEnabled"), sharedStatic: propBool(&got, "SharedStaticIp")}
	same := have.dhcp == plan.dhcp && have.ipSync == plan.ipSync && have.sharedStatic == plan.sharedStatic
	if plan.static() {
		same = same && got.Value("IPAddress") == plan.ip.String() && got.Value("SubnetMask") == plan.mask.String()
	}
	if !same {
		return obj, writeError(w, http.StatusBadGateway, "device "+u+" accepted the wired settings but reports DHCPEnabled="+
			strconv.FormatBool(have.dhcp)+" IpSyncEnabled="+strconv.FormatBool(have.ipSync)+" SharedStaticIp="+strconv.FormatBool(have.sharedStatic)+
			" IPAddress="+truncate(got.Value("IPAddress"), 40))
	}
	k, _ := ctx.Value(keyCtx{}).(store.APIKey)
	mode := "dhcp"
	switch {
	case plan.sharedStatic:
		mode = "static shared with the host"
	case plan.static():
		bits, _ := maskBits(plan.mask)
		mode = "static " + netip.PrefixFrom(plan.ip, bits).String()
	}
	s.log.Info("api: wired port set", "device", u, "mode", mode, "key", k.ID)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return obj, http.StatusNoContent
}

// wirelessStates are CIM_WiFiPort EnabledState values as MPS names them.
var wirelessStates = map[int]string{3: "WifiDisabled", 32768: "WifiEnabledS0", 32769: "WifiEnabledS0SxAC"}

// wirelessState is GET /api/v1/amt/networkSettings/wireless/state/{guid},
// read only: {"state": "WifiDisabled"|"WifiEnabledS0"|"WifiEnabledS0SxAC"}
// from the first CIM_WiFiPort's EnabledState, as MPS. A device without a
// Wi-Fi port (none, or the class faults) is 404; a state MPS does not name
// is a 502 saying which.
func (s *Service) wirelessState(w http.ResponseWriter, r *http.Request) (string, int) {
	c, done, u, obj, st, ok := s.deviceClient(w, r)
	if !ok {
		return obj, st
	}
	defer done()
	ports, err := c.Enumerate(r.Context(), "CIM_WiFiPort")
	if err != nil && !isFault(err) {
		return obj, s.deviceError(w, u, err)
	}
	if len(ports) == 0 {
		return obj, writeError(w, http.StatusNotFound, "device "+u+" reports no Wi-Fi port (CIM_WiFiPort)")
	}
	v := strings.TrimSpace(ports[0].Value("EnabledState"))
	n, err := strconv.Atoi(v)
	name, known := wirelessStates[n]
	if err != nil || !known {
		return obj, writeError(w, http.StatusBadGateway, "device "+u+" reports Wi-Fi EnabledState "+strconv.Quote(truncate(v, 20))+
			", not one of 3 (disabled), 32768 (enabled in S0), 32769 (enabled in S0 and Sx on AC)")
	}
	return obj, writeJSON(w, http.StatusOK, map[string]string{"state": name})
}
