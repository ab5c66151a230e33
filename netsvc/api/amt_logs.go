package api

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"amtd/amt/auditlog"
	"amtd/amt/eventlog"
	"amtd/amt/wsman"
	"amtd/store"
)

// logRoutes are the device log, user consent, alarm clock and certificate
// routes (spec/redirection.md §7.2). Starting and cancelling user consent
// are GETs in MPS but change what the device shows, so they need an
// operator, as every other change does. Adding or deleting a certificate
// changes whom the device trusts, so it needs an admin.
func (s *Service) logRoutes() []route {
	return []route{
		{"GET", "/api/v1/amt/userConsentCode/{guid}", "amt.consent.request", store.RoleOperator, s.consentRequest},
		{"POST", "/api/v1/amt/userConsentCode/{guid}", "amt.consent.send", store.RoleOperator, s.consentSend},
		{"GET", "/api/v1/amt/userConsentCode/cancel/{guid}", "amt.consent.cancel", store.RoleOperator, s.consentCancel},
		{"GET", "/api/v1/amt/log/audit/{guid}", "amt.log.audit", store.RoleViewer, s.auditLog},
		{"GET", "/api/v1/amt/log/event/{guid}", "amt.log.event", store.RoleViewer, s.eventLog},
		{"GET", "/api/v1/amt/alarmOccurrences/{guid}", "amt.alarms.list", store.RoleViewer, s.listAlarms},
		{"POST", "/api/v1/amt/alarmOccurrences/{guid}", "amt.alarms.add", store.RoleOperator, s.addAlarm},
		{"DELETE", "/api/v1/amt/alarmOccurrences/{guid}", "amt.alarms.delete", store.RoleOperator, s.deleteAlarm},
		{"GET", "/api/v1/amt/certificates/{guid}", "amt.certificates", store.RoleViewer, s.certificates},
		{"POST", "/api/v1/amt/certificates/{guid}", "amt.certificates.add", store.RoleAdmin, s.addCertificate},
		{"DELETE", "/api/v1/amt/certificates/{guid}/{instanceId}", "amt.certificates.delete", store.RoleAdmin, s.deleteCertificate},
	}
}

// ptStatus names AMT's PT_STATUS return codes as MPS's AMTStatusCodes
// does, for the ReturnValueStr of the consent routes.
var ptStatus = map[int]string{0: "SUCCESS", 1: "INTERNAL_ERROR", 2: "NOT_READY", 3: "INVALID_PT_MODE",
	4: "INVALID_MESSAGE_LENGTH", 5: "TABLE_FINGERPRINT_NOT_AVAILABLE", 6: "INTEGRITY_CHECK_FAILED",
	7: "UNSUPPORTED_ISVS_VERSION", 8: "APPLICATION_NOT_REGISTERED", 9: "INVALID_REGISTRATION_DATA",
	10: "APPLICATION_DOES_NOT_EXIST", 11: "NOT_ENOUGH_STORAGE", 12: "INVALID_NAME", 13: "BLOCK_DOES_NOT_EXIST",
	14: "INVALID_BYTE_OFFSET", 15: "INVALID_BYTE_COUNT", 16: "NOT_PERMITTED", 17: "NOT_OWNER",
	18: "BLOCK_LOCKED_BY_OTHER", 19: "BLOCK_NOT_LOCKED", 20: "INVALID_GROUP_PERMISSIONS", 21: "GROUP_DOES_NOT_EXIST",
	22: "INVALID_MEMBER_COUNT", 23: "MAX_LIMIT_REACHED", 24: "INVALID_AUTH_TYPE", 25: "AUTHENTICATION_FAILED",
	26: "INVALID_DHCP_MODE", 27: "INVALID_IP_ADDRESS", 28: "INVALID_DOMAIN_NAME", 29: "UNSUPPORTED_VERSION",
	30: "REQUEST_UNEXPECTED", 31: "INVALID_TABLE_TYPE", 32: "INVALID_PROVISIONING_STATE", 33: "UNSUPPORTED_OBJECT",
	34: "INVALID_TIME", 35: "INVALID_INDEX", 36: "INVALID_PARAMETER", 37: "INVALID_NETMASK",
	38: "FLASH_WRITE_LIMIT_EXCEEDED", 39: "INVALID_IMAGE_LENGTH", 40: "INVALID_IMAGE_SIGNATURE",
	41: "PROPOSE_ANOTHER_VERSION", 42: "INVALID_PID_FORMAT", 43: "INVALID_PPS_FORMAT", 44: "BIST_COMMAND_BLOCKED",
	45: "CONNECTION_FAILED", 46: "CONNECTION_TOO_MANY", 47: "RNG_GENERATION_IN_PROGRESS", 48: "RNG_NOT_READY",
	49: "CERTIFICATE_NOT_READY", 0x400: "DISABLED_BY_POLICY", 0x800: "NETWORK_IF_ERROR_BASE",
	0x801: "UNSUPPORTED_OEM_NUMBER", 0x802: "UNSUPPORTED_BOOT_OPTION", 0x803: "INVALID_COMMAND",
	0x804: "INVALID_SPECIAL_COMMAND", 0x805: "INVALID_HANDLE", 0x806: "INVALID_PASSWORD", 0x807: "INVALID_REALM",
	0x808: "STORAGE_ACL_ENTRY_IN_USE", 0x809: "DATA_MISSING", 0x80a: "DUPLICATE", 0x80b: "EVENTLOG_FROZEN",
	0x80c: "PKI_MISSING_KEYS", 0x80d: "PKI_GENERATING_KEYS", 0x80e: "INVALID_KEY", 0x80f: "INVALID_CERT",
	0x810: "CERT_KEY_NOT_MATCH", 0x811: "MAX_KERB_DOMAIN_REACHED", 0x812: "UNSUPPORTED", 0x813: "INVALID_PRIORITY",
	0x814: "NOT_FOUND", 0x815: "INVALID_CREDENTIALS", 0x816: "INVALID_PASSPHRASE", 0x818: "NO_ASSOCIATION",
	0x81b: "AUDIT_FAIL", 0x81c: "BLOCKING_COMPONENT", 0x821: "USER_CONSENT_REQUIRED", 0x1000: "APP_INTERNAL_ERROR",
	0x1001: "NOT_INITIALIZED", 0x1002: "LIB_VERSION_UNSUPPORTED", 0x1003: "INVALID_PARAM", 0x1004: "RESOURCES",
	0x1005: "HARDWARE_ACCESS_ERROR", 0x1006: "REQUESTOR_NOT_REGISTERED", 0x1007: "NETWORK_ERROR",
	0x1008: "PARAM_BUFFER_TOO_SHORT", 0x1009: "COM_NOT_INITIALIZED_IN_THREAD", 0x100a: "URL_REQUIRED"}

