package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"amtd/amt/wsman"
	"amtd/store"
)

// deviceEditRoutes edit device records (tags, names) and a device's display
// settings (spec/redirection.md §7.1, §7.2).
func (s *Service) deviceEditRoutes() []route {
	return []route{
		{"PATCH", "/api/v1/devices", "devices.update", store.RoleOperator, s.updateDevice},
		{"POST", "/api/v1/devices", "devices.create", store.RoleOperator, s.createDevice},
		{"DELETE", "/api/v1/devices/{guid}", "devices.delete", store.RoleAdmin, s.deleteDevice},
		{"DELETE", "/api/v1/devices/refresh/{guid}", "devices.refresh", store.RoleOperator, s.refreshDevice},
		{"GET", "/api/v1/amt/kvm/displays/{guid}", "amt.kvm.displays", store.RoleViewer, s.getDisplays},
		{"PUT", "/api/v1/amt/kvm/displays/{guid}", "amt.kvm.displays.set", store.RoleOperator, s.setDisplay},
		// MPS's swagger also names the PUT /amt/screen/{guid}; MPS routes
		// only kvm/displays. Both reach the same handler here.
		{"PUT", "/api/v1/amt/screen/{guid}", "amt.kvm.displays.set", store.RoleOperator, s.setDisplay},
	}
}

// Bounds of what a console may write on a device record. MPS checks only
// that hostname is under 256 characters; amtd bounds the fields it keeps.
// Tags are filtered on one at a time (GET /devices?tags=) and MPS's filter
// splits on commas, so a tag never holds one.
const (
	maxFriendlyName = 255 // characters, as MPS's hostname
	maxTags         = 32
	maxTagLen       = 64 // characters
	tagPunctuation  = " -_.:/@#+=()"
)

// deviceFields sorts the fields of MPS's device record (what GET
// /devices/{guid} sends, spec/redirection.md §7.1) by who owns them.
var (
	// consoleFields are the console's own: the only ones an edit changes.
	consoleFields = []string{"friendlyName", "tags"}
	// provisionedFields are what provisioning records from the device. A
	// console that sends the whole record back (MPS's UI does) may send
	// them unchanged; a different value is refused, never ignored.
	provisionedFields = []string{"hostname", "dnsSuffix", "mpsusername", "tenantId"}
	// reportedFields are what amtd reports of the device's link and
	// firmware; echoed back, they are ignored (MPS also ignores the power
	// state fields).
	reportedFields = []string{"connectionStatus", "mpsInstance", "lastConnected", "lastSeen", "lastDisconnected",
		"deviceInfo", "powerState", "osPowerSavingState", "powerStateUpdatedAt", "connect", "disconnect"}
)

// deviceBody is a POST or PATCH /devices body: the device's guid and the
// fields to change, checked before anything is written.
type deviceBody struct {
	uuid  string
	edit  store.DeviceEdit
	given map[string]json.RawMessage
}

