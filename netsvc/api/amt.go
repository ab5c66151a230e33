package api

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"

	"amtd/amt/wsman"
	"amtd/netsvc/cira"
	"amtd/store"
)

// DeviceDialer reaches a device's AMT port over its CIRA link: the CIRA
// service's Dial (spec/apf.md §7). Errors wrap cira.ErrNotConnected when
// the device has no link to this amtd.
type DeviceDialer interface {
	Dial(ctx context.Context, uuid string, port uint16) (net.Conn, error)
}

// wsmanPort is AMT's plain WS-Man port; over CIRA the channel is the
// security boundary, as MPS does it (spec/redirection.md §1, §7.2).
const wsmanPort = 16992

// notConnected is MPS's message for every /amt/* call to a device without
// a live CIRA socket (spec/redirection.md §7).
const notConnected = "Device not found/connected"

// deviceClient checks the device and returns a WS-Man client that reaches
// it over CIRA as "admin" with the password amtd keeps sealed; the console
// never sees that password (issue 6). When ok is false the error is sent.
// The caller runs done (which wipes the password) when it is finished.
func (s *Service) deviceClient(w http.ResponseWriter, r *http.Request) (c *wsman.Client, done func(), uuid, obj string, status int, ok bool) {
	u, obj, st, ok := s.knownDevice(w, r, "amt")
	if !ok {
		return nil, nil, u, obj, st, false
	}
	if s.opts.Devices == nil {
		return nil, nil, u, obj, writeError(w, http.StatusNotFound, notConnected+": [CIRA] is off in amtd.conf, so amtd reaches no device"), false
	}
	pw, err := s.deps.Store.Secrets().Current(r.Context(), u, store.AMTAdmin)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, u, obj, writeError(w, http.StatusConflict, "amtd holds no AMT admin password for device "+u+
			"; it manages the devices it activated (amtd devices show UUID says how this one got here)"), false
	}
	if err != nil {
		return nil, nil, u, obj, s.internal(w, "reading the device's AMT password", err), false
	}
	dial := func(ctx context.Context) (net.Conn, error) { return s.opts.Devices.Dial(ctx, u, wsmanPort) }
	c = wsman.NewClient(dial, wsman.Credentials{Host: u + ":" + strconv.Itoa(wsmanPort), Username: "admin", Password: pw})
	return c, pw.Wipe, u, obj, 0, true
}

// knownDevice reads the {guid} of the path and checks the store has the
// device; obj is the audit object ("device/UUID", or bad when the guid is
// not one). When ok is false the error is sent.
func (s *Service) knownDevice(w http.ResponseWriter, r *http.Request, bad string) (uuid, obj string, status int, ok bool) {
	u, err := store.NormalizeUUID(r.PathValue("guid"))
	if err != nil {
		return "", bad, writeError(w, http.StatusBadRequest, "guid: "+err.Error()), false
	}
	obj = "device/" + u
	if _, err := s.deps.Store.Devices().Get(r.Context(), u); errors.Is(err, store.ErrNotFound) {
		return u, obj, writeError(w, http.StatusNotFound, "Device ID "+u+" not found"), false
	} else if err != nil {
		return u, obj, s.internal(w, "reading device "+u, err), false
	}
	return u, obj, 0, true
}

// deviceError answers a failed WS-Man exchange. The text of err names the
// device and the step, never the password (a secret.Value prints redacted).
func (s *Service) deviceError(w http.ResponseWriter, uuid string, err error) int {
	switch {
	case errors.Is(err, cira.ErrNotConnected):
		return writeError(w, http.StatusNotFound, notConnected+": device "+uuid+" has no CIRA link to this amtd")
	case errors.Is(err, context.DeadlineExceeded):
		return writeError(w, http.StatusGatewayTimeout, "device "+uuid+" did not answer WS-Man within "+requestTimeout.String())
	case errors.Is(err, wsman.ErrWrongPassword):
		s.log.Warn("api: AMT refused the stored admin password", "device", uuid)
		return writeError(w, http.StatusBadGateway, "device "+uuid+" refused the AMT admin password amtd holds; if it was changed outside amtd, set it back in MEBx or deactivate and re-activate the device")
	}
	s.log.Warn("api: WS-Man to a device failed", "device", uuid, "err", err)
	return writeError(w, http.StatusBadGateway, "WS-Man to device "+uuid+" failed: "+truncate(err.Error(), 300))
}