// consentCall runs one IPS_OptInService method and answers as MPS:
// {"Body": {"ReturnValue": N, "ReturnValueStr": ...}}, 200 when N is 0 and
// 400 (with the same body) when the device refused. MPS also sends the
// WS-Man Header; amtd does not, as for version.
func (s *Service) consentCall(w http.ResponseWriter, r *http.Request, method string, params []wsman.Property) (string, int) {
	c, done, u, obj, st, ok := s.deviceClient(w, r)
	if !ok {
		return obj, st
	}
	defer done()
	err := c.Invoke(r.Context(), "IPS_OptInService", method, params, nil)
	code, err := returnCode(err)
	if err != nil {
		return obj, s.deviceError(w, u, err)
	}
	type body struct {
		ReturnValue    int    `json:"ReturnValue"`
		ReturnValueStr string `json:"ReturnValueStr,omitempty"`
	}
	status := http.StatusOK
	if code != 0 {
		status = http.StatusBadRequest
	}
	return obj, writeJSON(w, status, struct {
		Body body `json:"Body"`
	}{body{code, ptStatus[code]}})
}

// consentRequest is GET /api/v1/amt/userConsentCode/{guid}: StartOptIn,
// after which the device shows a six-digit code on its screen.
func (s *Service) consentRequest(w http.ResponseWriter, r *http.Request) (string, int) {
	return s.consentCall(w, r, "StartOptIn", nil)
}

// consentCancel is GET /api/v1/amt/userConsentCode/cancel/{guid}.
func (s *Service) consentCancel(w http.ResponseWriter, r *http.Request) (string, int) {
	return s.consentCall(w, r, "CancelOptIn", nil)
}

// consentCodeRE: the code AMT shows is six digits.
var consentCodeRE = regexp.MustCompile(`^[0-9]{6}$`)

// consentSend is POST /api/v1/amt/userConsentCode/{guid} with
// {"consentCode": N}: SendOptInCode. MPS takes a number or a numeric
// string; so does amtd, as long as it is the six digits on the screen.
// The code goes to the device with its leading zeros (AMT reads the
// OptInCode as a number, so "012345" and 12345 are the same to it).
func (s *Service) consentSend(w http.ResponseWriter, r *http.Request) (string, int) {
	const want = `want a JSON body {"consentCode": N} with N the six-digit code the device shows (a number or a string of digits)`
	var req struct {
		ConsentCode json.RawMessage `json:"consentCode"`
	}
	if err := decodeBody(r, &req); err != nil || len(req.ConsentCode) == 0 {
		return "amt", writeError(w, http.StatusBadRequest, want)
	}
	code := ""
	var n json.Number
	var str string
	switch {
	case json.Unmarshal(req.ConsentCode, &str) == nil:
		code = str
	case json.Unmarshal(req.ConsentCode, &n) == nil:
		if v, err := strconv.ParseUint(n.String(), 10, 32); err == nil && v <= 999999 {
			code = fmt.Sprintf("%06d", v)
		}
	}
	if !consentCodeRE.MatchString(code) {
		return "amt", writeError(w, http.StatusBadRequest, want)
	}
	uri, _ := wsman.ResourceURI("IPS_OptInService")
	return s.consentCall(w, r, "SendOptInCode", []wsman.Property{{Name: "OptInCode", Namespace: uri, Value: code}})
}

// Audit log paging. AMT's ReadRecords returns at most ten records from a
// 1-based index, oldest first; a hostile device gets no more than
// maxAuditRecords decoded per call.
const (
	auditChunk      = 10
	maxAuditRecords = 100
)

