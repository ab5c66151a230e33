package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"amtd/amt/wsman"
	"amtd/store"
)

// settingsRoutes are the device settings and power routes beyond state and
// action (spec/redirection.md §7.2), and MPS's disconnect (§7.1).
func (s *Service) settingsRoutes() []route {
	return append([]route{
		{"GET", "/api/v1/amt/generalSettings/{guid}", "amt.generalSettings", store.RoleViewer, s.generalSettings},
		{"GET", "/api/v1/amt/hardwareInfo/{guid}", "amt.hardwareInfo", store.RoleViewer, s.hardwareInfo},
		{"GET", "/api/v1/amt/power/capabilities/{guid}", "amt.power.capabilities", store.RoleViewer, s.powerCapabilities},
		{"GET", "/api/v1/amt/power/bootSources/{guid}", "amt.power.bootSources", store.RoleViewer, s.bootSources},
		{"POST", "/api/v1/amt/power/bootOptions/{guid}", "amt.power.bootOptions", store.RoleOperator, s.bootOptions},
		{"GET", "/api/v1/amt/features/{guid}", "amt.features", store.RoleViewer, s.getFeatures},
		{"POST", "/api/v1/amt/features/{guid}", "amt.features.set", store.RoleOperator, s.setFeatures},
		{"GET", "/api/v1/amt/networkSettings/{guid}", "amt.networkSettings", store.RoleViewer, s.networkSettings},
		{"DELETE", "/api/v1/amt/deactivate/{guid}", "amt.deactivate", store.RoleAdmin, s.deactivate},
		{"DELETE", "/api/v1/devices/disconnect/{guid}", "devices.disconnect", store.RoleOperator, s.disconnect},
	}, s.networkRoutes()...)
}

// DeviceDisconnecter drops a device's CIRA link: the CIRA service's
// Disconnect. The API asks for it on the DeviceDialer it is given, so the
// daemon's wiring is unchanged; it reports whether there was a link.
type DeviceDisconnecter interface {
	Disconnect(uuid string) bool
}

func isFault(err error) bool {
	var f *wsman.Fault
	return errors.As(err, &f)
}

func propBool(in *wsman.Instance, name string) bool { return in.Value(name) == "true" }

func propInt(in *wsman.Instance, name string) int {
	n, _ := strconv.Atoi(strings.TrimSpace(in.Value(name)))
	return n
}

// decodeBody reads a JSON object into v, refusing unknown fields and
// anything after the object.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	return nil
}

// generalSettings is GET /api/v1/amt/generalSettings/{guid}:
// AMT_GeneralSettings as MPS sends it, {"Body": {...}} (MPS also sends the
// WS-Man Header; amtd does not, as for version).
func (s *Service) generalSettings(w http.ResponseWriter, r *http.Request) (string, int) {
	c, done, u, obj, st, ok := s.deviceClient(w, r)
	if !ok {
		return obj, st
	}
	defer done()
	var gs wsman.Instance
	if err := c.Get(r.Context(), "AMT_GeneralSettings", &gs); err != nil {
		return obj, s.deviceError(w, u, err)
	}
	return obj, writeJSON(w, http.StatusOK, map[string]any{"Body": instanceJSON(&gs)})
}

// hardwareInfo is GET /api/v1/amt/hardwareInfo/{guid}, shaped as MPS's
// formatResponse: the singletons (Get) as {"response": {...}, "status":
// "200"}, the enumerations as {"responses": [...], "status": "200"}.
// CIM_SystemPackaging lists CIM_ComputerSystemPackage items and
// CIM_PhysicalPackage lists CIM_Card items, as firmware answers them.
// MPS wraps an enumeration's items in one more list when there are
// several; amtd sends the flat list. A class the firmware faults on has
// status "400" and no data (MPS fails the whole call with 400). References
// (Antecedent, Dependent) are left out, as everywhere (instanceJSON).
func (s *Service) hardwareInfo(w http.ResponseWriter, r *http.Request) (string, int) {
	c, done, u, obj, st, ok := s.deviceClient(w, r)
	if !ok {
		return obj, st
	}
	defer done()
	out := map[string]any{}
	for _, class := range []string{"CIM_ComputerSystemPackage", "CIM_Chassis", "CIM_Card", "CIM_BIOSElement"} {
		var in wsman.Instance
		switch err := c.Get(r.Context(), class, &in); {
		case isFault(err):
			out[class] = map[string]any{"response": nil, "status": "400"}
		case err != nil:
			return obj, s.deviceError(w, u, err)
		default:
			out[class] = map[string]any{"response": instanceJSON(&in), "status": "200"}
		}
	}
	for _, class := range []string{"CIM_Processor", "CIM_PhysicalMemory", "CIM_MediaAccessDevice", "CIM_PhysicalPackage",
		"CIM_SystemPackaging", "CIM_Chip"} {
		items, err := c.Enumerate(r.Context(), class)
		switch {
		case isFault(err):
			out[class] = map[string]any{"responses": []any{}, "status": "400"}
		case err != nil:
			return obj, s.deviceError(w, u, err)
		default:
			list := make([]map[string]any, 0, len(items))
			for i := range items {
				list = append(list, instanceJSON(&items[i]))
			}
			out[class] = map[string]any{"responses": list, "status": "200"}
		}
	}
	return obj, writeJSON(w, http.StatusOK, out)
}

// amtMajor is the AMT major version from CIM_SoftwareIdentity's "AMT"
// entry, 0 when missing.
func amtMajor(items []wsman.Instance) int {
	for i := range items {
		if items[i].Value("InstanceID") == "AMT" {
			major, _, _ := strings.Cut(items[i].Value("VersionString"), ".")
			n, _ := strconv.Atoi(major)
			return n
		}
	}
	return 0
}

