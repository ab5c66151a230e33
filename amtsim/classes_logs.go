package amtsim

import (
	"encoding/base64"
	"regexp"
	"slices"
	"strconv"
	"time"

	"amtd/amt/auditlog"
	"amtd/amt/eventlog"
	"amtd/amt/wsman"
)

// DeviceLogs is what the firmware keeps in flash for the console's log and
// alarm classes: the security audit log (AMT_AuditLog), the platform event
// log (AMT_MessageLog) and the alarm clock (IPS_AlarmClockOccurrence).
// Records are kept in their wire form, oldest first.
type DeviceLogs struct {
	Audit  [][]byte `json:"audit,omitempty"`
	Events [][]byte `json:"events,omitempty"`
	Alarms []Alarm  `json:"alarms,omitempty"`
}

// Alarm is one IPS_AlarmClockOccurrence: the host is powered on at
// StartTime and then every Interval, if any.
type Alarm struct {
	InstanceID         string `json:"instanceID"`
	ElementName        string `json:"elementName"`
	StartTime          string `json:"startTime"` // RFC 3339, UTC
	Interval           string `json:"interval,omitempty"`
	DeleteOnCompletion bool   `json:"deleteOnCompletion"`
}

const (
	// The logs wrap when full (AMT_AuditLog OverwritePolicy 2 in the
	// fixture); amtsim keeps fewer records than firmware's flash holds.
	maxAuditRecords = 256
	maxEventRecords = 256
	// auditReadChunk: ReadRecords returns at most 10 records a call,
	// which is why MPS pages with startIndex.
	auditReadChunk = 10
	// eventReadMax caps GetRecords' MaxReadRecords (MPS and
	// go-wsman-messages ask for 390).
	eventReadMax = 390
	// maxAlarms: AMT keeps five alarm clock occurrences; one more is
	// refused.
	maxAlarms = 5
)

// AppendAuditRecord adds a raw record to the audit log, as firmware does
// when something audited happens; tests use it to plant records.
func (d *Device) AppendAuditRecord(rec []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.appendAuditLocked(rec)
	d.commitLocked()
}

// AppendEventRecord adds a raw record to the platform event log.
func (d *Device) AppendEventRecord(rec []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.appendEventLocked(rec)
	d.commitLocked()
}

// AuditRecords returns a copy of the audit log, oldest first.
func (d *Device) AuditRecords() [][]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.s.Logs.Audit)
}

// EventRecords returns a copy of the platform event log, oldest first.
func (d *Device) EventRecords() [][]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.s.Logs.Events)
}

// Alarms returns the alarm clock occurrences.
func (d *Device) Alarms() []Alarm {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.s.Logs.Alarms)
}

func (d *Device) appendAuditLocked(rec []byte) {
	if len(d.s.Logs.Audit) >= maxAuditRecords {
		d.s.Logs.Audit = slices.Delete(d.s.Logs.Audit, 0, 1)
	}
	d.s.Logs.Audit = append(d.s.Logs.Audit, slices.Clone(rec))
}

func (d *Device) appendEventLocked(rec []byte) {
	if len(d.s.Logs.Events) >= maxEventRecords {
		d.s.Logs.Events = slices.Delete(d.s.Logs.Events, 0, 1)
	}
	d.s.Logs.Events = append(d.s.Logs.Events, slices.Clone(rec))
}

