package amtsim

import (
	"net/netip"
	"strings"

	"amtd/amt/wsman"
)

// AMT_EthernetPortSettings with the static-address rules maintenance
// --syncip relies on (spec/activation.md §10, spec/wsman.md §6). The wired
// port is "Intel(r) AMT Ethernet Port Settings 0", the wireless one "… 1".
// In DHCP mode the wired address is the one AMT shares with the host (its
// DHCP lease); with DHCP off it is what was last put. A Put turning DHCP off
// without IP synchronisation must carry an IPv4 address and mask: what real
// firmware answers otherwise is unverified, the simulator faults.
func addNetworkSyncClasses(t map[string]*classHandler) {
	t["AMT_EthernetPortSettings"] = &classHandler{instances: ethernetPortSettings, put: putEthernetPortSettings}
}

func isWiredPort(in *wsman.Instance) bool {
	return strings.HasSuffix(in.Value("InstanceID"), "Settings 0")
}

func ethernetPortSettings(d *Device) []wsman.Instance {
	ins := d.overlayOr("AMT_EthernetPortSettings")
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range ins {
		if !isWiredPort(&ins[i]) || ins[i].Value("DHCPEnabled") != "true" || !d.net.IP.IsValid() {
			continue
		}
		setProp(&ins[i], "IPAddress", d.net.IP.String())
		if d.net.DNS.IsValid() {
			setProp(&ins[i], "PrimaryDNS", d.net.DNS.Addr().String())
		}
	}
	return ins
}

func putEthernetPortSettings(d *Device, body *wsman.Instance, sel []wsman.Selector) *wsman.Fault {
	const class = "AMT_EthernetPortSettings"
	ins := d.overlayOr(class)
	i := matchSelectors(ins, sel)
	if i < 0 {
		return faultInvalidSelectors(class)
	}
	next := cloneInstance(ins[i])
	merge(&next, body)
	if isWiredPort(&next) && next.Value("DHCPEnabled") == "false" && next.Value("IpSyncEnabled") != "true" {
		for _, name := range []string{"IPAddress", "SubnetMask"} {
			if a, err := netip.ParseAddr(next.Value(name)); err != nil || !a.Is4() {
				return faultInvalidRepresentation(class, "A static configuration needs an IPv4 "+name+".")
			}
		}
	}
	ins[i] = next
	d.storeOverlay(class, ins)
	return nil
}