// Boot actions of POST bootOptions: MPS's numbers (its bootOptions.ts and
// powerCapabilities.ts). 100/101 BIOS setup, 200/201 IDE-R floppy, 202/203
// IDE-R CD, 400/401 PXE; the even one of a pair resets, the odd one powers
// on (MPS's determinePowerAction: reset for 101, 200, 202, 400; power on
// for the rest). What each needs of AMT_BootCapabilities is its cap.
type bootAction struct {
	name   string // MPS's label in power/capabilities
	reset  bool   // power state 10 (reset), else 2 (power on)
	cap    string // AMT_BootCapabilities property that must be true
	source string // CIM_BootSourceSetting InstanceID to force, "" none
	bios   bool   // BIOSSetup
	ider   int    // 0 no IDE-R, 1 floppy, 2 CD
}

var bootActions = map[int]bootAction{
	100: {name: "Power up to BIOS", cap: "BIOSSetup", bios: true},
	101: {name: "Reset to BIOS", reset: true, cap: "BIOSSetup", bios: true},
	200: {name: "Reset to IDE-R Floppy", reset: true, cap: "IDER", ider: 1},
	201: {name: "Power on to IDE-R Floppy", cap: "IDER", ider: 1},
	202: {name: "Reset to IDE-R CDROM", reset: true, cap: "IDER", ider: 2, source: "Intel(r) AMT: Force CD/DVD Boot"},
	203: {name: "Power on to IDE-R CDROM", cap: "IDER", ider: 2, source: "Intel(r) AMT: Force CD/DVD Boot"},
	400: {name: "Reset to PXE", reset: true, cap: "ForcePXEBoot", source: "Intel(r) AMT: Force PXE Boot"},
	401: {name: "Power on to PXE", cap: "ForcePXEBoot", source: "Intel(r) AMT: Force PXE Boot"},
}

// resetVariant is the reset action of each power-on boot action.
var resetVariant = map[int]int{100: 101, 201: 200, 203: 202, 401: 400}

// bootActionList names the boot actions amtd takes, for error messages.
const bootActionList = "100 (power up to BIOS), 101 (reset to BIOS), 200/201 (reset/power on to IDE-R floppy), " +
	"202/203 (reset/power on to IDE-R CD), 400 (reset to PXE), 401 (power on to PXE)"

// powerCapabilities is GET /api/v1/amt/power/capabilities/{guid}: the
// actions the device can take by label, as MPS's bootCapabilities maps
// AMT_BootCapabilities: the basic power states, the graceful and sleep
// ones from AMT 10 on, then the boot actions. Unlike MPS, a boot action is
// listed only when the capability it needs is there (MPS lists IDE-R and
// PXE always), and secure erase (104) and diagnostic boot (300/301) are
// not listed: amtd refuses them (bootOptions).
func (s *Service) powerCapabilities(w http.ResponseWriter, r *http.Request) (string, int) {
	c, done, u, obj, st, ok := s.deviceClient(w, r)
	if !ok {
		return obj, st
	}
	defer done()
	sw, err := c.Enumerate(r.Context(), "CIM_SoftwareIdentity")
	if err != nil {
		return obj, s.deviceError(w, u, err)
	}
	var caps wsman.Instance
	if err := c.Get(r.Context(), "AMT_BootCapabilities", &caps); err != nil {
		return obj, s.deviceError(w, u, err)
	}
	out := map[string]int{"Power up": 2, "Power cycle": 5, "Power down": 8, "Reset": 10}
	if amtMajor(sw) > 9 {
		out["Soft-off"], out["Soft-reset"], out["Sleep"], out["Hibernate"] = 12, 14, 4, 7
	}
	for n, a := range bootActions {
		if propBool(&caps, a.cap) {
			out[a.name] = n
		}
	}
	return obj, writeJSON(w, http.StatusOK, out)
}

// bootSources is GET /api/v1/amt/power/bootSources/{guid}: every
// CIM_BootSourceSetting as MPS's mapBootSource shapes it.
func (s *Service) bootSources(w http.ResponseWriter, r *http.Request) (string, int) {
	c, done, u, obj, st, ok := s.deviceClient(w, r)
	if !ok {
		return obj, st
	}
	defer done()
	items, err := c.Enumerate(r.Context(), "CIM_BootSourceSetting")
	if err != nil {
		return obj, s.deviceError(w, u, err)
	}
	type source struct {
		BIOSBootString           string `json:"biosBootString"`
		BootString               string `json:"bootString"`
		ElementName              string `json:"elementName"`
		FailThroughSupported     int    `json:"failThroughSupported"`
		InstanceID               string `json:"instanceID"`
		StructuredBIOSBootString string `json:"structuredBiosBootString"`
	}
	out := make([]source, 0, len(items))
	for i := range items {
		in := &items[i]
		out = append(out, source{in.Value("BIOSBootString"), in.Value("BootString"), in.Value("ElementName"),
			propInt(in, "FailThroughSupported"), in.Value("InstanceID"), in.Value("StructuredBootString")})
	}
	return obj, writeJSON(w, http.StatusOK, out)
}

// bootConfigEPR is the one boot configuration AMT has.
func bootConfigEPR() wsman.EPR {
	return wsman.EPR{Address: wsman.AnonymousAddress, ResourceURI: wsman.BaseCIM + "CIM_BootConfigSetting",
		Selectors: []wsman.Selector{{Name: "InstanceID", Value: "Intel(r) AMT: Boot Configuration 0"}}}
}

// Redirection states of AMT_RedirectionService: 32768 + 1 (IDE-R) + 2 (SOL).
const (
	redirBase = 32768
	redirIDER = 1
	redirSOL  = 2
)