// logAudit logs an action a session performed: the digest user remotely, or
// "Local" on the host side.
func (d *Device) logAudit(sess Session, app, event uint16, ex ...byte) {
	r := auditlog.Record{AppID: app, EventID: event, InitiatorType: auditlog.InitiatorDigest, User: sess.User, Ex: ex}
	if sess.Local || sess.User == "" {
		r.InitiatorType, r.User = auditlog.InitiatorLocal, ""
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	r.Time = uint32(d.now().Unix() + d.s.ClockOffset)
	if rec, err := r.Encode(); err == nil {
		d.appendAuditLocked(rec)
		d.commitLocked()
	}
}

// Audit applications and events amtsim logs (spec: Intel AMT SDK
// "Security Audit Log events"; names in amt/auditlog).
const (
	appRemoteControl = 17 // power: 0 up, 1 down, 2 cycle, 3 reset, 5-9 graceful and OS actions
	appRedirection   = 18 // 2/3 IDER, 6/7 SOL, 10/11 KVM enabled/disabled
	appNetworkTime   = 21 // 0 time set
	appUserOptIn     = 30 // 1 consent code sent
)

// powerAuditEvent maps a DMTF power action to the remote control event it
// logs.
var powerAuditEvent = map[int]uint16{2: 0, 8: 1, 6: 1, 5: 2, 10: 3, 12: 5, 13: 5, 14: 6, 15: 2, 16: 2, 4: 7, 3: 7, 7: 8, 11: 9}

// Platform event records amtsim logs when the host powers up: the BIOS's
// progress through memory, PCI and the OS hand-off (IPMI sensor type 15
// system firmware progress, offset 2, entity 34 BIOS), as the event log
// fixture shows them.
var bootProgress = []uint8{1, 7, 19}

func (d *Device) logBoot() {
	d.mu.Lock()
	defer d.mu.Unlock()
	ts := uint32(d.now().Unix() + d.s.ClockOffset)
	for _, code := range bootProgress {
		r := eventlog.Record{TimeStamp: ts, DeviceAddress: 0xff, EventSensorType: 15, EventType: 0x6f, EventOffset: 2,
			EventSourceType: 0x68, EventSeverity: 1, SensorNumber: 0xff, Entity: 34, EventData: [8]byte{0x40, code}}
		d.appendEventLocked(r.Encode())
	}
	d.commitLocked()
}

// redirectionFeatures reports whether IDER, SOL and KVM are enabled
// (AMT_RedirectionService 32768 + bit 0 IDER, bit 1 SOL; KVM EnabledState 2).
func (d *Device) redirectionFeatures() [3]bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.s.RedirectionState
	return [3]bool{r >= 32768 && r&1 != 0, r >= 32768 && r&2 != 0, d.s.KVMState == 2}
}

// methodReturnCode reads the ReturnValue a method wrote.
func methodReturnCode(out []wsman.Property) int {
	for _, p := range out {
		if p.Name == "ReturnValue" {
			return atoi(p.Value)
		}
	}
	return -1
}

// addLogClasses adds the audit and event log, user consent and alarm clock
// classes the console API uses to the class table, and has the power and
// consent methods already in the table write the records real firmware
// writes for them.
func addLogClasses(t map[string]*classHandler) {
	t["AMT_AuditLog"] = &classHandler{instances: auditLogInstance, methods: map[string]method{"ReadRecords": readAuditRecords}}
	t["AMT_MessageLog"] = &classHandler{instances: messageLogInstance, methods: map[string]method{
		"PositionToFirstRecord": func(d *Device, _ *wsman.Instance, _ Session) []wsman.Property {
			const class = "AMT_MessageLog"
			return []wsman.Property{prop(class, "IterationIdentifier", "1"), rv(class, ptSuccess)}
		},
		"GetRecords": getEventRecords,
	}}
	t["AMT_AlarmClockService"] = &classHandler{methods: map[string]method{"AddAlarm": addAlarm}}
	t["IPS_AlarmClockOccurrence"] = &classHandler{instances: alarmOccurrences, delete: deleteAlarm}

	if h := t["CIM_PowerManagementService"]; h != nil && h.methods["RequestPowerStateChange"] != nil {
		change := h.methods["RequestPowerStateChange"]
		h.methods["RequestPowerStateChange"] = func(d *Device, in *wsman.Instance, sess Session) []wsman.Property {
			before := d.PowerState()
			out := change(d, in, sess)
			if methodReturnCode(out) != cimCompleted {
				return out
			}
			state := atoi(in.Value("PowerState"))
			if ev, ok := powerAuditEvent[state]; ok {
				d.logAudit(sess, appRemoteControl, ev)
			}
			if d.PowerState() == 2 && (before != 2 || state == 5 || state == 10 || state == 14) {
				d.logBoot()
			}
			return out
		}
	}
	// Redirection features switched on or off: Redirection Manager events
	// (IDER 2/3, SOL 6/7, KVM 10/11 enabled/disabled).
	for _, class := range []string{"AMT_RedirectionService", "CIM_KVMRedirectionSAP"} {
		h := t[class]
		if h == nil || h.methods["RequestStateChange"] == nil {
			continue
		}
		change := h.methods["RequestStateChange"]
		h.methods["RequestStateChange"] = func(d *Device, in *wsman.Instance, sess Session) []wsman.Property {
			before := d.redirectionFeatures()
			out := change(d, in, sess)
			if methodReturnCode(out) != cimCompleted {
				return out
			}
			after := d.redirectionFeatures()
			for i, ev := range [][2]uint16{{2, 3}, {6, 7}, {10, 11}} { // IDER, SOL, KVM
				switch {
				case after[i] && !before[i]:
					d.logAudit(sess, appRedirection, ev[0])
				case !after[i] && before[i]:
					d.logAudit(sess, appRedirection, ev[1])
				}
			}
			return out
		}
	}
	// Setting the clock: Network Time event 0 with the new time
	// (big-endian seconds), which MPS shows as ExStr.
	if h := t["AMT_TimeSynchronizationService"]; h != nil && h.methods["SetHighAccuracyTimeSynch"] != nil {
		set := h.methods["SetHighAccuracyTimeSynch"]
		h.methods["SetHighAccuracyTimeSynch"] = func(d *Device, in *wsman.Instance, sess Session) []wsman.Property {
			out := set(d, in, sess)
			if methodReturnCode(out) == ptSuccess {
				now := uint32(d.Time())
				d.logAudit(sess, appNetworkTime, 0, byte(now>>24), byte(now>>16), byte(now>>8), byte(now))
			}
			return out
		}
	}
	if h := t["IPS_OptInService"]; h != nil && h.methods["SendOptInCode"] != nil {
		send := h.methods["SendOptInCode"]
		h.methods["SendOptInCode"] = func(d *Device, in *wsman.Instance, sess Session) []wsman.Property {
			out := send(d, in, sess)
			if methodReturnCode(out) == ptSuccess {
				d.logAudit(sess, appUserOptIn, 1, 0) // extended data 0: success
			}
			return out
		}
	}
}