// auditRecordJSON is one record as MPS's convertToAuditLogResult shapes
// it. Ex holds the extended data one character per byte, as MPS's
// "binary" string; ExStr is null for events MPS does not describe.
type auditRecordJSON struct {
	AuditAppID     int     `json:"AuditAppID"`
	EventID        int     `json:"EventID"`
	InitiatorType  int     `json:"InitiatorType"`
	AuditApp       string  `json:"AuditApp,omitempty"`
	Event          string  `json:"Event"`
	Initiator      string  `json:"Initiator"`
	Time           string  `json:"Time"`
	MCLocationType int     `json:"MCLocationType"`
	NetAddress     string  `json:"NetAddress"`
	Ex             string  `json:"Ex"`
	ExStr          *string `json:"ExStr"`
}

// mpsTime renders a time as JavaScript's Date.toJSON does.
func mpsTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// readAudit runs ReadRecords(start) and returns the total and the raw
// records.
func readAudit(r *http.Request, c *wsman.Client, start int) (total int, recs [][]byte, err error) {
	var out wsman.Instance
	if err := c.Invoke(r.Context(), "AMT_AuditLog", "ReadRecords", wsman.ReadRecordsInput{StartIndex: start}.Params(), &out); err != nil {
		return 0, nil, err
	}
	total, err = strconv.Atoi(strings.TrimSpace(out.Value("TotalRecordCount")))
	if err != nil || total < 0 {
		return 0, nil, fmt.Errorf("AMT_AuditLog.ReadRecords: TotalRecordCount %q is not a count", truncate(out.Value("TotalRecordCount"), 20))
	}
	vals := out.Values("EventRecords")
	if len(vals) > maxAuditRecords {
		return 0, nil, fmt.Errorf("AMT_AuditLog.ReadRecords: %d records in one answer; AMT sends at most %d", len(vals), auditChunk)
	}
	for _, v := range vals {
		if base64.StdEncoding.DecodedLen(len(v)) > 2*auditlog.MaxRecord {
			return 0, nil, fmt.Errorf("AMT_AuditLog.ReadRecords: a record of %d base64 bytes, longer than any audit record", len(v))
		}
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
		if err != nil {
			return 0, nil, fmt.Errorf("AMT_AuditLog.ReadRecords: a record is not base64: %w", err)
		}
		recs = append(recs, b)
	}
	return total, recs, nil
}

// auditLog is GET /api/v1/amt/log/audit/{guid}?startIndex=N: ten records
// of AMT_AuditLog, newest first, skipping the N newest (MPS's paging;
// startIndex 0 or absent is the newest page), as {"totalCnt": T,
// "records": [...]} decoded as MPS does. MPS computes the page's first
// index as total-N-10 and so drops the newest record once the log holds
// more than one page; amtd reads from total-N-9.
func (s *Service) auditLog(w http.ResponseWriter, r *http.Request) (string, int) {
	skip := 0
	if v := r.URL.Query().Get("startIndex"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1<<30 {
			return "amt", writeError(w, http.StatusBadRequest, "startIndex "+strconv.Quote(truncate(v, 20))+
				" is not a record count: send a whole number ≥ 0, the number of newest records to skip (0 for the newest page)")
		}
		skip = n
	}
	c, done, u, obj, st, ok := s.deviceClient(w, r)
	if !ok {
		return obj, st
	}
	defer done()
	total, recs, err := readAudit(r, c, 1)
	if err != nil {
		return obj, s.deviceError(w, u, err)
	}
	newest := total - skip // 1-based index of the newest record wanted
	var page [][]byte
	if newest > 0 {
		first := max(1, newest-auditChunk+1)
		if first > 1 {
			if _, recs, err = readAudit(r, c, first); err != nil {
				return obj, s.deviceError(w, u, err)
			}
		}
		page = recs[:min(len(recs), newest-first+1)]
	}
	out := struct {
		TotalCnt int               `json:"totalCnt"`
		Records  []auditRecordJSON `json:"records"`
	}{TotalCnt: total, Records: []auditRecordJSON{}}
	for i := len(page) - 1; i >= 0; i-- {
		rec, err := auditlog.Decode(page[i])
		if err != nil {
			s.log.Warn("api: skipping an audit record the device sent", "device", u, "err", err)
			continue
		}
		j := auditRecordJSON{AuditAppID: int(rec.AppID), EventID: int(rec.EventID), InitiatorType: int(rec.InitiatorType),
			AuditApp: rec.App(), Event: rec.Event(), Initiator: auditlog.Latin1([]byte(rec.Initiator())), Time: mpsTime(rec.Timestamp()),
			MCLocationType: int(rec.MCLocationType), NetAddress: auditlog.Latin1([]byte(rec.NetAddress)), Ex: auditlog.Latin1(rec.Ex)}
		j.NetAddress = strings.Replace(j.NetAddress, "0000:0000:0000:0000:0000:0000:0000:0001", "::1", 1)
		if ex, ok := rec.ExString(); ok {
			j.ExStr = &ex
		}
		out.Records = append(out.Records, j)
	}
	return obj, writeJSON(w, http.StatusOK, out)
}

// eventReadMax is GetRecords' MaxReadRecords, MPS's and
// go-wsman-messages' 390; more from a device are not decoded.
const eventReadMax = 390