// bootOptions is POST /api/v1/amt/power/bootOptions/{guid} with
// {"action": N, "useSOL": bool, "bootDetails": {...}}: MPS's sequence
// (bootOptions.ts): AMT_BootSettingData read and written back with
// BIOSSetup, UseIDER, IDERBootDevice and UseSOL for the action, the boot
// order cleared, the boot configuration made the next one
// (SetBootConfigRole 1), the forced source set (PXE, CD/DVD), then a reset
// or power on. The answer is powerAction's. Refused before the device
// changes: actions amtd does not take (104 secure erase, 105-110 HTTPS,
// PBA and WinRE boot, which need UEFI boot parameters amtd does not build
// yet, 300/301 diagnostic, for which MPS sends no boot source), actions
// the device lacks the capability for, and SOL or IDE-R while the device
// has them disabled (POST /amt/features first), and a power-on action to
// a host that is already on (the reset variant does it).
func (s *Service) bootOptions(w http.ResponseWriter, r *http.Request) (string, int) {
	var req struct {
		Action      *int            `json:"action"`
		UseSOL      bool            `json:"useSOL"`
		BootDetails json.RawMessage `json:"bootDetails"`
	}
	if err := decodeBody(r, &req); err != nil || req.Action == nil {
		return "amt", writeError(w, http.StatusBadRequest, `want a JSON body {"action": N, "useSOL": false} with N one of `+bootActionList)
	}
	act, known := bootActions[*req.Action]
	switch n := *req.Action; {
	case n >= 105 && n <= 110:
		return "amt", writeError(w, http.StatusBadRequest, "action "+strconv.Itoa(n)+
			" (HTTPS, PBA or WinRE boot) is not supported by amtd yet; it takes "+bootActionList)
	case n == 500 || n == 501 || validPowerAction(n):
		return "amt", writeError(w, http.StatusBadRequest, "action "+strconv.Itoa(n)+
			" is a power action: POST it to /api/v1/amt/power/action/{guid}; bootOptions takes "+bootActionList)
	case !known:
		return "amt", writeError(w, http.StatusBadRequest, "action "+strconv.Itoa(n)+
			" is not a boot action amtd takes (secure erase 104 and diagnostic boot 300/301 are not supported); use "+bootActionList)
	}
	if d := strings.TrimSpace(string(req.BootDetails)); d != "" && d != "null" && d != "{}" {
		return "amt", writeError(w, http.StatusBadRequest, "bootDetails is for HTTPS, PBA and WinRE boot (105-110), which amtd does not do yet; leave it out")
	}
	c, done, u, obj, st, ok := s.deviceClient(w, r)
	if !ok {
		return obj, st
	}
	defer done()
	ctx := r.Context()
	var caps wsman.Instance
	if err := c.Get(ctx, "AMT_BootCapabilities", &caps); err != nil {
		return obj, s.deviceError(w, u, err)
	}
	if !propBool(&caps, act.cap) {
		return obj, writeError(w, http.StatusBadRequest, "device "+u+" cannot "+strings.ToLower(act.name)+
			": its AMT_BootCapabilities has "+act.cap+" false (GET /api/v1/amt/power/capabilities lists what it can)")
	}
	if !act.reset {
		// A power-on to a host that is on would boot nothing and leave the
		// one-time settings for whatever boot comes next.
		items, err := c.Enumerate(ctx, "CIM_AssociatedPowerManagementService")
		if err != nil {
			return obj, s.deviceError(w, u, err)
		}
		for i := range items {
			if items[i].Value("PowerState") == "2" {
				return obj, writeError(w, http.StatusConflict, "device "+u+" is on, and action "+strconv.Itoa(*req.Action)+
					" powers it on; use "+strconv.Itoa(resetVariant[*req.Action])+" ("+strings.ToLower(bootActions[resetVariant[*req.Action]].name)+") instead")
			}
		}
	}
	if req.UseSOL && !propBool(&caps, "SOL") {
		return obj, writeError(w, http.StatusBadRequest, "device "+u+" cannot boot with SOL: its AMT_BootCapabilities has SOL false; send useSOL false")
	}
	if req.UseSOL || act.ider != 0 {
		var rs wsman.Instance
		if err := c.Get(ctx, "AMT_RedirectionService", &rs); err != nil {
			return obj, s.deviceError(w, u, err)
		}
		state := propInt(&rs, "EnabledState") - redirBase
		if req.UseSOL && (state < 0 || state&redirSOL == 0 || !propBool(&rs, "ListenerEnabled")) {
			return obj, writeError(w, http.StatusConflict, "SOL is disabled on device "+u+
				`: POST /api/v1/amt/features/`+u+` with "enableSOL": true first, or send useSOL false`)
		}
		if act.ider != 0 && (state < 0 || state&redirIDER == 0 || !propBool(&rs, "ListenerEnabled")) {
			return obj, writeError(w, http.StatusConflict, "IDE-R is disabled on device "+u+
				`: POST /api/v1/amt/features/`+u+` with "enableIDER": true first`)
		}
	}
	var bsd wsman.Instance
	if err := c.Get(ctx, "AMT_BootSettingData", &bsd); err != nil {
		return obj, s.deviceError(w, u, err)
	}
	// MPS's setBootData: every option off but the action's.
	for _, name := range []string{"BIOSPause", "ConfigurationDataReset", "ForcedProgressEvents", "LockKeyboard",
		"LockPowerButton", "LockResetButton", "LockSleepButton", "ReflashBIOS", "UseSafeMode", "UserPasswordBypass", "SecureErase"} {
		if _, has := bsd.Get(name); has {
			bsd.Set(name, "false")
		}
	}
	ider := "0"
	if act.ider == 2 {
		ider = "1" // 0 floppy, 1 CD
	}
	bsd.Set("BIOSSetup", strconv.FormatBool(act.bios))
	bsd.Set("BootMediaIndex", "0")
	bsd.Set("FirmwareVerbosity", "0")
	bsd.Set("IDERBootDevice", ider)
	bsd.Set("UseIDER", strconv.FormatBool(act.ider != 0))
	bsd.Set("UseSOL", strconv.FormatBool(req.UseSOL))
	// What firmware reports and a Put does not set, and the remote secure
	// erase password, which amtd never writes back.
	for _, name := range []string{"BIOSLastStatus", "BootguardStatus", "OptionsCleared", "RSEPassword", "UefiBootParametersArray"} {
		bsd.Props = dropProp(bsd.Props, name)
	}
	type changeBootOrderInput struct{ Source wsman.EPR }
	type setBootConfigRoleInput struct {
		BootConfigSetting wsman.EPR
		Role              int // 1: IsNext
	}
	cfgSel := wsman.Selector{Name: "InstanceID", Value: "Intel(r) AMT: Boot Configuration 0"}
	if err := c.Invoke(ctx, "CIM_BootConfigSetting", "ChangeBootOrder", nil, nil, cfgSel); err != nil {
		return obj, s.deviceError(w, u, err)
	}
	if _, err := c.Put(ctx, "AMT_BootSettingData", bsd); err != nil {
		return obj, s.deviceError(w, u, err)
	}
	role := setBootConfigRoleInput{BootConfigSetting: bootConfigEPR(), Role: 1}
	if err := c.Invoke(ctx, "CIM_BootService", "SetBootConfigRole", wsman.ParamsOf(role), nil,
		wsman.Selector{Name: "Name", Value: "Intel(r) AMT Boot Service"}); err != nil {
		return obj, s.deviceError(w, u, err)
	}
	if act.source != "" {
		src := changeBootOrderInput{Source: wsman.EPR{Address: wsman.AnonymousAddress, ResourceURI: wsman.BaseCIM + "CIM_BootSourceSetting",
			Selectors: []wsman.Selector{{Name: "InstanceID", Value: act.source}}}}
		if err := c.Invoke(ctx, "CIM_BootConfigSetting", "ChangeBootOrder", wsman.ParamsOf(src), nil, cfgSel); err != nil {
			return obj, s.deviceError(w, u, err)
		}
	}
	state := 2
	if act.reset {
		state = 10
	}
	return obj, s.sendPowerChange(w, r, c, u, state)
}