func auditLogInstance(d *Device) []wsman.Instance {
	ts, _ := loadTemplates()
	in := ts.template("AMT_AuditLog")
	d.mu.Lock()
	defer d.mu.Unlock()
	setProp(&in, "CurrentNumberOfRecords", strconv.Itoa(len(d.s.Logs.Audit)))
	setProp(&in, "PercentageFree", strconv.Itoa(100-100*len(d.s.Logs.Audit)/maxAuditRecords))
	return []wsman.Instance{in}
}

func messageLogInstance(d *Device) []wsman.Instance {
	ts, _ := loadTemplates()
	in := ts.template("AMT_MessageLog")
	d.mu.Lock()
	defer d.mu.Unlock()
	setProp(&in, "CurrentNumberOfRecords", strconv.Itoa(len(d.s.Logs.Events)))
	return []wsman.Instance{in}
}

// readAuditRecords is AMT_AuditLog.ReadRecords(StartIndex): up to ten
// records from StartIndex (1-based), oldest first, and the total.
func readAuditRecords(d *Device, in *wsman.Instance, _ Session) []wsman.Property {
	const class = "AMT_AuditLog"
	start := atoi(in.Value("StartIndex"))
	if start < 1 {
		return []wsman.Property{rv(class, ptInvalidParam)}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	recs := d.s.Logs.Audit
	var page [][]byte
	if start <= len(recs) {
		page = recs[start-1 : min(start-1+auditReadChunk, len(recs))]
	}
	out := []wsman.Property{prop(class, "TotalRecordCount", strconv.Itoa(len(recs))),
		prop(class, "RecordsReturned", strconv.Itoa(len(page)))}
	for _, r := range page {
		out = append(out, prop(class, "EventRecords", base64.StdEncoding.EncodeToString(r)))
	}
	return append(out, rv(class, ptSuccess))
}

// getEventRecords is AMT_MessageLog.GetRecords(IterationIdentifier,
// MaxReadRecords): records newest first, as firmware returns them, from
// the 1-based position the identifier names; the next identifier and
// NoMoreRecords tell the caller whether to go on.
func getEventRecords(d *Device, in *wsman.Instance, _ Session) []wsman.Property {
	const class = "AMT_MessageLog"
	pos, max := atoi(in.Value("IterationIdentifier")), atoi(in.Value("MaxReadRecords"))
	if max <= 0 || max > eventReadMax {
		max = eventReadMax
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	recs := d.s.Logs.Events
	if pos < 1 || pos > len(recs)+1 {
		return []wsman.Property{rv(class, ptInvalidParam)}
	}
	n := min(max, len(recs)-(pos-1))
	out := []wsman.Property{prop(class, "IterationIdentifier", strconv.Itoa(pos+n)),
		prop(class, "NoMoreRecords", boolStr(pos-1+n >= len(recs)))}
	for i := range n {
		out = append(out, prop(class, "RecordArray", base64.StdEncoding.EncodeToString(recs[len(recs)-pos-i])))
	}
	return append(out, rv(class, ptSuccess))
}

// alarmDurationRE is the xs:duration subset AMT takes for an alarm interval
// (days, hours, minutes, seconds).
var alarmDurationRE = regexp.MustCompile(`^P(\d{1,5}D)?(T(\d{1,5}H)?(\d{1,5}M)?(\d{1,5}S)?)?$`)

// nestedField finds a nested element of a method parameter.
func nestedField(p *wsman.Property, name string) (*wsman.Property, bool) {
	for i := range p.Fields {
		if p.Fields[i].Name == name {
			return &p.Fields[i], true
		}
	}
	return nil, false
}

// leafOrNested reads a value written either as text or as one nested
// element (<StartTime><Datetime>…</Datetime></StartTime>).
func leafOrNested(p *wsman.Property, name, inner string) string {
	f, ok := nestedField(p, name)
	if !ok {
		return ""
	}
	if g, ok := nestedField(f, inner); ok {
		return g.Value
	}
	return f.Value
}

// addAlarm is AMT_AlarmClockService.AddAlarm(AlarmTemplate): the template
// is an IPS_AlarmClockOccurrence with its StartTime a CIM datetime and its
// Interval a CIM interval.
func addAlarm(d *Device, in *wsman.Instance, _ Session) []wsman.Property {
	const class = "AMT_AlarmClockService"
	var tpl *wsman.Property
	for i := range in.Props {
		if in.Props[i].Name == "AlarmTemplate" {
			tpl = &in.Props[i]
		}
	}
	if tpl == nil {
		return []wsman.Property{rv(class, ptInvalidParam)}
	}
	a := Alarm{InstanceID: leafOrNested(tpl, "InstanceID", ""), ElementName: leafOrNested(tpl, "ElementName", ""),
		Interval: leafOrNested(tpl, "Interval", "Interval"), DeleteOnCompletion: leafOrNested(tpl, "DeleteOnCompletion", "") != "false"}
	if a.InstanceID == "" {
		a.InstanceID = a.ElementName
	}
	start, err := time.Parse(time.RFC3339, leafOrNested(tpl, "StartTime", "Datetime"))
	if err != nil || a.ElementName == "" || len(a.ElementName) > 32 || len(a.InstanceID) > 32 ||
		(a.Interval != "" && (!alarmDurationRE.MatchString(a.Interval) || a.Interval == "P" || a.Interval[len(a.Interval)-1] == 'T')) {
		return []wsman.Property{rv(class, ptInvalidParam)}
	}
	a.StartTime = start.UTC().Format(time.RFC3339)
	if a.Interval == "P0D" || a.Interval == "PT0M" {
		a.Interval = ""
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if slices.ContainsFunc(d.s.Logs.Alarms, func(x Alarm) bool { return x.InstanceID == a.InstanceID }) {
		return []wsman.Property{rv(class, ptDuplicate)}
	}
	if len(d.s.Logs.Alarms) >= maxAlarms {
		return []wsman.Property{rv(class, ptMaxLimit)}
	}
	d.s.Logs.Alarms = append(d.s.Logs.Alarms, a)
	d.commitLocked()
	return []wsman.Property{eprProp(class, "AlarmClock", instanceEPR("IPS_AlarmClockOccurrence",
		wsman.Selector{Name: "InstanceID", Value: a.InstanceID})), rv(class, ptSuccess)}
}

func alarmOccurrences(d *Device) []wsman.Instance {
	const class = "IPS_AlarmClockOccurrence"
	ts, _ := loadTemplates()
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []wsman.Instance
	for _, a := range d.s.Logs.Alarms {
		in := ts.template(class)
		setProp(&in, "ElementName", a.ElementName)
		setProp(&in, "InstanceID", a.InstanceID)
		setNested(&in, "StartTime", "Datetime", a.StartTime)
		if a.Interval == "" {
			dropProp(&in, "Interval")
		} else {
			setNested(&in, "Interval", "Interval", a.Interval)
		}
		setProp(&in, "DeleteOnCompletion", boolStr(a.DeleteOnCompletion))
		out = append(out, in)
	}
	return out
}

// setNested writes a CIM datetime or interval: the property holds one
// element of that name in the CIM common namespace.
func setNested(in *wsman.Instance, name, inner, value string) {
	p := wsman.Property{Name: name, Namespace: in.Namespace, Fields: []wsman.Property{{Name: inner, Namespace: wsman.NSCIMCommon, Value: value}}}
	for i := range in.Props {
		if in.Props[i].Name == name {
			in.Props[i] = p
			return
		}
	}
	in.Props = append(in.Props, p)
}

func deleteAlarm(d *Device, sel []wsman.Selector) *wsman.Fault {
	id := selValue(sel, "InstanceID")
	d.mu.Lock()
	defer d.mu.Unlock()
	i := slices.IndexFunc(d.s.Logs.Alarms, func(a Alarm) bool { return a.InstanceID == id })
	if i < 0 {
		return faultInvalidSelectors("IPS_AlarmClockOccurrence")
	}
	d.s.Logs.Alarms = slices.Delete(d.s.Logs.Alarms, i, i+1)
	d.commitLocked()
	return nil
}