// eventRecordJSON is one record as MPS's parseEventLogs shapes it.
type eventRecordJSON struct {
	DeviceAddress   int     `json:"DeviceAddress"`
	EventSensorType int     `json:"EventSensorType"`
	EventType       int     `json:"EventType"`
	EventOffset     int     `json:"EventOffset"`
	EventSourceType int     `json:"EventSourceType"`
	EventSeverity   int     `json:"EventSeverity"`
	SensorNumber    int     `json:"SensorNumber"`
	Entity          int     `json:"Entity"`
	EntityInstance  int     `json:"EntityInstance"`
	EventData       []int   `json:"EventData"`
	TimeStamp       *string `json:"TimeStamp"`
	EntityStr       string  `json:"EntityStr"`
	Desc            *string `json:"Desc"`
}

// eventLog is GET /api/v1/amt/log/event/{guid}: AMT_MessageLog
// PositionToFirstRecord then one GetRecords of up to 390 records (as
// MPS), newest first as AMT returns them, decoded as MPS does. A record
// with no time stamp has "TimeStamp": null (MPS fails on it).
func (s *Service) eventLog(w http.ResponseWriter, r *http.Request) (string, int) {
	c, done, u, obj, st, ok := s.deviceClient(w, r)
	if !ok {
		return obj, st
	}
	defer done()
	var pos wsman.Instance
	if err := c.Invoke(r.Context(), "AMT_MessageLog", "PositionToFirstRecord", nil, &pos); err != nil {
		return obj, s.deviceError(w, u, err)
	}
	id, err := strconv.Atoi(strings.TrimSpace(pos.Value("IterationIdentifier")))
	if err != nil {
		return obj, s.deviceError(w, u, fmt.Errorf("AMT_MessageLog.PositionToFirstRecord: IterationIdentifier %q is not a number",
			truncate(pos.Value("IterationIdentifier"), 20)))
	}
	var out wsman.Instance
	in := wsman.GetRecordsInput{IterationIdentifier: id, MaxReadRecords: eventReadMax}
	if err := c.Invoke(r.Context(), "AMT_MessageLog", "GetRecords", in.Params(), &out); err != nil {
		return obj, s.deviceError(w, u, err)
	}
	vals := out.Values("RecordArray")
	if len(vals) > eventReadMax {
		vals = vals[:eventReadMax]
	}
	recs := []eventRecordJSON{}
	for _, v := range vals {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(truncate(v, 4*eventlog.RecordSize)))
		var rec eventlog.Record
		if err == nil {
			rec, err = eventlog.Decode(b)
		}
		if err != nil {
			s.log.Warn("api: skipping an event record the device sent", "device", u, "err", err)
			continue
		}
		j := eventRecordJSON{DeviceAddress: int(rec.DeviceAddress), EventSensorType: int(rec.EventSensorType),
			EventType: int(rec.EventType), EventOffset: int(rec.EventOffset), EventSourceType: int(rec.EventSourceType),
			EventSeverity: int(rec.EventSeverity), SensorNumber: int(rec.SensorNumber), Entity: int(rec.Entity),
			EntityInstance: int(rec.EntityInstance), EntityStr: rec.EntityName()}
		for _, d := range rec.EventData {
			j.EventData = append(j.EventData, int(d))
		}
		if t, ok := rec.Time(); ok {
			ts := mpsTime(t)
			j.TimeStamp = &ts
		}
		if d, ok := rec.Description(); ok {
			j.Desc = &d
		}
		recs = append(recs, j)
	}
	return obj, writeJSON(w, http.StatusOK, recs)
}