func dropProp(ps []wsman.Property, name string) []wsman.Property {
	out := ps[:0]
	for _, p := range ps {
		if p.Name != name {
			out = append(out, p)
		}
	}
	return out
}

// sendPowerChange calls RequestPowerStateChange(state) and answers as MPS:
// {"Body": {"ReturnValue": N, "ReturnValueStr": ...}}, 200 whatever the
// device's ReturnValue.
func (s *Service) sendPowerChange(w http.ResponseWriter, r *http.Request, c *wsman.Client, u string, state int) int {
	in := wsman.RequestPowerStateChangeInput{PowerState: state, ManagedElement: wsman.ManagedSystem()}
	err := c.Invoke(r.Context(), "CIM_PowerManagementService", "RequestPowerStateChange", in.Params(), nil)
	return s.answerPowerCall(w, u, err)
}

// answerPowerCall answers a power method's outcome err as MPS does: the
// device's ReturnValue named (200 whatever it is), or the failure to reach
// the device.
func (s *Service) answerPowerCall(w http.ResponseWriter, u string, err error) int {
	code, err := returnCode(err)
	if err != nil {
		return s.deviceError(w, u, err)
	}
	return writePowerResult(w, code, powerReturnStr(code))
}

// powerReturnStr names a power method's ReturnValue, UNKNOWN_ERROR when
// returnValueStr has no name for it.
func powerReturnStr(code int) string {
	if str, ok := returnValueStr[code]; ok {
		return str
	}
	return "UNKNOWN_ERROR"
}

func writePowerResult(w http.ResponseWriter, code int, str string) int {
	type body struct {
		ReturnValue    int    `json:"ReturnValue"`
		ReturnValueStr string `json:"ReturnValueStr"`
	}
	return writeJSON(w, http.StatusOK, struct {
		Body body `json:"Body"`
	}{body{code, str}})
}

// OS power saving actions of POST power/action (MPS powerAction.ts): 500
// to full power, 501 to OS power saving, through IPS_PowerManagementService
// (OSPowerSavingState 0 unknown, 1 unsupported, 2 full power, 3 saving).
const (
	osToFullPower   = 500
	osToPowerSaving = 501
)

// osPowerSaving runs action 500 or 501 as MPS: a device in state 0 or 1
// answers ReturnValue 1 OS_POWER_STATE_UNKNOWN or 2
// OS_POWER_STATE_UNSUPPORTED without a change; one already in the target
// state answers 0; otherwise RequestOSPowerSavingStateChange's code. A
// device without the class (AMT before 16) is told so with 400 (MPS 500s).
func (s *Service) osPowerSaving(w http.ResponseWriter, r *http.Request, c *wsman.Client, u string, action int) int {
	var ips wsman.Instance
	switch err := c.Get(r.Context(), "IPS_PowerManagementService", &ips); {
	case isFault(err):
		return writeError(w, http.StatusBadRequest, "device "+u+" has no IPS_PowerManagementService (older AMT), so it cannot take OS power saving actions 500 and 501")
	case err != nil:
		return s.deviceError(w, u, err)
	}
	target := 2
	if action == osToPowerSaving {
		target = 3
	}
	switch propInt(&ips, "OSPowerSavingState") {
	case 0:
		return writePowerResult(w, 1, "OS_POWER_STATE_UNKNOWN")
	case 1:
		return writePowerResult(w, 2, "OS_POWER_STATE_UNSUPPORTED")
	case target:
		return writePowerResult(w, 0, "SUCCESS")
	}
	type input struct {
		OSPowerSavingState int
		ManagedElement     wsman.EPR
	}
	err := c.Invoke(r.Context(), "IPS_PowerManagementService", "RequestOSPowerSavingStateChange",
		wsman.ParamsOf(input{target, wsman.ManagedSystem()}), nil)
	return s.answerPowerCall(w, u, err)
}

