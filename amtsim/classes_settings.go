package amtsim

import (
	"runtime"
	"slices"
	"strconv"
	"sync"
	"weak"

	"amtd/amt/wsman"
)

// addSettingsClasses adds the settings, boot and power classes the console
// API uses to the class table.
//
// Boot control (spec/redirection.md §7.2 bootOptions, as MPS drives it):
// Put AMT_BootSettingData (BIOSSetup, UseSOL, UseIDER, IDERBootDevice),
// CIM_BootConfigSetting.ChangeBootOrder(Source) picks a forced boot source,
// CIM_BootService.SetBootConfigRole(Role 1) makes that configuration the
// one for the next boot, and RequestPowerStateChange boots the host. The
// settings are one-time: the boot that follows consumes them, as AMT
// clears them once BIOS has read them (OptionsCleared goes back to true).
// What the host booted into is kept for tests (LastBoot).
func addSettingsClasses(t map[string]*classHandler) {
	// Two enumerations answer with items of another class: CIM_SystemPackaging
	// lists CIM_ComputerSystemPackage and CIM_PhysicalPackage lists
	// CIM_Card (fixtures cim/system/packaging, cim/physical/package).
	t["CIM_SystemPackaging"] = &classHandler{instances: fixtureOf("CIM_ComputerSystemPackage")}
	t["CIM_PhysicalPackage"] = &classHandler{instances: fixtureOf("CIM_Card")}

	t["AMT_BootSettingData"] = &classHandler{put: putBootSettingData}
	t["CIM_BootConfigSetting"] = &classHandler{methods: map[string]method{
		"ChangeBootOrder": func(d *Device, in *wsman.Instance, _ Session) []wsman.Property {
			return []wsman.Property{rv("CIM_BootConfigSetting", d.changeBootOrder(in))}
		},
	}}
	t["CIM_BootService"] = &classHandler{methods: map[string]method{
		"SetBootConfigRole": func(d *Device, in *wsman.Instance, _ Session) []wsman.Property {
			return []wsman.Property{rv("CIM_BootService", d.setBootConfigRole(in))}
		},
		// 32769 enables One Click Recovery boot options, 32768 disables
		// them (MPS setAMTFeatures ocr); 2 and 3 as CIM.
		"RequestStateChange": func(d *Device, in *wsman.Instance, _ Session) []wsman.Property {
			n := atoi(in.Value("RequestedState"))
			if n != 2 && n != 3 && n != 32768 && n != 32769 {
				return []wsman.Property{rv("CIM_BootService", cimInvalidParam)}
			}
			d.setOverlayProp("CIM_BootService", "EnabledState", strconv.Itoa(n))
			return []wsman.Property{rv("CIM_BootService", cimCompleted)}
		},
	}}
	t["IPS_PowerManagementService"] = &classHandler{methods: map[string]method{
		// OSPowerSavingState: 2 full power, 3 OS power saving; the host
		// OS must be running to change it.
		"RequestOSPowerSavingStateChange": func(d *Device, in *wsman.Instance, _ Session) []wsman.Property {
			const class = "IPS_PowerManagementService"
			n := atoi(in.Value("OSPowerSavingState"))
			if n != 2 && n != 3 {
				return []wsman.Property{rv(class, cimInvalidParam)}
			}
			if d.PowerState() != 2 {
				return []wsman.Property{rv(class, cimFailed)}
			}
			d.setOverlayProp(class, "OSPowerSavingState", strconv.Itoa(n))
			return []wsman.Property{rv(class, cimCompleted)}
		},
	}}

	// A power change that starts the host consumes the boot settings.
	if h := t["CIM_PowerManagementService"]; h != nil && h.methods["RequestPowerStateChange"] != nil {
		orig := h.methods["RequestPowerStateChange"]
		h.methods["RequestPowerStateChange"] = func(d *Device, in *wsman.Instance, s Session) []wsman.Property {
			before := d.PowerState()
			out := orig(d, in, s)
			ok := false
			for _, p := range out {
				if p.Name == "ReturnValue" {
					ok = p.Value == "0"
				}
			}
			if ok && bootsHost(before, atoi(in.Value("PowerState"))) {
				d.boot()
			}
			return out
		}
	}
}

// cimFailed is CIM's "Failed" return code.
const cimFailed = 4

func fixtureOf(class string) func(*Device) []wsman.Instance {
	return func(*Device) []wsman.Instance {
		ts, _ := loadTemplates()
		return ts.instances(class)
	}
}

// bootsHost says whether a successful RequestPowerStateChange to state
// from before starts the host's firmware: power on from a state other
// than on, power cycles and resets.
func bootsHost(before, state int) bool {
	switch state {
	case 2:
		return before != 2
	case 5, 10, 14, 15, 16:
		return true
	}
	return false
}

// setOverlayProp changes one property of a singleton served from its
// fixture, keeping the change as a Put would.
func (d *Device) setOverlayProp(class, name, value string) {
	ins := d.overlayOr(class)
	if len(ins) == 0 {
		return
	}
	setProp(&ins[0], name, value)
	d.storeOverlay(class, ins)
}

// bootSettingReadOnly are AMT_BootSettingData properties firmware reports
// and a Put does not set.
var bootSettingReadOnly = map[string]bool{"BIOSLastStatus": true, "BootguardStatus": true, "OptionsCleared": true,
	"UEFIHTTPSBootEnabled": true, "UEFILocalPBABootEnabled": true, "WinREBootEnabled": true, "SecureBootControlEnabled": true}