// object is the audit object: the device once the body names one.
func (b deviceBody) object() string {
	if b.uuid == "" {
		return "devices"
	}
	return "device/" + b.uuid
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// parseDeviceBody reads and validates a device body. The error is the
// sentence the client gets with a 400.
func parseDeviceBody(r *http.Request) (deviceBody, error) {
	var b deviceBody
	if err := decodeBody(r, &b.given); err != nil || b.given == nil {
		return b, errors.New(`want a JSON object {"guid": GUID, "friendlyName": NAME, "tags": [TAG, ...]}`)
	}
	var guid string
	if err := json.Unmarshal(b.given["guid"], &guid); err != nil || guid == "" {
		return b, errors.New(`guid: the body must name the device, "guid": "8-4-4-4-12 hex"`)
	}
	u, err := store.NormalizeUUID(guid)
	if err != nil {
		return b, errors.New("guid: " + err.Error())
	}
	b.uuid = u
	for name := range b.given {
		if name != "guid" && !slices.Contains(consoleFields, name) && !slices.Contains(provisionedFields, name) && !slices.Contains(reportedFields, name) {
			return b, errors.New(strconv.Quote(truncate(printable(name), 40)) + " is not a field of a device record; amtd edits " +
				strings.Join(consoleFields, " and "))
		}
	}
	if raw, ok := b.given["friendlyName"]; ok {
		var name string
		if !isNull(raw) {
			if err := json.Unmarshal(raw, &name); err != nil {
				return b, errors.New("friendlyName must be a string (or null to clear it)")
			}
		}
		if err := checkFriendlyName(name); err != nil {
			return b, err
		}
		b.edit.FriendlyName = &name
	}
	if raw, ok := b.given["tags"]; ok {
		tags := []string{}
		if !isNull(raw) {
			var in []string
			if err := json.Unmarshal(raw, &in); err != nil {
				return b, errors.New("tags must be a list of strings (or null to clear them)")
			}
			if len(in) > maxTags {
				return b, errors.New("tags: " + strconv.Itoa(len(in)) + " given, at most " + strconv.Itoa(maxTags))
			}
			for _, t := range in {
				if err := checkTag(t); err != nil {
					return b, err
				}
				// A tag given twice is kept once.
				if !slices.Contains(tags, t) {
					tags = append(tags, t)
				}
			}
		}
		b.edit.Tags = &tags
	}
	return b, nil
}

func checkFriendlyName(name string) error {
	if !utf8.ValidString(name) {
		return errors.New("friendlyName is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(name); n > maxFriendlyName {
		return errors.New("friendlyName has " + strconv.Itoa(n) + " characters, at most " + strconv.Itoa(maxFriendlyName))
	}
	for _, c := range name {
		if !unicode.IsPrint(c) {
			return errors.New("friendlyName holds a control or invisible character (" + strconv.QuoteRune(c) + "); use printable text")
		}
	}
	return nil
}

func checkTag(t string) error {
	q := strconv.Quote(truncate(t, maxTagLen))
	switch n := utf8.RuneCountInString(t); {
	case !utf8.ValidString(t):
		return errors.New("tag " + q + " is not valid UTF-8")
	case n == 0:
		return errors.New("tags: an empty tag; leave it out")
	case n > maxTagLen:
		return errors.New("tag " + q + " has " + strconv.Itoa(n) + " characters, at most " + strconv.Itoa(maxTagLen))
	case strings.TrimSpace(t) != t:
		return errors.New("tag " + q + " starts or ends with a space")
	}
	for _, c := range t {
		if !unicode.IsLetter(c) && !unicode.IsDigit(c) && !strings.ContainsRune(tagPunctuation, c) {
			return errors.New("tag " + q + " holds " + strconv.QuoteRune(c) + "; a tag is letters, digits, spaces and " +
				strings.TrimSpace(tagPunctuation) + " (no commas: GET /devices?tags= splits on them)")
		}
	}
	return nil
}

// checkProvisioned refuses a provisioned field sent with a value other
// than the record's.
func checkProvisioned(b deviceBody, d store.Device) error {
	have := map[string]string{"hostname": d.Hostname, "dnsSuffix": d.DNSSuffix, "mpsusername": d.CIRA.MPSUsername, "tenantId": ""}
	why := map[string]string{
		"hostname":    "the name the device reports, which provisioning records; set it on the device (AMT_GeneralSettings, or the host's DHCP name) or use friendlyName for the console's name",
		"dnsSuffix":   "the domain provisioning activated the device in",
		"mpsusername": "the CIRA user provisioning gave the device; it changes only when provisioning configures CIRA again",
		"tenantId":    "amtd has no tenants; send \"\" or leave it out",
	}
	for _, name := range provisionedFields {
		raw, ok := b.given[name]
		if !ok || isNull(raw) {
			continue
		}
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return errors.New(name + " must be a string")
		}
		if v != have[name] {
			return errors.New(name + " cannot be changed through the API (it is " + strconv.Quote(have[name]) + "): " + why[name])
		}
	}
	return nil
}

// updateDevice is PATCH /api/v1/devices with MPS's body, {"guid": ...,
// and the fields to change}: the console's own fields, friendlyName and
// tags, change; the rest of the record belongs to provisioning (mode,
// state, passwords, hostname) and the relay (the link), and a change to a
// provisioned field is refused with 400 (see provisionedFields). Answers
// as MPS: the device as GET /devices/{guid} sends it, 404 for an unknown
// guid. Nothing is written unless the whole body is valid; the change is
// audited with old and new values (store.Devices.Edit).
func (s *Service) updateDevice(w http.ResponseWriter, r *http.Request) (string, int) {
	b, err := parseDeviceBody(r)
	if err != nil {
		return b.object(), writeError(w, http.StatusBadRequest, err.Error())
	}
	return s.editDevice(w, r, b, false)
}

// createDevice is POST /api/v1/devices. MPS uses it to add a device to its
// CIRA allowlist, with the device's passwords already in its vault; it
// upserts. amtd's allowlist is the devices it activated: CIRA logs in with
// the MPS password provisioning set, and the /amt routes use the admin
// password it set. A record made here would have neither, so the device
// could never connect while it showed in every list as managed. POST for a
// device amtd knows is therefore an edit, as PATCH (MPS answers 200 for
// that too); for another guid it is refused with 404 and a sentence saying
// how devices come into amtd.
func (s *Service) createDevice(w http.ResponseWriter, r *http.Request) (string, int) {
	b, err := parseDeviceBody(r)
	if err != nil {
		return b.object(), writeError(w, http.StatusBadRequest, err.Error())
	}
	return s.editDevice(w, r, b, true)
}

func (s *Service) editDevice(w http.ResponseWriter, r *http.Request, b deviceBody, create bool) (string, int) {
	u := b.uuid
	obj := "device/" + u
	d, err := s.deps.Store.Devices().Get(r.Context(), u)
	if errors.Is(err, store.ErrNotFound) {
		if create {
			return obj, writeError(w, http.StatusNotFound, "Device ID "+u+" is not known to amtd, and amtd does not add devices through the API: "+
				"a device appears when amtd activates it (bare metal, its hello, or rpc activate against amtd), since only then does amtd hold "+
				"the MPS password CIRA logs in with and the AMT admin password the /amt routes use; a record made here would connect to nothing. "+
				"POST for a device amtd knows edits it, as PATCH")
		}
		return obj, writeError(w, http.StatusNotFound, "Device ID "+u+" not found")
	}
	if err != nil {
		return obj, s.internal(w, "reading device "+u, err)
	}
	if err := checkProvisioned(b, d); err != nil {
		return obj, writeError(w, http.StatusBadRequest, err.Error())
	}
	k, _ := r.Context().Value(keyCtx{}).(store.APIKey)
	d, err = s.deps.Store.Devices().Edit(r.Context(), u, b.edit, "api:key:"+k.ID)
	if errors.Is(err, store.ErrNotFound) {
		return obj, writeError(w, http.StatusNotFound, "Device ID "+u+" not found")
	}
	if err != nil {
		return obj, s.internal(w, "editing device "+u, err)
	}
	return obj, writeJSON(w, http.StatusOK, deviceJSON(d))
}

// lockoutRefusal is why a device record may not be deleted; the store
// returns it as it is (store.Devices.DeleteChecked).
type lockoutRefusal struct{ msg string }

func (e *lockoutRefusal) Error() string { return e.msg }

// deleteCheck decides whether deleting a device's record could lock the
// device out. amtd keeps a device's passwords with its record (deleting
// the record deletes them), and for a device amtd activated they are the
// only copy: AMT's admin password is random per device. So whatever
// isSecretToBeDeleted says, a record with passwords is deleted only when
// the device is known to be deactivated: control mode 0, state
// "deactivated" (the API's or an agent's Unprovision), no CIRA link (a
// link proves the device still has the MPS settings), and no pending
// password (an activation or password change under way, or interrupted:
// the device may have taken it). A record without passwords (a device
// seen but never activated) can always go.
func deleteCheck(u string) func(store.Device, []store.HeldSecret) error {
	return func(d store.Device, held []store.HeldSecret) error {
		if len(held) == 0 {
			return nil
		}
		const keep = "amtd keeps a device's passwords with its record, so deleting the record would delete the only copy of its AMT admin password and lock the device out of remote management"
		first := "Deactivate it first (DELETE /api/v1/amt/deactivate/" + u + ", or rpc deactivate against amtd), then delete the record."
		mode := map[int]string{1: "client control mode", 2: "admin control mode"}
		switch {
		case d.ControlMode != 0:
			return &lockoutRefusal{"device " + u + " is activated in " + mode[d.ControlMode] + "; " + keep + ". " + first}
		case d.CIRA.Connected:
			return &lockoutRefusal{"device " + u + " is connected over CIRA with the MPS password amtd holds, so it is still configured whatever its record says; " +
				keep + ". " + first}
		case slices.ContainsFunc(held, func(h store.HeldSecret) bool { return h.State == store.StatePending }):
			return &lockoutRefusal{"an activation or password change of device " + u + " is under way or was interrupted, and the device may have taken the " +
				"pending password amtd holds; " + keep + ". Let provisioning finish (amtd status), then deactivate the device and delete the record."}
		case d.ProvisioningState != "deactivated":
			return &lockoutRefusal{"device " + u + "'s record says " + strconv.Quote(d.ProvisioningState) + ", not deactivated, and amtd holds passwords " +
				"the device may have (an activation that failed part-way can leave it activated); " + keep + ". " + first}
		}
		return nil
	}
}

// deleteDevice is DELETE /api/v1/devices/{guid}?isSecretToBeDeleted=
// (admin): 204 as MPS, 404 for an unknown guid, 409 with the reason when
// deleting would lock the device out (deleteCheck). amtd keeps passwords
// with the record, so they always go with it; isSecretToBeDeleted=false
// cannot keep them, and is accepted since deleteCheck lets only records
// whose passwords no device uses go (a deactivated device's AMT is back
// to its defaults). A deleted device that amtd later activates again gets
// a new record.
func (s *Service) deleteDevice(w http.ResponseWriter, r *http.Request) (string, int) {
	u, err := store.NormalizeUUID(r.PathValue("guid"))
	if err != nil {
		return "devices", writeError(w, http.StatusBadRequest, "guid: "+err.Error())
	}
	obj := "device/" + u
	withSecrets := false
	if v := r.URL.Query().Get("isSecretToBeDeleted"); v != "" {
		if withSecrets, err = strconv.ParseBool(v); err != nil {
			return obj, writeError(w, http.StatusBadRequest, "isSecretToBeDeleted must be true or false")
		}
	}
	k, _ := r.Context().Value(keyCtx{}).(store.APIKey)
	err = s.deps.Store.Devices().DeleteChecked(r.Context(), u, "api:key:"+k.ID,
		"DELETE /api/v1/devices isSecretToBeDeleted="+strconv.FormatBool(withSecrets), deleteCheck(u))
	var refusal *lockoutRefusal
	switch {
	case errors.As(err, &refusal):
		return obj, writeError(w, http.StatusConflict, refusal.msg)
	case errors.Is(err, store.ErrNotFound):
		return obj, writeError(w, http.StatusNotFound, "Device ID "+u+" not found")
	case err != nil:
		return obj, s.internal(w, "deleting device "+u, err)
	}
	s.log.Info("api: device record deleted", "device", u, "key", k.ID)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return obj, http.StatusNoContent
}

// refreshDevice is DELETE /api/v1/devices/refresh/{guid}. MPS reloads the
// device's credentials from its vault into the live CIRA connection after
// a password change. amtd keeps no credentials in a connection: every
// WS-Man call and redirection session reads the current password from the
// store, so a changed password is used from the next call on and there is
// nothing to reload. The answer is MPS's success for a device amtd knows
// (connected or not: nothing is stale either way), 404 otherwise.
func (s *Service) refreshDevice(w http.ResponseWriter, r *http.Request) (string, int) {
	u, err := store.NormalizeUUID(r.PathValue("guid"))
	if err != nil {
		return "devices", writeError(w, http.StatusBadRequest, "guid: "+err.Error())
	}
	obj := "device/" + u
	if _, err := s.deps.Store.Devices().Get(r.Context(), u); errors.Is(err, store.ErrNotFound) {
		return obj, writeError(w, http.StatusNotFound, "Device ID "+u+" not found")
	} else if err != nil {
		return obj, s.internal(w, "reading device "+u, err)
	}
	return obj, writeJSON(w, http.StatusOK, map[string]any{"success": 200, "description": "Device info refreshed : " + u})
}

// KVMDisplay is one of the host's screens as MPS's GET /amt/kvm/displays
// sends it (its kvmScreenSettingsMapper): the position and resolution from
// IPS_ScreenSettingData, role from its Primary/Secondary/Tertiary/
// QuadraryIndex, isDefault from IPS_KVMRedirectionSettingData.DefaultScreen
// (the screen KVM opens on). Indexes count from 0, as MPS compares them;
// the fixture from a real device has PrimaryIndex 1 to QuadraryIndex 4,
// which may count from 1 (unverified), so MPS and amtd would name display
// 1 the primary there.
type KVMDisplay struct {
	DisplayIndex int    `json:"displayIndex"`
	IsActive     bool   `json:"isActive"`
	UpperLeftX   int    `json:"upperLeftX"`
	UpperLeftY   int    `json:"upperLeftY"`
	ResolutionX  int    `json:"resolutionX"`
	ResolutionY  int    `json:"resolutionY"`
	Role         string `json:"role,omitempty"`
	IsDefault    bool   `json:"isDefault"`
}

// maxDisplays bounds what a device may report: AMT's KVM serves up to 4
// screens (LMS's KVMScreenSettingClient MAX_DISPLAY_NUMBER); more is a
// broken or hostile answer.
const maxDisplays = 16

// errNoKVM: the device faults on the display classes (no KVM).
var errNoKVM = errors.New("no KVM display classes")

// readDisplays reads IPS_ScreenSettingData (enumerated, as MPS) and
// IPS_KVMRedirectionSettingData.
func readDisplays(r *http.Request, c *wsman.Client) ([]KVMDisplay, wsman.Instance, error) {
	var kvm wsman.Instance
	items, err := c.Enumerate(r.Context(), "IPS_ScreenSettingData")
	if isFault(err) {
		return nil, kvm, errNoKVM
	}
	if err != nil {
		return nil, kvm, err
	}
	if err := c.Get(r.Context(), "IPS_KVMRedirectionSettingData", &kvm); isFault(err) {
		return nil, kvm, errNoKVM
	} else if err != nil {
		return nil, kvm, err
	}
	ds, err := displaysOf(items, &kvm)
	return ds, kvm, err
}

// displaysOf maps IPS_ScreenSettingData items and the KVM settings to
// MPS's displays. Whatever the device sends, the answer is bounded
// (maxDisplays) and a value that is not a number is an error naming it.
func displaysOf(items []wsman.Instance, kvm *wsman.Instance) ([]KVMDisplay, error) {
	var err error
	num := func(in *wsman.Instance, name string, v string) (int, error) {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return 0, errors.New(in.Class + " " + name + " " + strconv.Quote(truncate(v, 20)) + " is not a number")
		}
		return n, nil
	}
	def := -1
	if v, ok := kvm.Get("DefaultScreen"); ok {
		if def, err = num(kvm, "DefaultScreen", v); err != nil {
			return nil, err
		}
	}
	out := []KVMDisplay{}
	for i := range items {
		in := &items[i]
		roles := map[int]string{}
		for _, p := range []struct{ prop, role string }{{"QuadraryIndex", "quaternary"}, {"TertiaryIndex", "tertiary"},
			{"SecondaryIndex", "secondary"}, {"PrimaryIndex", "primary"}} {
			if v, ok := in.Get(p.prop); ok {
				n, err := num(in, p.prop, v)
				if err != nil {
					return nil, err
				}
				roles[n] = p.role // primary last: it wins a tie, as MPS's if-else
			}
		}
		cols := map[string][]string{}
		count := 0
		for _, name := range []string{"IsActive", "UpperLeftX", "UpperLeftY", "ResolutionX", "ResolutionY"} {
			cols[name] = in.Values(name)
			count = max(count, len(cols[name]))
		}
		if len(out)+count > maxDisplays {
			return nil, errors.New("IPS_ScreenSettingData reports more than " + strconv.Itoa(maxDisplays) + " displays")
		}
		at := func(name string, j int) (int, error) {
			if j >= len(cols[name]) {
				return 0, nil
			}
			return num(in, name, cols[name][j])
		}
		for j := range count {
			d := KVMDisplay{DisplayIndex: j, Role: roles[j], IsDefault: j == def}
			d.IsActive = j < len(cols["IsActive"]) && strings.TrimSpace(cols["IsActive"][j]) == "true"
			for _, f := range []struct {
				name string
				dst  *int
			}{{"UpperLeftX", &d.UpperLeftX}, {"UpperLeftY", &d.UpperLeftY}, {"ResolutionX", &d.ResolutionX}, {"ResolutionY", &d.ResolutionY}} {
				if *f.dst, err = at(f.name, j); err != nil {
					return nil, err
				}
			}
			out = append(out, d)
		}
	}
	return out, nil
}