// userConsent maps MPS's names to IPS_OptInService.OptInRequired
// (spec/wsman.md §6): none 0, kvm 1 (KVM only), all 4294967295.
var userConsent = map[string]string{"none": "0", "kvm": "1", "all": "4294967295"}

// amtFeatures is what GET /amt/features reads of a device.
type amtFeatures struct {
	redir, sol, ider   bool
	kvm, kvmAvailable  bool
	optInRequired      string
	optInState         int
	redirection, optIn wsman.Instance
}

// readFeatures reads AMT_RedirectionService, IPS_OptInService and
// CIM_KVMRedirectionSAP (a device without KVM faults on it: kvmAvailable
// false), as MPS's getAMTFeatures.
func readFeatures(r *http.Request, c *wsman.Client) (amtFeatures, error) {
	var f amtFeatures
	ctx := r.Context()
	if err := c.Get(ctx, "AMT_RedirectionService", &f.redirection); err != nil {
		return f, err
	}
	if err := c.Get(ctx, "IPS_OptInService", &f.optIn); err != nil {
		return f, err
	}
	state := propInt(&f.redirection, "EnabledState")
	f.redir = propBool(&f.redirection, "ListenerEnabled")
	f.sol = state >= redirBase && (state-redirBase)&redirSOL != 0
	f.ider = state >= redirBase && (state-redirBase)&redirIDER != 0
	f.optInRequired = strings.TrimSpace(f.optIn.Value("OptInRequired"))
	f.optInState = propInt(&f.optIn, "OptInState")
	var kvm wsman.Instance
	switch err := c.Get(ctx, "CIM_KVMRedirectionSAP", &kvm); {
	case isFault(err):
	case err != nil:
		return f, err
	default:
		// 2 enabled, 6 enabled but offline (the listener is off).
		n := propInt(&kvm, "EnabledState")
		f.kvm, f.kvmAvailable = n == 2 || n == 6, true
	}
	return f, nil
}

// getFeatures is GET /api/v1/amt/features/{guid}, MPS's getAMTFeatures:
// {userConsent, redirection, KVM, SOL, IDER, optInState, kvmAvailable, ocr,
// httpsBootSupported, winREBootSupported, localPBABootSupported,
// remoteEraseEnabled, remoteEraseSupported, platformEraseCaps}. ocr is
// CIM_BootService in 32769 or 32771; the boot kinds need the capability,
// the setting and a boot source of that kind, as MPS's processOCRData.
// userConsent is left out when OptInRequired has a value MPS has no name
// for (MPS sends undefined).
func (s *Service) getFeatures(w http.ResponseWriter, r *http.Request) (string, int) {
	c, done, u, obj, st, ok := s.deviceClient(w, r)
	if !ok {
		return obj, st
	}
	defer done()
	ctx := r.Context()
	f, err := readFeatures(r, c)
	if err != nil {
		return obj, s.deviceError(w, u, err)
	}
	var bootSvc, caps, bsd wsman.Instance
	for class, in := range map[string]*wsman.Instance{"CIM_BootService": &bootSvc, "AMT_BootCapabilities": &caps, "AMT_BootSettingData": &bsd} {
		if err := c.Get(ctx, class, in); err != nil && !isFault(err) {
			return obj, s.deviceError(w, u, err)
		}
	}
	sources, err := c.Enumerate(ctx, "CIM_BootSourceSetting")
	if err != nil && !isFault(err) {
		return obj, s.deviceError(w, u, err)
	}
	var https, winre, pba bool
	for i := range sources {
		id, bios := sources[i].Value("InstanceID"), sources[i].Value("BIOSBootString")
		https = https || strings.HasPrefix(id, "Intel(r) AMT: Force OCR UEFI HTTPS Boot")
		if strings.HasPrefix(id, "Intel(r) AMT: Force OCR UEFI Boot Option") {
			winre = winre || strings.Contains(bios, "WinRe")
			pba = pba || strings.Contains(bios, "PBA")
		}
	}
	ocr := propInt(&bootSvc, "EnabledState")
	out := map[string]any{
		"redirection":           f.redir,
		"KVM":                   f.kvm,
		"SOL":                   f.sol,
		"IDER":                  f.ider,
		"optInState":            f.optInState,
		"kvmAvailable":          f.kvmAvailable,
		"ocr":                   ocr == 32769 || ocr == 32771,
		"httpsBootSupported":    https && propBool(&caps, "ForceUEFIHTTPSBoot") && propBool(&bsd, "UEFIHTTPSBootEnabled"),
		"winREBootSupported":    winre && propBool(&caps, "ForceWinREBoot") && propBool(&bsd, "WinREBootEnabled"),
		"localPBABootSupported": pba && propBool(&caps, "ForceUEFIPBABoot") && propBool(&bsd, "UEFILocalPBABootEnabled"),
		"remoteEraseEnabled":    propBool(&bsd, "PlatformErase"),
		"remoteEraseSupported":  propInt(&caps, "PlatformErase") != 0,
		"platformEraseCaps":     propInt(&caps, "PlatformErase"),
	}
	for name, v := range userConsent {
		if v == f.optInRequired {
			out["userConsent"] = name
		}
	}
	return obj, writeJSON(w, http.StatusOK, out)
}