func putBootSettingData(d *Device, body *wsman.Instance, sel []wsman.Selector) *wsman.Fault {
	const class = "AMT_BootSettingData"
	ins := d.overlayOr(class)
	i := matchSelectors(ins, sel)
	if i < 0 {
		return faultInvalidSelectors(class)
	}
	for _, name := range []string{"BIOSSetup", "BIOSPause", "UseSOL", "UseIDER", "UseSafeMode", "ReflashBIOS",
		"ConfigurationDataReset", "LockKeyboard", "LockPowerButton", "LockResetButton", "LockSleepButton",
		"UserPasswordBypass", "ForcedProgressEvents", "SecureErase", "EnforceSecureBoot"} {
		if v, ok := body.Get(name); ok && v != "true" && v != "false" {
			return faultInvalidRepresentation(class, name+" must be true or false.")
		}
	}
	if v, ok := body.Get("IDERBootDevice"); ok && v != "0" && v != "1" {
		return faultInvalidRepresentation(class, "IDERBootDevice must be 0 (floppy) or 1 (CD).")
	}
	kept := *body
	kept.Props = slices.DeleteFunc(slices.Clone(body.Props), func(p wsman.Property) bool { return bootSettingReadOnly[p.Name] })
	merge(&ins[i], &kept)
	// The options now wait for the next boot.
	setProp(&ins[i], "OptionsCleared", "false")
	d.storeOverlay(class, ins)
	return nil
}

// Boot is what the host booted into at its last start by AMT.
type Boot struct {
	Count          int    // boots started by a power change since the device was made
	Source         string // the CIM_BootSourceSetting InstanceID forced, "" none
	BIOSSetup      bool
	UseSOL         bool
	UseIDER        bool
	IDERBootDevice int // 0 floppy, 1 CD
}

// LastBoot returns what the host booted into at its last start by a power
// change (zero before any).
func (d *Device) LastBoot() Boot {
	st := sideOf(d)
	side.Lock()
	defer side.Unlock()
	return st.last
}

// boot consumes the pending one-time boot settings.
func (d *Device) boot() {
	var bsd wsman.Instance
	if ins := d.overlayOr("AMT_BootSettingData"); len(ins) > 0 {
		bsd = ins[0]
	}
	st := sideOf(d)
	side.Lock()
	b := Boot{Count: st.last.Count + 1}
	if st.role {
		b.Source = st.source
		b.BIOSSetup = bsd.Value("BIOSSetup") == "true"
		b.UseSOL = bsd.Value("UseSOL") == "true"
		b.UseIDER = bsd.Value("UseIDER") == "true"
		b.IDERBootDevice = atoi(bsd.Value("IDERBootDevice"))
	}
	st.last, st.source, st.role = b, "", false
	side.Unlock()
	d.mu.Lock()
	delete(d.s.Overlays, "AMT_BootSettingData")
	d.commitLocked()
	d.mu.Unlock()
}

// changeBootOrder sets the forced boot source: the Source EPR names a
// CIM_BootSourceSetting by InstanceID; no Source clears it.
func (d *Device) changeBootOrder(in *wsman.Instance) int {
	id := ""
	if e := in.EPR("Source"); e != nil {
		id = e.Selector("InstanceID")
		ts, _ := loadTemplates()
		if !slices.ContainsFunc(ts.instances("CIM_BootSourceSetting"), func(s wsman.Instance) bool { return s.Value("InstanceID") == id }) {
			return cimInvalidParam
		}
	}
	st := sideOf(d)
	side.Lock()
	st.source = id
	side.Unlock()
	return cimCompleted
}

// setBootConfigRole with Role 1 (IsNext) on the one boot configuration
// makes the pending settings apply to the next boot.
func (d *Device) setBootConfigRole(in *wsman.Instance) int {
	e := in.EPR("BootConfigSetting")
	if e == nil || e.Selector("InstanceID") != "Intel(r) AMT: Boot Configuration 0" {
		return cimInvalidParam
	}
	role := atoi(in.Value("Role"))
	if role != 1 && role != 32768 {
		return cimInvalidParam
	}
	st := sideOf(d)
	side.Lock()
	st.role = role == 1
	side.Unlock()
	return cimCompleted
}

// sideState is per-device state of these classes that is not persisted
// (a pending boot order does not survive a power loss either). It lives
// beside the Device, keyed weakly, and goes when the Device does.
type sideState struct {
	source string // forced boot source for the next boot
	role   bool   // SetBootConfigRole(IsNext) done since the last boot
	last   Boot
}

var side struct {
	sync.Mutex
	m map[weak.Pointer[Device]]*sideState
}

func sideOf(d *Device) *sideState {
	k := weak.Make(d)
	side.Lock()
	defer side.Unlock()
	if st := side.m[k]; st != nil {
		return st
	}
	if side.m == nil {
		side.m = map[weak.Pointer[Device]]*sideState{}
	}
	st := &sideState{}
	side.m[k] = st
	runtime.AddCleanup(d, func(k weak.Pointer[Device]) {
		side.Lock()
		delete(side.m, k)
		side.Unlock()
	}, k)
	return st
}