// getDisplays is GET /api/v1/amt/kvm/displays/{guid}: {"displays": [...]}
// (KVMDisplay), 404 when the device has no KVM display classes, as MPS.
func (s *Service) getDisplays(w http.ResponseWriter, r *http.Request) (string, int) {
	c, done, u, obj, st, ok := s.deviceClient(w, r)
	if !ok {
		return obj, st
	}
	defer done()
	ds, _, err := readDisplays(r, c)
	if errors.Is(err, errNoKVM) {
		return obj, writeError(w, http.StatusNotFound, "device "+u+" reports no KVM screen settings (IPS_ScreenSettingData, IPS_KVMRedirectionSettingData): it has no KVM")
	}
	if err != nil {
		return obj, s.deviceError(w, u, err)
	}
	return obj, writeJSON(w, http.StatusOK, map[string]any{"displays": ds})
}

// setDisplay is PUT /api/v1/amt/kvm/displays/{guid} with {"displayIndex":
// N}: the screen KVM opens on, IPS_KVMRedirectionSettingData.DefaultScreen,
// read and written back with it changed, as MPS. Unlike MPS, N must be a
// display the device reports (400 otherwise) and an active one (409: KVM
// would open on a dark screen), and RFBPassword is not written back: AMT
// reads it as empty, and the Put must not clear the password a VNC client
// on port 5900 uses. The answer is MPS's, the instance the device returns:
// {"IPS_KVMRedirectionSettingData": {...}}.
func (s *Service) setDisplay(w http.ResponseWriter, r *http.Request) (string, int) {
	var req struct {
		DisplayIndex *int `json:"displayIndex"`
	}
	if err := decodeBody(r, &req); err != nil || req.DisplayIndex == nil {
		return "amt", writeError(w, http.StatusBadRequest, `want a JSON body {"displayIndex": N}, N the display KVM opens on (GET /api/v1/amt/kvm/displays lists them)`)
	}
	n := *req.DisplayIndex
	if n < 0 || n >= maxDisplays {
		return "amt", writeError(w, http.StatusBadRequest, "displayIndex "+strconv.Itoa(n)+" is not a display index (0 to 3 on AMT)")
	}
	c, done, u, obj, st, ok := s.deviceClient(w, r)
	if !ok {
		return obj, st
	}
	defer done()
	ds, kvm, err := readDisplays(r, c)
	if errors.Is(err, errNoKVM) {
		return obj, writeError(w, http.StatusNotFound, "device "+u+" reports no KVM screen settings (IPS_ScreenSettingData, IPS_KVMRedirectionSettingData): it has no KVM")
	}
	if err != nil {
		return obj, s.deviceError(w, u, err)
	}
	var active []string
	for _, d := range ds {
		if d.IsActive {
			active = append(active, strconv.Itoa(d.DisplayIndex))
		}
	}
	switch {
	case n >= len(ds):
		return obj, writeError(w, http.StatusBadRequest, "device "+u+" reports "+strconv.Itoa(len(ds))+" displays (0 to "+strconv.Itoa(len(ds)-1)+
			"), so there is no display "+strconv.Itoa(n))
	case !ds[n].IsActive:
		return obj, writeError(w, http.StatusConflict, "display "+strconv.Itoa(n)+" of device "+u+" is not active, and KVM would open on a dark screen; active displays: "+
			strings.Join(active, ", "))
	}
	body := kvm
	body.Set("DefaultScreen", strconv.Itoa(n))
	body.Props = dropProp(body.Props, "RFBPassword")
	msg, err := c.Put(r.Context(), "IPS_KVMRedirectionSettingData", body)
	if err != nil {
		return obj, s.deviceError(w, u, err)
	}
	echo := body
	if msg != nil && len(msg.Instances) > 0 {
		echo = msg.Instances[0]
	}
	return obj, writeJSON(w, http.StatusOK, map[string]any{"IPS_KVMRedirectionSettingData": instanceJSON(&echo)})
}