// setFeatures is POST /api/v1/amt/features/{guid} with {"userConsent":
// "none"|"kvm"|"all", "enableSOL", "enableIDER", "enableKVM", "ocr"?}, as
// MPS's setAMTFeatures: the redirection state (32768 + IDE-R 1 + SOL 2)
// and KVM (2 on, 3 off) are requested and the listener put on when any of
// the three is on, off when none is; OptInRequired is put when it
// differs; ocr turns One Click Recovery on (CIM_BootService 32769) or off
// (32768). Everything is checked before anything changes: a device in
// client control mode requires consent for everything (userConsent must be
// "all"), and one without KVM cannot enable it. Answers {"status":
// "Updated AMT Features"} (MPS's AMT_FEATURES_SET_SUCCESS; the exact words
// are unverified).
func (s *Service) setFeatures(w http.ResponseWriter, r *http.Request) (string, int) {
	var req struct {
		UserConsent *string `json:"userConsent"`
		EnableSOL   *bool   `json:"enableSOL"`
		EnableIDER  *bool   `json:"enableIDER"`
		EnableKVM   *bool   `json:"enableKVM"`
		OCR         *bool   `json:"ocr"`
	}
	const want = `want a JSON body {"userConsent": "none"|"kvm"|"all", "enableSOL": bool, "enableIDER": bool, "enableKVM": bool} (and optionally "ocr": bool)`
	if err := decodeBody(r, &req); err != nil || req.UserConsent == nil || req.EnableSOL == nil || req.EnableIDER == nil || req.EnableKVM == nil {
		return "amt", writeError(w, http.StatusBadRequest, want)
	}
	consent := strings.ToLower(*req.UserConsent)
	optIn, ok := userConsent[consent]
	if !ok {
		return "amt", writeError(w, http.StatusBadRequest, "userConsent "+strconv.Quote(truncate(*req.UserConsent, 20))+
			` is not one of "none", "kvm", "all"`)
	}
	c, done, u, obj, st, ok := s.deviceClient(w, r)
	if !ok {
		return obj, st
	}
	defer done()
	ctx := r.Context()
	var setup wsman.Instance
	if err := c.Get(ctx, "AMT_SetupAndConfigurationService", &setup); err != nil {
		return obj, s.deviceError(w, u, err)
	}
	// ProvisioningMode 4 is client control mode (spec/wsman.md §6).
	if propInt(&setup, "ProvisioningMode") == 4 && consent != "all" {
		return obj, writeError(w, http.StatusBadRequest, "device "+u+` is in client control mode, where AMT requires user consent for every redirection and remote action; send "userConsent": "all"`)
	}
	f, err := readFeatures(r, c)
	if err != nil {
		return obj, s.deviceError(w, u, err)
	}
	if *req.EnableKVM && !f.kvmAvailable {
		return obj, writeError(w, http.StatusBadRequest, "device "+u+` has no KVM (CIM_KVMRedirectionSAP); send "enableKVM": false`)
	}
	if req.OCR != nil {
		var bootSvc wsman.Instance
		if err := c.Get(ctx, "CIM_BootService", &bootSvc); isFault(err) {
			return obj, writeError(w, http.StatusBadRequest, "device "+u+` has no CIM_BootService, so no One Click Recovery; leave "ocr" out`)
		} else if err != nil {
			return obj, s.deviceError(w, u, err)
		}
	}

	sol, ider, kvm := *req.EnableSOL, *req.EnableIDER, *req.EnableKVM
	if sol != f.sol || ider != f.ider || kvm != f.kvm || (sol || ider) && !f.redir {
		redir := sol || ider || kvm
		state := redirBase
		if ider {
			state += redirIDER
		}
		if sol {
			state += redirSOL
		}
		if err := c.RequestStateChange(ctx, "AMT_RedirectionService", state); err != nil {
			return obj, s.deviceError(w, u, err)
		}
		if f.kvmAvailable {
			k := 3
			if kvm {
				k = 2
			}
			if err := c.RequestStateChange(ctx, "CIM_KVMRedirectionSAP", k); err != nil {
				return obj, s.deviceError(w, u, err)
			}
		}
		body := f.redirection
		body.Set("EnabledState", strconv.Itoa(state))
		body.Set("ListenerEnabled", strconv.FormatBool(redir))
		if _, err := c.Put(ctx, "AMT_RedirectionService", body); err != nil {
			return obj, s.deviceError(w, u, err)
		}
	}
	if f.optInRequired != optIn {
		body := f.optIn
		body.Set("OptInRequired", optIn)
		if _, err := c.Put(ctx, "IPS_OptInService", body); err != nil {
			return obj, s.deviceError(w, u, err)
		}
	}
	if req.OCR != nil {
		state := 32768
		if *req.OCR {
			state = 32769
		}
		if err := c.RequestStateChange(ctx, "CIM_BootService", state); err != nil {
			return obj, s.deviceError(w, u, err)
		}
	}
	return obj, writeJSON(w, http.StatusOK, map[string]string{"status": "Updated AMT Features"})
}

// Names of AMT_EthernetPortSettings values as MPS's networkSettings helper
// (and Console, from go-wsman-messages) spells them.
var (
	linkPolicyNames         = map[int]string{1: "S0 AC", 14: "Sx AC", 16: "S0 DC", 224: "Sx DC"}
	linkPreferenceNames     = map[int]string{1: "Management Engine", 2: "Host"}
	wlanProtectionNames     = map[int]string{0: "Override", 1: "None", 2: "Passive", 3: "High"}
	connectionTypeNames     = map[int]string{0: "Integrated LAN NIC", 1: "Discrete LAN NIC", 2: "LAN via Thunderbolt Dock", 3: "Wireless LAN"}
	nicMediumNames          = map[int]string{0: "SMBUS", 1: "PCIe"}
	ieee8021xEnabledNames   = map[int]string{2: "EnabledWithCertificates", 3: "Disabled", 6: "EnabledWithoutCertificates"}
	wifiAuthenticationNames = map[int]string{1: "Other", 2: "OpenSystem", 3: "SharedKey", 4: "WPAPSK", 5: "WPAIEEE8021x",
		6: "WPA2PSK", 7: "WPA2IEEE8021x", 32768: "WPA3SAE", 32769: "WPA3OWE"}
	wifiEncryptionNames = map[int]string{1: "Other", 2: "WEP", 3: "TKIP", 4: "CCMP", 5: "None"}
	bssTypeNames        = map[int]string{0: "Unknown", 2: "Independent", 3: "Infrastructure"}
)

