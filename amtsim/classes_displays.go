package amtsim

import (
	"slices"
	"strconv"
	"strings"
	"unicode"

	"amtd/amt/wsman"
)

// maxScreens: AMT's KVM serves up to four of the host's screens (LMS's
// KVMScreenSettingClient MAX_DISPLAY_NUMBER), the four entries of
// IPS_ScreenSettingData's arrays.
const maxScreens = 4

// addDisplayClasses adds the KVM display classes the console API uses
// (GET/PUT /api/v1/amt/kvm/displays, spec/redirection.md §7.2):
//
//   - IPS_ScreenSettingData is what the host's graphics report: read only
//     (a Put is refused as AMT refuses it); tests set it with SetDisplays.
//   - IPS_KVMRedirectionSettingData takes a Put: DefaultScreen (the screen
//     KVM opens on, 0 to 3), SessionTimeout, OptInPolicy (not off in client
//     control mode, where AMT always asks the user), Is5900PortEnabled (only
//     with an RFB password), BackToBackFbMode, DoubleBufferEnabled and
//     RFBPassword. RFBPassword is write-only: AMT reads it back empty, and a
//     Put with it empty or absent keeps the one set. The rest (EnabledByMEBx,
//     the capability flags) is the firmware's and a Put leaves it.
func addDisplayClasses(t map[string]*classHandler) {
	t["IPS_ScreenSettingData"] = &classHandler{instances: func(d *Device) []wsman.Instance {
		return d.overlayOr("IPS_ScreenSettingData")
	}}
	t["IPS_KVMRedirectionSettingData"] = &classHandler{instances: kvmSettingInstances, put: putKVMSettings}
}

// Display is one of the host's screens as IPS_ScreenSettingData reports it.
type Display struct {
	Active                   bool
	UpperLeftX, UpperLeftY   int
	ResolutionX, ResolutionY int
}

// SetDisplays replaces the screens the host reports (at most four; the
// rest report inactive, as firmware does), as when monitors are plugged
// in or out.
func (d *Device) SetDisplays(ds []Display) {
	const class = "IPS_ScreenSettingData"
	ins := d.overlayOr(class)
	if len(ins) == 0 {
		return
	}
	var active, ulx, uly, rx, ry []string
	for i := range maxScreens {
		s := Display{UpperLeftX: -1, UpperLeftY: -1}
		if i < len(ds) {
			s = ds[i]
		}
		active = append(active, boolStr(s.Active))
		ulx, uly = append(ulx, strconv.Itoa(s.UpperLeftX)), append(uly, strconv.Itoa(s.UpperLeftY))
		rx, ry = append(rx, strconv.Itoa(s.ResolutionX)), append(ry, strconv.Itoa(s.ResolutionY))
	}
	setProp(&ins[0], "IsActive", active...)
	setProp(&ins[0], "UpperLeftX", ulx...)
	setProp(&ins[0], "UpperLeftY", uly...)
	setProp(&ins[0], "ResolutionX", rx...)
	setProp(&ins[0], "ResolutionY", ry...)
	d.storeOverlay(class, ins)
}

// DefaultScreen is the screen KVM opens on (IPS_KVMRedirectionSettingData).
func (d *Device) DefaultScreen() int {
	ins := d.overlayOr("IPS_KVMRedirectionSettingData")
	if len(ins) == 0 {
		return -1
	}
	return atoi(ins[0].Value("DefaultScreen"))
}

// RFBPassword is the KVM (VNC, port 5900) password a Put set, "" none.
func (d *Device) RFBPassword() string {
	ins := d.overlayOr("IPS_KVMRedirectionSettingData")
	if len(ins) == 0 {
		return ""
	}
	return ins[0].Value("RFBPassword")
}

// storeOverlay keeps ins as the class's instances from now on (what a
// Put changed), saved with the device's state.
func (d *Device) storeOverlay(class string, ins []wsman.Instance) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.setOverlayLocked(class, ins)
	d.commitLocked()
}

func (d *Device) setOverlayLocked(class string, ins []wsman.Instance) {
	if d.s.Overlays == nil {
		d.s.Overlays = map[string][]wsman.Instance{}
	}
	d.s.Overlays[class] = ins
}

// kvmSettingInstances reads the settings with the RFB password blanked.
func kvmSettingInstances(d *Device) []wsman.Instance {
	ins := d.overlayOr("IPS_KVMRedirectionSettingData")
	for i := range ins {
		if _, ok := ins[i].Get("RFBPassword"); ok {
			setProp(&ins[i], "RFBPassword", "")
		}
	}
	return ins
}

// kvmWritable are the IPS_KVMRedirectionSettingData properties a Put sets.
var kvmWritable = []string{"DefaultScreen", "SessionTimeout", "OptInPolicy", "OptInPolicyTimeout", "Is5900PortEnabled",
	"BackToBackFbMode", "DoubleBufferEnabled", "RFBPassword"}

func putKVMSettings(d *Device, body *wsman.Instance, sel []wsman.Selector) *wsman.Fault {
	const class = "IPS_KVMRedirectionSettingData"
	ins := d.overlayOr(class)
	i := matchSelectors(ins, sel)
	if i < 0 {
		return faultInvalidSelectors(class)
	}
	for _, name := range []string{"OptInPolicy", "Is5900PortEnabled", "BackToBackFbMode", "DoubleBufferEnabled"} {
		if v, ok := body.Get(name); ok && v != "true" && v != "false" {
			return faultInvalidRepresentation(class, name+" must be true or false.")
		}
	}
	if v, ok := body.Get("DefaultScreen"); ok {
		if n := atoi(v); n < 0 || n >= maxScreens {
			return faultInvalidRepresentation(class, "DefaultScreen must be 0 to 3.")
		}
	}
	for _, name := range []string{"SessionTimeout", "OptInPolicyTimeout"} {
		if v, ok := body.Get(name); ok {
			if n := atoi(v); n < 0 || n > 65535 {
				return faultInvalidRepresentation(class, name+" must be 0 to 65535.")
			}
		}
	}
	if v, _ := body.Get("OptInPolicy"); v == "false" && d.ControlMode() == ModeCCM {
		return faultInvalidRepresentation(class, "OptInPolicy must stay true in CCM.")
	}
	pw := body.Value("RFBPassword")
	if pw != "" && !validRFBPassword(pw) {
		return faultInvalidRepresentation(class, "RFBPassword must be 8 characters: Aa1!.")
	}
	next := cloneInstance(ins[i])
	for _, name := range kvmWritable {
		v, ok := body.Get(name)
		if !ok || name == "RFBPassword" && v == "" {
			continue
		}
		setProp(&next, name, v)
	}
	if next.Value("Is5900PortEnabled") == "true" && next.Value("RFBPassword") == "" {
		return faultInvalidRepresentation(class, "Is5900PortEnabled needs an RFBPassword.")
	}
	ins[i] = next
	d.storeOverlay(class, ins)
	return nil
}

// validRFBPassword is AMT's rule for the RFB password: exactly eight
// characters, with an upper-case and a lower-case letter, a digit and a
// special character.
func validRFBPassword(pw string) bool {
	if len(pw) != 8 {
		return false
	}
	classes := []func(rune) bool{unicode.IsUpper, unicode.IsLower, unicode.IsDigit,
		func(r rune) bool {
			return r > ' ' && r < 0x7f && strings.ContainsRune("!@#$%^&*()-_=+[]{};:'\",.<>/?\\|`~", r)
		}}
	return !slices.ContainsFunc(classes, func(f func(rune) bool) bool { return !strings.ContainsFunc(pw, f) })
}