// mpsValue types a property as MPS's XML parser does (numbers and
// booleans become JSON numbers and booleans), except where MPS keeps an
// ElementName or InstanceID with a leading zero as text.
func mpsValue(name, v string) any {
	if strings.EqualFold(v, "true") || strings.EqualFold(v, "false") {
		return strings.EqualFold(v, "true")
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > -1<<53 && n < 1<<53 {
		if (name == "ElementName" || name == "InstanceID") && len(v) > 1 && v[0] == '0' {
			return v
		}
		return n
	}
	return v
}

// intervalMinutes reads the days, hours, minutes and seconds of an
// xs:duration as MPS's parseInterval does (seconds count as fractions of
// a minute; the total is floored).
func intervalMinutes(d string) int {
	m := durationRE.FindStringSubmatch(d)
	if m == nil {
		return 0
	}
	num := func(s string) float64 { f, _ := strconv.ParseFloat(s, 64); return f }
	return int(num(m[1])*24*60 + num(m[2])*60 + num(m[3]) + num(m[4])/60)
}

var durationRE = regexp.MustCompile(`^P(?:(\d{1,9})D)?(?:T(?:(\d{1,9})H)?(?:(\d{1,9})M)?(?:(\d{1,9}(?:\.\d{1,9})?)S)?)?$`)

// listAlarms is GET /api/v1/amt/alarmOccurrences/{guid}: the
// IPS_AlarmClockOccurrence instances as MPS lists them: their properties,
// StartTime as {"Datetime": ...}, Interval as {"Interval": ...}, and
// "InternalInMinutes" (MPS's spelling) with the interval in minutes.
func (s *Service) listAlarms(w http.ResponseWriter, r *http.Request) (string, int) {
	c, done, u, obj, st, ok := s.deviceClient(w, r)
	if !ok {
		return obj, st
	}
	defer done()
	items, err := c.Enumerate(r.Context(), "IPS_AlarmClockOccurrence")
	if err != nil {
		return obj, s.deviceError(w, u, err)
	}
	out := make([]map[string]any, 0, len(items))
	for _, in := range items {
		a := map[string]any{}
		interval := ""
		for _, p := range in.Props {
			switch {
			case p.EPR != nil:
			case len(p.Fields) > 0:
				nested := map[string]any{}
				for _, f := range p.Fields {
					nested[f.Name] = f.Value
				}
				a[p.Name] = nested
				if p.Name == "Interval" {
					interval, _ = nested["Interval"].(string)
				}
			default:
				a[p.Name] = mpsValue(p.Name, p.Value)
			}
		}
		a["InternalInMinutes"] = intervalMinutes(interval)
		out = append(out, a)
	}
	return obj, writeJSON(w, http.StatusOK, out)
}

// alarmNameRE: AMT keeps InstanceID and ElementName as short strings; amtd
// takes printable ASCII up to 32 bytes, so a name never needs escaping.
var alarmNameRE = regexp.MustCompile(`^[\x20-\x7e]{1,32}$`)

// maxAlarmInterval: a year, well past any schedule a console sets.
const maxAlarmInterval = 366 * 24 * 60

// addAlarm is POST /api/v1/amt/alarmOccurrences/{guid} with MPS's body
// {"ElementName", "StartTime", "Interval"?, "InstanceID"?,
// "DeleteOnCompletion"?}: AMT_AlarmClockService.AddAlarm. Interval is in
// minutes (0 or absent: once). The answer is MPS's {"status": "SUCCESS",
// "ReturnValue": 0}; a device refusal (five alarms already, a name in
// use) is a 400 naming it.
func (s *Service) addAlarm(w http.ResponseWriter, r *http.Request) (string, int) {
	const want = `want a JSON body {"ElementName": NAME, "StartTime": "2030-01-02T03:04:00Z", "Interval": MINUTES, ` +
		`"InstanceID": NAME, "DeleteOnCompletion": true|false}; ElementName and StartTime are required, names are 1-32 printable ASCII characters`
	var req struct {
		ElementName        *string `json:"ElementName"`
		InstanceID         *string `json:"InstanceID"`
		StartTime          *string `json:"StartTime"`
		Interval           *int    `json:"Interval"`
		DeleteOnCompletion *bool   `json:"DeleteOnCompletion"`
	}
	if err := decodeBody(r, &req); err != nil || req.ElementName == nil || req.StartTime == nil {
		return "amt", writeError(w, http.StatusBadRequest, want)
	}
	name, id := *req.ElementName, *req.ElementName
	if req.InstanceID != nil {
		id = *req.InstanceID
	}
	if !alarmNameRE.MatchString(name) || !alarmNameRE.MatchString(id) {
		return "amt", writeError(w, http.StatusBadRequest, want)
	}
	start, err := time.Parse(time.RFC3339, *req.StartTime)
	if err != nil {
		if start, err = time.Parse("2006-01-02T15:04", *req.StartTime); err != nil {
			return "amt", writeError(w, http.StatusBadRequest, "StartTime "+strconv.Quote(truncate(*req.StartTime, 40))+
				" is not a date and time: send RFC 3339, e.g. \"2030-01-02T03:04:00Z\"")
		}
	}
	interval := 0
	if req.Interval != nil {
		interval = *req.Interval
	}
	if interval < 0 || interval > maxAlarmInterval {
		return "amt", writeError(w, http.StatusBadRequest, "Interval is in minutes: send 0 (once) up to "+strconv.Itoa(maxAlarmInterval)+" (a year)")
	}
	deleteOnCompletion := true
	if req.DeleteOnCompletion != nil {
		deleteOnCompletion = *req.DeleteOnCompletion
	}
	c, done, u, obj, st, ok := s.deviceClient(w, r)
	if !ok {
		return obj, st
	}
	defer done()
	occ, _ := wsman.ResourceURI("IPS_AlarmClockOccurrence")
	tpl := []wsman.Property{{Name: "InstanceID", Namespace: occ, Value: id}, {Name: "ElementName", Namespace: occ, Value: name},
		{Name: "StartTime", Namespace: occ, Fields: []wsman.Property{{Name: "Datetime", Namespace: wsman.NSCIMCommon,
			Value: start.UTC().Format(time.RFC3339)}}}}
	if interval > 0 {
		d := fmt.Sprintf("P%dDT%dH%dM", interval/(24*60), interval/60%24, interval%60)
		tpl = append(tpl, wsman.Property{Name: "Interval", Namespace: occ, Fields: []wsman.Property{{Name: "Interval",
			Namespace: wsman.NSCIMCommon, Value: d}}})
	}
	tpl = append(tpl, wsman.Property{Name: "DeleteOnCompletion", Namespace: occ, Value: strconv.FormatBool(deleteOnCompletion)})
	err = c.Invoke(r.Context(), "AMT_AlarmClockService", "AddAlarm", []wsman.Property{{Name: "AlarmTemplate", Fields: tpl}}, nil)
	var re *wsman.ReturnError
	var fault *wsman.Fault
	switch {
	case errors.As(err, &re):
		why := ptStatus[re.Code]
		switch re.Code {
		case 23:
			why = "the device holds as many alarms as it can; delete one first"
		case 0x80a:
			why = "an alarm named " + strconv.Quote(id) + " exists; pick another InstanceID or delete it first"
		}
		return obj, writeError(w, http.StatusBadRequest, "device "+u+" refused the alarm (ReturnValue "+strconv.Itoa(re.Code)+"): "+why)
	case errors.As(err, &fault):
		return obj, writeError(w, http.StatusBadRequest, "device "+u+" refused the alarm: "+truncate(fault.Error(), 300))
	case err != nil:
		return obj, s.deviceError(w, u, err)
	}
	return obj, writeJSON(w, http.StatusOK, map[string]any{"status": "SUCCESS", "ReturnValue": 0})
}

// deleteAlarm is DELETE /api/v1/amt/alarmOccurrences/{guid} with MPS's
// body {"Name": INSTANCEID}. The answer is {"status": "SUCCESS"}; an
// alarm the device does not have is a 404.
func (s *Service) deleteAlarm(w http.ResponseWriter, r *http.Request) (string, int) {
	var req struct {
		Name *string `json:"Name"`
	}
	if err := decodeBody(r, &req); err != nil || req.Name == nil || !alarmNameRE.MatchString(*req.Name) {
		return "amt", writeError(w, http.StatusBadRequest, `want a JSON body {"Name": INSTANCEID} naming the alarm to delete (its InstanceID, 1-32 printable ASCII characters)`)
	}
	c, done, u, obj, st, ok := s.deviceClient(w, r)
	if !ok {
		return obj, st
	}
	defer done()
	err := c.Delete(r.Context(), "IPS_AlarmClockOccurrence", wsman.Selector{Name: "InstanceID", Value: *req.Name})
	var fault *wsman.Fault
	switch {
	case errors.As(err, &fault):
		return obj, writeError(w, http.StatusNotFound, "device "+u+" has no alarm "+strconv.Quote(*req.Name)+" ("+truncate(fault.SubcodeLocal(), 40)+")")
	case err != nil:
		return obj, s.deviceError(w, u, err)
	}
	return obj, writeJSON(w, http.StatusOK, map[string]string{"status": "SUCCESS"})
}

// certItemJSON and keyItemJSON are MPS's CertificateItem and
// PublicPrivateKeyPairItem.
type certItemJSON struct {
	ElementName            string   `json:"elementName"`
	InstanceID             string   `json:"instanceID"`
	X509Certificate        string   `json:"x509Certificate"`
	TrustedRootCertificate bool     `json:"trustedRootCertificate"`
	Issuer                 string   `json:"issuer"`
	Subject                string   `json:"subject"`
	ReadOnlyCertificate    bool     `json:"readOnlyCertificate"`
	PublicKeyHandle        string   `json:"publicKeyHandle,omitempty"`
	AssociatedProfiles     []string `json:"associatedProfiles"`
	DisplayName            string   `json:"displayName"`
}

type keyItemJSON struct {
	ElementName       string `json:"elementName"`
	InstanceID        string `json:"instanceID"`
	DERKey            string `json:"derKey"`
	CertificateHandle string `json:"certificateHandle,omitempty"`
}

type profileJSON struct {
	Type              string        `json:"type"`
	ProfileID         string        `json:"profileID"`
	RootCertificate   *certItemJSON `json:"rootCertificate,omitempty"`
	ClientCertificate *certItemJSON `json:"clientCertificate,omitempty"`
	PublicKey         *keyItemJSON  `json:"publicKey,omitempty"`
}

var cnRE = regexp.MustCompile(`CN=([^,]+)`)

// certificates is GET /api/v1/amt/certificates/{guid}: the device's
// certificate store as MPS's getAMTCertificates shapes it:
// {"certificates": {"keyManagementItems": [], "publicKeyCertificateItems":
// [...]}, "publicKeys": {"publicPrivateKeyPairItems": [...]},
// "profileAssociation": [...]}. A certificate and a key pair are linked
// when the certificate carries that public key (MPS reads
// CIM_ConcreteDependency for it); the TLS profile comes from
// AMT_TLSCredentialContext. 802.1x contexts are not read yet.
func (s *Service) certificates(w http.ResponseWriter, r *http.Request) (string, int) {
	c, done, u, obj, st, ok := s.deviceClient(w, r)
	if !ok {
		return obj, st
	}
	defer done()
	certs, err := c.Enumerate(r.Context(), "AMT_PublicKeyCertificate")
	if err != nil {
		return obj, s.deviceError(w, u, err)
	}
	keys, err := c.Enumerate(r.Context(), "AMT_PublicPrivateKeyPair")
	if err != nil {
		return obj, s.deviceError(w, u, err)
	}
	tls, err := c.Enumerate(r.Context(), "AMT_TLSCredentialContext")
	if err != nil {
		return obj, s.deviceError(w, u, err)
	}
	keyItems := make([]keyItemJSON, 0, len(keys))
	pubs := make([]*rsa.PublicKey, len(keys))
	for i, k := range keys {
		keyItems = append(keyItems, keyItemJSON{ElementName: k.Value("ElementName"), InstanceID: k.Value("InstanceID"), DERKey: k.Value("DERKey")})
		if der, err := base64.StdEncoding.DecodeString(k.Value("DERKey")); err == nil {
			if pub, err := x509.ParsePKCS1PublicKey(der); err == nil {
				pubs[i] = pub
			}
		}
	}
	certItems := make([]certItemJSON, 0, len(certs))
	for _, in := range certs {
		ci := certItemJSON{ElementName: in.Value("ElementName"), InstanceID: in.Value("InstanceID"),
			X509Certificate: in.Value("X509Certificate"), Issuer: in.Value("Issuer"), Subject: in.Value("Subject"),
			TrustedRootCertificate: strings.EqualFold(in.Value("TrustedRootCertficate"), "true"), // AMT's spelling
			ReadOnlyCertificate:    strings.EqualFold(in.Value("ReadOnlyCertificate"), "true"), AssociatedProfiles: []string{}}
		ci.DisplayName = ci.InstanceID
		if m := cnRE.FindStringSubmatch(ci.Subject); m != nil {
			ci.DisplayName = m[1]
		}
		if der, err := base64.StdEncoding.DecodeString(ci.X509Certificate); err == nil && !ci.TrustedRootCertificate {
			if cert, err := x509.ParseCertificate(der); err == nil {
				for i, pub := range pubs {
					if cp, ok := cert.PublicKey.(*rsa.PublicKey); ok && pub != nil && cp.Equal(pub) {
						ci.PublicKeyHandle = keyItems[i].InstanceID
						keyItems[i].CertificateHandle = ci.InstanceID
					}
				}
			}
		}
		certItems = append(certItems, ci)
	}
	profiles := []profileJSON{}
	for _, ctx := range tls {
		handle := ctx.EPR("ElementInContext").Selector("InstanceID")
		i := slices.IndexFunc(certItems, func(ci certItemJSON) bool { return ci.InstanceID == handle })
		if handle == "" || i < 0 {
			continue
		}
		certItems[i].AssociatedProfiles = append(certItems[i].AssociatedProfiles, "TLS")
		p := profileJSON{Type: "TLS", ProfileID: ctx.EPR("ElementProvidingContext").Selector("ElementName")}
		cert := certItems[i]
		if cert.TrustedRootCertificate {
			p.RootCertificate = &cert
		} else {
			p.ClientCertificate = &cert
			if k := slices.IndexFunc(keyItems, func(k keyItemJSON) bool { return k.InstanceID == cert.PublicKeyHandle }); k >= 0 {
				key := keyItems[k]
				p.PublicKey = &key
			}
		}
		profiles = append(profiles, p)
	}
	type certsJSON struct {
		KeyManagementItems        []any          `json:"keyManagementItems"`
		PublicKeyCertificateItems []certItemJSON `json:"publicKeyCertificateItems"`
	}
	type keysJSON struct {
		PublicPrivateKeyPairItems []keyItemJSON `json:"publicPrivateKeyPairItems"`
	}
	return obj, writeJSON(w, http.StatusOK, struct {
		Certificates       certsJSON     `json:"certificates"`
		PublicKeys         keysJSON      `json:"publicKeys"`
		ProfileAssociation []profileJSON `json:"profileAssociation"`
	}{certsJSON{[]any{}, certItems}, keysJSON{keyItems}, profiles})
}

// maxCertBytes bounds a certificate sent to the API; AMT's store takes
// certificates of a few KiB.
const maxCertBytes = 64 << 10

// parseCertInput reads MPS's "cert": base64 of a DER certificate, or
// base64 of a PEM one.
func parseCertInput(b64 string) (*x509.Certificate, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		return nil, errors.New("cert is not base64")
	}
	if blk, _ := pem.Decode(raw); blk != nil && blk.Type == "CERTIFICATE" {
		raw = blk.Bytes
	}
	cert, err := x509.ParseCertificate(raw)
	if err != nil {
		return nil, errors.New("cert is neither a DER nor a PEM X.509 certificate")
	}
	return cert, nil
}

