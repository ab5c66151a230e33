package provision

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"amtd/amt/wsman"
)

// Network settings a profile gives the device's wired port
// (spec/activation.md §9 step 2, spec/wsman.md AMT_EthernetPortSettings).
const (
	// NetworkKeep leaves the port as the device has it (the default).
	NetworkKeep = ""
	// NetworkDHCP: AMT shares the host's DHCP address (DHCPEnabled,
	// IpSyncEnabled, not SharedStaticIp).
	NetworkDHCP = "dhcp"
	// NetworkStatic: AMT shares the host OS's static address, kept in
	// sync with it (DHCPEnabled off, IpSyncEnabled and SharedStaticIp on).
	// A static address of AMT's own is per device, not a profile's: set it
	// in MEBx.
	NetworkStatic = "static"
)

// StepNetwork is recorded in the device history before the wired port is
// configured.
const StepNetwork = "network"

// errWireless is the refusal of what a profile cannot ask yet.
const errWireless = "Wi-Fi and 802.1X are not supported: amtd configures the wired port only (--network dhcp, static or keep); set wireless profiles in MEBx or with the OEM's tools"

// ParseNetwork reads a profile's network setting as people write it:
// dhcp, static or keep. Wireless and 802.1X are refused, saying so.
func ParseNetwork(v string) (string, error) {
	switch s := strings.ToLower(strings.TrimSpace(v)); s {
	case "keep", "":
		return NetworkKeep, nil
	case NetworkDHCP, NetworkStatic:
		return s, nil
	case "wifi", "wi-fi", "wireless", "wlan", "802.1x", "8021x", "ieee8021x":
		return "", fmt.Errorf("network %q: %s", v, errWireless)
	}
	return "", fmt.Errorf("network %q: want dhcp, static or keep", v)
}

// wiredPort picks the wired port among the device's AMT_EthernetPortSettings:
// PhysicalConnectionType 0 (integrated LAN NIC); 3 is the wireless one. An
// older firmware that leaves the type out has the wired port as instance 0
// ("Intel(r) AMT Ethernet Port Settings 0").
func wiredPort(ports []wsman.Instance) (wsman.Instance, bool) {
	for _, p := range ports {
		if p.Value("PhysicalConnectionType") == "0" {
			return p, true
		}
	}
	for _, p := range ports {
		if _, has := p.Get("PhysicalConnectionType"); !has && strings.HasSuffix(p.Value("InstanceID"), " 0") {
			return p, true
		}
	}
	return wsman.Instance{}, false
}

// portSettings are the three flags of a network mode, as spec/wsman.md
// gives them.
type portSettings struct{ dhcp, ipSync, sharedStatic bool }

var networkModes = map[string]portSettings{
	NetworkDHCP:   {dhcp: true, ipSync: true, sharedStatic: false},
	NetworkStatic: {dhcp: false, ipSync: true, sharedStatic: true}, // SharedStaticIp = IpSyncEnabled
}

func (p portSettings) String() string {
	return fmt.Sprintf("DHCPEnabled=%t IpSyncEnabled=%t SharedStaticIp=%t", p.dhcp, p.ipSync, p.sharedStatic)
}

// configureNetwork sets the wired port's DHCP and IP synchronisation as the
// profile asks, as the device's current admin, then reads it back: a device
// that answers the Put but keeps its old settings is a failure, said so.
func (e *Engine) configureNetwork(ctx context.Context, uuid, host string, dial wsman.Dialer, mode string) (err error) {
	want, ok := networkModes[mode]
	if !ok {
		return fmt.Errorf("network: %q is not a mode amtd sets", mode)
	}
	c, admin, err := e.adminClient(ctx, uuid, host, dial, "network")
	if err != nil {
		return err
	}
	defer admin.Wipe()
	defer e.recordFailure(ctx, uuid, &err)
	if err := e.Store.Devices().SetState(ctx, uuid, "configuring", StepNetwork, "wired port: "+mode+" ("+want.String()+")", false); err != nil {
		return err
	}
	var port wsman.Instance
	if err := e.call(ctx, func(ctx context.Context) error {
		ports, err := c.Enumerate(ctx, "AMT_EthernetPortSettings")
		if err != nil {
			return err
		}
		p, ok := wiredPort(ports)
		if !ok {
			return fmt.Errorf("the device reports no wired port among its %d AMT_EthernetPortSettings", len(ports))
		}
		port = p
		return nil
	}); err != nil {
		return fmt.Errorf("network: %w", err)
	}
	id := port.Value("InstanceID")
	sel := wsman.Selector{Name: "InstanceID", Value: id}
	port.Set("DHCPEnabled", strconv.FormatBool(want.dhcp))
	port.Set("IpSyncEnabled", strconv.FormatBool(want.ipSync))
	port.Set("SharedStaticIp", strconv.FormatBool(want.sharedStatic))
	if err := e.call(ctx, func(ctx context.Context) error {
		_, err := c.Put(ctx, "AMT_EthernetPortSettings", port, sel)
		return err
	}); err != nil {
		return fmt.Errorf("network: %s: %w", id, err)
	}
	var got wsman.AMTEthernetPortSettings
	if err := e.call(ctx, func(ctx context.Context) error { return c.Get(ctx, "AMT_EthernetPortSettings", &got, sel) }); err != nil {
		return fmt.Errorf("network: read back %s: %w", id, err)
	}
	if have := (portSettings{got.DHCPEnabled, got.IpSyncEnabled, got.SharedStaticIp}); have != want {
		return fmt.Errorf("network: the device accepted %s but reports %s", want, have)
	}
	return e.Store.Devices().SetState(ctx, uuid, StateConfigured, StepNetwork, "wired port: "+mode, false)
}