// powerState is GET /api/v1/amt/power/state/{guid}: {"powerstate": N},
// the PowerState of CIM_AssociatedPowerManagementService, and
// "OSPowerSavingState" from IPS_PowerManagementService as current MPS adds
// it (spec/redirection.md §7.2). MPS answers 400 when the latter is
// missing; amtd leaves the field out instead when the firmware faults on
// the class (older AMT has no IPS_PowerManagementService).
func (s *Service) powerState(w http.ResponseWriter, r *http.Request) (string, int) {
	c, done, u, obj, st, ok := s.deviceClient(w, r)
	if !ok {
		return obj, st
	}
	defer done()
	items, err := c.Enumerate(r.Context(), "CIM_AssociatedPowerManagementService")
	if err != nil {
		return obj, s.deviceError(w, u, err)
	}
	out := map[string]int{}
	for _, in := range items {
		if v, ok := in.Get("PowerState"); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				return obj, s.deviceError(w, u, errors.New("PowerState "+strconv.Quote(truncate(v, 20))+" is not a number"))
			}
			out["powerstate"] = n
			break
		}
	}
	if _, ok := out["powerstate"]; !ok {
		return obj, s.deviceError(w, u, errors.New("CIM_AssociatedPowerManagementService has no PowerState"))
	}
	var ips wsman.Instance
	switch err := c.Get(r.Context(), "IPS_PowerManagementService", &ips); {
	case isFault(err):
	case err != nil:
		return obj, s.deviceError(w, u, err)
	default:
		if n, err := strconv.Atoi(ips.Value("OSPowerSavingState")); err == nil {
			out["OSPowerSavingState"] = n
		}
	}
	return obj, writeJSON(w, http.StatusOK, out)
}

// validPowerAction: the DMTF power states MPS passes to
// RequestPowerStateChange (its DMTFPowerStates: 2 on, 3 light sleep, 4 deep
// sleep, 5 power cycle, 6 off-hard, 7 hibernate, 8 off-soft, 10 master bus
// reset, 11 NMI, 12 off-soft graceful, 13 off-hard graceful, 14 master bus
// reset graceful, 15/16 graceful power cycles, 17 diagnostic interrupt;
// not 9). MPS's 100+ are boot options (POST /amt/power/bootOptions,
// amt_settings.go); 500/501 (OS power saving) are validOSPowerAction.
func validPowerAction(n int) bool { return n >= 2 && n <= 17 && n != 9 }

// validOSPowerAction: MPS's 500 (OS to full power) and 501 (OS to power
// saving), run by osPowerSaving (amt_settings.go).
func validOSPowerAction(n int) bool { return n == osToFullPower || n == osToPowerSaving }

// returnValueStr names CIM_PowerManagementService.RequestPowerStateChange's
// return codes (DMTF CIM_PowerManagementService: 0 completed, 1 not
// supported, 2 unknown, 3 timeout, 4 failed, 5 invalid parameter, 6 in use).
// MPS runs the code through its AMT PT_STATUS table instead, which agrees
// on 0 ("SUCCESS") and misnames the others (1 INTERNAL_ERROR, ...);
// clients test ReturnValue.
var returnValueStr = map[int]string{0: "SUCCESS", 1: "NOT_SUPPORTED", 2: "UNKNOWN_ERROR", 3: "TIMEOUT",
	4: "FAILED", 5: "INVALID_PARAMETER", 6: "IN_USE"}