// addCertificate is POST /api/v1/amt/certificates/{guid} with MPS's body
// {"cert": BASE64, "isTrusted": true|false}: a trusted root goes in with
// AddTrustedRootCertificate, any other certificate with AddCertificate
// (the device must hold its private key). The answer is MPS's
// {"handle": INSTANCEID}.
func (s *Service) addCertificate(w http.ResponseWriter, r *http.Request) (string, int) {
	const want = `want a JSON body {"cert": BASE64, "isTrusted": true|false} with cert a DER or PEM certificate in base64`
	var req struct {
		Cert      *string `json:"cert"`
		IsTrusted *bool   `json:"isTrusted"`
	}
	if err := decodeBody(r, &req); err != nil || req.Cert == nil || req.IsTrusted == nil {
		return "amt", writeError(w, http.StatusBadRequest, want)
	}
	if len(*req.Cert) > maxCertBytes {
		return "amt", writeError(w, http.StatusBadRequest, "cert is over "+strconv.Itoa(maxCertBytes)+" bytes of base64; AMT stores certificates of a few KiB")
	}
	cert, err := parseCertInput(*req.Cert)
	if err != nil {
		return "amt", writeError(w, http.StatusBadRequest, err.Error()+"; "+want)
	}
	if time.Now().After(cert.NotAfter) {
		return "amt", writeError(w, http.StatusBadRequest, "the certificate expired on "+cert.NotAfter.UTC().Format(time.RFC3339)+"; send one that is still valid")
	}
	c, done, u, obj, st, ok := s.deviceClient(w, r)
	if !ok {
		return obj, st
	}
	defer done()
	method := "AddCertificate"
	if *req.IsTrusted {
		method = "AddTrustedRootCertificate"
	}
	var out wsman.Instance
	in := wsman.AddCertificateInput{CertificateBlob: base64.StdEncoding.EncodeToString(cert.Raw)}
	err = c.Invoke(r.Context(), "AMT_PublicKeyManagementService", method, in.Params(), &out)
	var re *wsman.ReturnError
	var fault *wsman.Fault
	switch {
	case errors.As(err, &re):
		why := ptStatus[re.Code]
		switch re.Code {
		case 0x80a:
			why = "the device holds this certificate already"
		case 36:
			why = "the device refused it; a certificate that is not a trusted root needs its key pair on the device (AMT_PublicPrivateKeyPair)"
		case 23:
			why = "the device's certificate store is full; delete one first"
		}
		return obj, writeError(w, http.StatusBadRequest, "device "+u+" refused the certificate (ReturnValue "+strconv.Itoa(re.Code)+"): "+why)
	case errors.As(err, &fault):
		return obj, writeError(w, http.StatusBadRequest, "device "+u+" refused the certificate: "+truncate(fault.Error(), 300))
	case err != nil:
		return obj, s.deviceError(w, u, err)
	}
	handle := out.EPR("CreatedCertificate").Selector("InstanceID")
	if handle == "" {
		return obj, s.deviceError(w, u, errors.New("AMT_PublicKeyManagementService."+method+" named no CreatedCertificate"))
	}
	return obj, writeJSON(w, http.StatusOK, map[string]string{"handle": handle})
}