// enumName maps a numeric property through names; "" when it is missing
// or unnamed, as MPS's mapEnum.
func enumName(in *wsman.Instance, prop string, names map[int]string) string {
	v, ok := in.Get(prop)
	if !ok {
		return ""
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return ""
	}
	return names[n]
}

// networkInfo is MPS's NetworkInfo of one AMT_EthernetPortSettings.
func networkInfo(p *wsman.Instance) map[string]any {
	policy := []string{}
	for _, v := range p.Values("LinkPolicy") {
		n, _ := strconv.Atoi(strings.TrimSpace(v))
		name, ok := linkPolicyNames[n]
		if !ok {
			name = "Unknown"
		}
		policy = append(policy, name)
	}
	out := map[string]any{
		"elementName":            p.Value("ElementName"),
		"instanceID":             p.Value("InstanceID"),
		"vlanTag":                propInt(p, "VLANTag"),
		"sharedMAC":              propBool(p, "SharedMAC"),
		"macAddress":             p.Value("MACAddress"),
		"linkIsUp":               propBool(p, "LinkIsUp"),
		"linkPolicy":             policy,
		"sharedStaticIP":         propBool(p, "SharedStaticIp"),
		"sharedDynamicIP":        propBool(p, "SharedDynamicIP"),
		"ipSyncEnabled":          propBool(p, "IpSyncEnabled"),
		"dhcpEnabled":            propBool(p, "DHCPEnabled"),
		"ipAddress":              p.Value("IPAddress"),
		"subnetMask":             p.Value("SubnetMask"),
		"defaultGateway":         p.Value("DefaultGateway"),
		"primaryDNS":             p.Value("PrimaryDNS"),
		"secondaryDNS":           p.Value("SecondaryDNS"),
		"physicalConnectionType": enumName(p, "PhysicalConnectionType", connectionTypeNames),
		"physicalNICMedium":      enumName(p, "PhysicalNicMedium", nicMediumNames),
	}
	if n := propInt(p, "ConsoleTcpMaxRetransmissions"); n != 0 {
		out["consoleTCPMaxRetransmissions"] = n
	}
	return out
}

// networkSettings is GET /api/v1/amt/networkSettings/{guid}, read only:
// {"wired": {...}, "wireless": {...}} as MPS's getNetworkSettings, from
// AMT_EthernetPortSettings (port 0 wired, port 1 wireless), the wired
// port's IPS_IEEE8021xSettings, and for the wireless one its
// CIM_WiFiEndpointSettings profiles (without the user's own), the
// CIM_IEEE8021xSettings and AMT_WiFiPortConfigurationService. A port the
// device lacks is null; a class it faults on reads as empty. No secret
// (PSK, 802.1X password) is read into the answer. 404 when the device has
// neither port, as MPS.
func (s *Service) networkSettings(w http.ResponseWriter, r *http.Request) (string, int) {
	c, done, u, obj, st, ok := s.deviceClient(w, r)
	if !ok {
		return obj, st
	}
	defer done()
	ctx := r.Context()
	ports, err := c.Enumerate(ctx, "AMT_EthernetPortSettings")
	if err != nil {
		return obj, s.deviceError(w, u, err)
	}
	var wiredPort, wirelessPort *wsman.Instance
	for i := range ports {
		id := ports[i].Value("InstanceID")
		switch {
		case strings.Contains(id, "Intel(r) AMT Ethernet Port Settings 0") && wiredPort == nil:
			wiredPort = &ports[i]
		case strings.Contains(id, "Intel(r) AMT Ethernet Port Settings 1") && wirelessPort == nil:
			wirelessPort = &ports[i]
		}
	}
	if wiredPort == nil && wirelessPort == nil {
		return obj, writeError(w, http.StatusNotFound, "device "+u+" reports no AMT_EthernetPortSettings for its wired or wireless port")
	}
	out := map[string]any{"wired": nil, "wireless": nil}
	if wiredPort != nil {
		wired := networkInfo(wiredPort)
		var x wsman.Instance
		if err := c.Get(ctx, "IPS_IEEE8021xSettings", &x); err != nil && !isFault(err) {
			return obj, s.deviceError(w, u, err)
		}
		wired["ieee8021x"] = map[string]any{"enabled": enumName(&x, "Enabled", ieee8021xEnabledNames),
			"availableInS0": propBool(&x, "AvailableInS0"), "pxeTimeout": propInt(&x, "PxeTimeout")}
		out["wired"] = wired
	}
	if wirelessPort != nil {
		wl := networkInfo(wirelessPort)
		wl["linkPreference"] = enumName(wirelessPort, "LinkPreference", linkPreferenceNames)
		wl["linkControl"] = enumName(wirelessPort, "LinkControl", linkPreferenceNames)
		wl["wlanLinkProtectionLevel"] = enumName(wirelessPort, "WLANLinkProtectionLevel", wlanProtectionNames)
		profiles, err := c.Enumerate(ctx, "CIM_WiFiEndpointSettings")
		if err != nil && !isFault(err) {
			return obj, s.deviceError(w, u, err)
		}
		nets := []map[string]any{}
		for i := range profiles {
			p := &profiles[i]
			if id := p.Value("InstanceID"); id == "" || strings.HasPrefix(id, "Intel(r) AMT:WiFi Endpoint User Settings") {
				continue
			}
			nets = append(nets, map[string]any{"elementName": p.Value("ElementName"), "ssid": p.Value("SSID"),
				"authenticationMethod": enumName(p, "AuthenticationMethod", wifiAuthenticationNames),
				"encryptionMethod":     enumName(p, "EncryptionMethod", wifiEncryptionNames),
				"priority":             propInt(p, "Priority"), "bsstype": enumName(p, "BSSType", bssTypeNames)})
		}
		wl["wifiNetworks"] = nets
		xs, err := c.Enumerate(ctx, "CIM_IEEE8021xSettings")
		if err != nil && !isFault(err) {
			return obj, s.deviceError(w, u, err)
		}
		x8021 := []map[string]any{}
		for i := range xs {
			x := &xs[i]
			x8021 = append(x8021, map[string]any{"authenticationProtocol": propInt(x, "AuthenticationProtocol"),
				"roamingIdentity": x.Value("RoamingIdentity"), "serverCertificateName": x.Value("ServerCertificateName"),
				"serverCertificateNameComparison": propInt(x, "ServerCertificateNameComparison"),
				"username":                        x.Value("Username"), "domain": x.Value("Domain")})
		}
		wl["ieee8021xSettings"] = x8021
		var svc wsman.Instance
		if err := c.Get(ctx, "AMT_WiFiPortConfigurationService", &svc); err != nil && !isFault(err) {
			return obj, s.deviceError(w, u, err)
		}
		wl["wifiPortConfigService"] = map[string]any{
			"requestedState": propInt(&svc, "RequestedState"), "enabledState": propInt(&svc, "EnabledState"),
			"healthState": propInt(&svc, "HealthState"), "elementName": svc.Value("ElementName"),
			"systemCreationClassName": svc.Value("SystemCreationClassName"), "systemName": svc.Value("SystemName"),
			"creationClassName": svc.Value("CreationClassName"), "name": svc.Value("Name"),
			"localProfileSynchronizationEnabled": propInt(&svc, "localProfileSynchronizationEnabled"),
			"lastConnectedSsidUnderMeControl":    svc.Value("LastConnectedSsidUnderMeControl"),
			"noHostCsmeSoftwarePolicy":           propInt(&svc, "NoHostCsmeSoftwarePolicy"),
			"uefiWiFiProfileShareEnabled":        propBool(&svc, "UEFIWiFiProfileShareEnabled"),
		}
		out["wireless"] = wl
	}
	return obj, writeJSON(w, http.StatusOK, out)
}