// powerAction is POST /api/v1/amt/power/action/{guid} with {"action": N}.
// The answer is MPS's: {"Body": {"ReturnValue": N, "ReturnValueStr": ...}},
// 200 whatever the device's ReturnValue (as MPS). 500 and 501 change the
// OS power saving state instead (osPowerSaving).
func (s *Service) powerAction(w http.ResponseWriter, r *http.Request) (string, int) {
	var req struct {
		Action *int `json:"action"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Action == nil {
		return "amt", writeError(w, http.StatusBadRequest, `want a JSON body {"action": N} with N a DMTF power state (2-8, 10-17) or 500/501 (OS to full power/power saving)`)
	}
	if !validPowerAction(*req.Action) && !validOSPowerAction(*req.Action) {
		return "amt", writeError(w, http.StatusBadRequest, "action "+strconv.Itoa(*req.Action)+
			" is not a power action amtd sends: use 2 (on), 5 (power cycle), 8 (off-soft), 10 (reset), ... (2-8, 10-17), or 500/501 (OS to full power/power saving); boot options (100+) go to POST /api/v1/amt/power/bootOptions/{guid}")
	}
	c, done, u, obj, st, ok := s.deviceClient(w, r)
	if !ok {
		return obj, st
	}
	defer done()
	if validOSPowerAction(*req.Action) {
		return obj, s.osPowerSaving(w, r, c, u, *req.Action)
	}
	return obj, s.sendPowerChange(w, r, c, u, *req.Action)
}

// amtVersion is GET /api/v1/amt/version/{guid}: every CIM_SoftwareIdentity
// instance and AMT_SetupAndConfigurationService, as MPS's getVersion
// returns them (spec/redirection.md §7.2): {"CIM_SoftwareIdentity":
// {"responses": [...], "status": 200}, "AMT_SetupAndConfigurationService":
// {"response": {...}, "responses": {"Body": {...}}, "status": 200}}. MPS
// also puts the WS-Man Header beside that Body; amtd does not. Properties
// are typed as MPS's XML parser types them (instanceJSON), a repeated one
// a list.
func (s *Service) amtVersion(w http.ResponseWriter, r *http.Request) (string, int) {
	c, done, u, obj, st, ok := s.deviceClient(w, r)
	if !ok {
		return obj, st
	}
	defer done()
	items, err := c.Enumerate(r.Context(), "CIM_SoftwareIdentity")
	if err != nil {
		return obj, s.deviceError(w, u, err)
	}
	var sc wsman.Instance
	if err := c.Get(r.Context(), "AMT_SetupAndConfigurationService", &sc); err != nil {
		return obj, s.deviceError(w, u, err)
	}
	sw := make([]map[string]any, 0, len(items))
	for i := range items {
		sw = append(sw, instanceJSON(&items[i]))
	}
	type list struct {
		Responses []map[string]any `json:"responses"`
		Status    int              `json:"status"`
	}
	type one struct {
		Response  map[string]any `json:"response"`
		Responses struct {
			Body map[string]any `json:"Body"`
		} `json:"responses"`
		Status int `json:"status"`
	}
	setup := one{Response: instanceJSON(&sc), Status: 200}
	setup.Responses.Body = setup.Response
	return obj, writeJSON(w, http.StatusOK, struct {
		Software list `json:"CIM_SoftwareIdentity"`
		Setup    one  `json:"AMT_SetupAndConfigurationService"`
	}{list{sw, 200}, setup})
}

// returnCode splits a method call's outcome: a non-zero ReturnValue (the
// device answered and refused, *wsman.ReturnError) becomes its code with a
// nil error; any other error stays.
func returnCode(err error) (int, error) {
	var re *wsman.ReturnError
	if errors.As(err, &re) {
		return re.Code, nil
	}
	return 0, err
}

// instanceJSON turns a WS-Man instance into the object MPS sends: each
// leaf property by name, typed as MPS's XML parser types it (mpsValue:
// numbers and booleans as JSON numbers and booleans, the rest as strings),
// a repeated one as a list. Nested values (EPRs, dates) are left out; no
// route here needs them.
func instanceJSON(in *wsman.Instance) map[string]any {
	out := map[string]any{}
	for _, p := range in.Props {
		if p.EPR != nil || len(p.Fields) > 0 {
			continue
		}
		v := mpsValue(p.Name, p.Value)
		switch prev := out[p.Name].(type) {
		case nil:
			out[p.Name] = v
		case []any:
			out[p.Name] = append(prev, v)
		default:
			out[p.Name] = []any{prev, v}
		}
	}
	return out
}