// deleteCertificate is DELETE /api/v1/amt/certificates/{guid}/{instanceId}:
// as MPS, a certificate found by InstanceID (or an ElementName only it
// has) is deleted
// unless it is read only (400) or the TLS profile uses it (409). The
// answer is MPS's {"message": ..., "handle": ...}.
func (s *Service) deleteCertificate(w http.ResponseWriter, r *http.Request) (string, int) {
	handle := r.PathValue("instanceId")
	if handle == "" || len(handle) > 256 || strings.ContainsFunc(handle, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
		return "amt", writeError(w, http.StatusBadRequest, "name the certificate in the path: /api/v1/amt/certificates/{guid}/{instanceId}, its InstanceID (URL-encoded)")
	}
	c, done, u, obj, st, ok := s.deviceClient(w, r)
	if !ok {
		return obj, st
	}
	defer done()
	certs, err := c.Enumerate(r.Context(), "AMT_PublicKeyCertificate")
	if err != nil {
		return obj, s.deviceError(w, u, err)
	}
	// By InstanceID; by ElementName only when one certificate has it (AMT
	// names them all "Intel(r) AMT Certificate", and MPS would delete the
	// first).
	i := slices.IndexFunc(certs, func(in wsman.Instance) bool { return in.Value("InstanceID") == handle })
	if i < 0 {
		for j := range certs {
			if certs[j].Value("ElementName") == handle {
				if i >= 0 {
					return obj, writeError(w, http.StatusBadRequest, "more than one certificate is named "+strconv.Quote(handle)+"; name it by its InstanceID")
				}
				i = j
			}
		}
	}
	if i < 0 {
		return obj, writeError(w, http.StatusNotFound, "device "+u+" has no certificate "+strconv.Quote(handle))
	}
	id := certs[i].Value("InstanceID")
	if strings.EqualFold(certs[i].Value("ReadOnlyCertificate"), "true") {
		return obj, writeError(w, http.StatusBadRequest, "certificate "+strconv.Quote(id)+" is read only on the device and cannot be removed")
	}
	tls, err := c.Enumerate(r.Context(), "AMT_TLSCredentialContext")
	if err != nil {
		return obj, s.deviceError(w, u, err)
	}
	for _, ctx := range tls {
		if ctx.EPR("ElementInContext").Selector("InstanceID") == id {
			return obj, writeError(w, http.StatusConflict, "certificate "+strconv.Quote(id)+" is the device's TLS certificate (TLS - "+
				ctx.EPR("ElementProvidingContext").Selector("ElementName")+"); give TLS another certificate before deleting it")
		}
	}
	if err := c.Delete(r.Context(), "AMT_PublicKeyCertificate", wsman.Selector{Name: "InstanceID", Value: id}); err != nil {
		return obj, s.deviceError(w, u, err)
	}
	return obj, writeJSON(w, http.StatusOK, map[string]string{"message": "Certificate deleted successfully", "handle": id})
}