// deactivate is DELETE /api/v1/amt/deactivate/{guid}: Unprovision(1) over
// CIRA (spec/wsman.md §6; both control modes), then the device record says
// deactivated as the agent's deactivate leaves it (control mode 0, state
// "deactivated" in the history with the key that did it). Unlike MPS the
// record and the stored passwords stay: the password history is what
// reaches the device if the unprovision did not take. A device that is not
// provisioned is told with 409 and not asked. The device's non-zero
// ReturnValue is a 200 {"ReturnValue": N, "ReturnValueStr"} with the
// record unchanged (MPS sends 200 {"ReturnValue": N}); success is
// {"status": "SUCCESS"}. The device drops its CIRA link by itself once its
// MPS settings are gone.
func (s *Service) deactivate(w http.ResponseWriter, r *http.Request) (string, int) {
	c, done, u, obj, st, ok := s.deviceClient(w, r)
	if !ok {
		return obj, st
	}
	defer done()
	ctx := r.Context()
	var setup wsman.Instance
	if err := c.Get(ctx, "AMT_SetupAndConfigurationService", &setup); err != nil {
		return obj, s.deviceError(w, u, err)
	}
	// ProvisioningState: 0 pre, 1 in, 2 post (spec/wsman.md §6).
	if ps := propInt(&setup, "ProvisioningState"); ps != 2 {
		return obj, writeError(w, http.StatusConflict, "device "+u+" is not activated (ProvisioningState "+strconv.Itoa(ps)+
			"), so there is nothing to deactivate")
	}
	err := c.Invoke(ctx, "AMT_SetupAndConfigurationService", "Unprovision", wsman.UnprovisionInput{ProvisioningMode: 1}.Params(), nil)
	var re *wsman.ReturnError
	if errors.As(err, &re) {
		return obj, writeJSON(w, http.StatusOK, map[string]any{"ReturnValue": re.Code, "ReturnValueStr": powerReturnStr(re.Code)})
	}
	if err != nil {
		return obj, s.deviceError(w, u, err)
	}
	k, _ := ctx.Value(keyCtx{}).(store.APIKey)
	// The device is unprovisioned: the record must say so even if the
	// client hung up. Mode and state only: the CIRA relay may be writing
	// the link's end meanwhile, and a whole-row Put would undo it.
	err = s.deps.Store.Devices().SetMode(context.WithoutCancel(ctx), u, 0, "deactivated", "unprovision", "by API key "+k.ID)
	if err != nil {
		return obj, s.internal(w, "device "+u+" was unprovisioned but recording it failed", err)
	}
	s.log.Info("api: device deactivated", "device", u, "key", k.ID)
	return obj, writeJSON(w, http.StatusOK, map[string]string{"status": "SUCCESS"})
}

// disconnect is DELETE /api/v1/devices/disconnect/{guid}: the CIRA link
// is dropped with DISCONNECT (spec/redirection.md §7.1). AMT reconnects by
// its own policy (a periodic or always-on trigger does soon). Answers as
// MPS: {"success": 200, "description": "CIRA connection disconnected :
// GUID"}.
func (s *Service) disconnect(w http.ResponseWriter, r *http.Request) (string, int) {
	u, obj, st, ok := s.knownDevice(w, r, "devices")
	if !ok {
		return obj, st
	}
	if s.opts.Devices == nil {
		return obj, writeError(w, http.StatusNotFound, notConnected+": [CIRA] is off in amtd.conf, so amtd holds no device link")
	}
	dc, ok := s.opts.Devices.(DeviceDisconnecter)
	if !ok {
		return obj, writeError(w, http.StatusNotImplemented, "this amtd's way to devices cannot drop a CIRA link")
	}
	if !dc.Disconnect(u) {
		return obj, writeError(w, http.StatusNotFound, notConnected+": device "+u+" has no CIRA link to this amtd")
	}
	s.log.Info("api: CIRA link dropped", "device", u)
	return obj, writeJSON(w, http.StatusOK, map[string]any{"success": 200, "description": "CIRA connection disconnected : " + u})
}
