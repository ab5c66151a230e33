package amtsim

import (
	"encoding/base64"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"amtd/amt/auditlog"
	"amtd/amt/eventlog"
	"amtd/amt/wsman"
	"amtd/secret"
)

// logsClient is a WS-Man client as admin to a CCM-activated device.
func logsClient(t *testing.T) (*Device, *wsman.Client) {
	t.Helper()
	d := newTestDevice(t, Config{})
	if code := d.Setup(2, ha1("admin", d.Realm(), "P@ssw0rd1")); code != 0 {
		t.Fatal(code)
	}
	l := listen(t, d)
	return d, wsman.NewClient(plainDialer(l.Plain), wsman.Credentials{Host: d.UUID.String() + ":16992", Username: "admin",
		Password: secret.FromString("P@ssw0rd1")})
}

// TestAuditLogRecordsActions: a power action over WS-Man leaves a
// "Performed Power Down" record by the digest user, and ReadRecords pages
// the log ten records at a time from a 1-based index.
func TestAuditLogRecordsActions(t *testing.T) {
	d, c := logsClient(t)
	ctx := ctxT(t)
	in := wsman.RequestPowerStateChangeInput{PowerState: 8, ManagedElement: wsman.ManagedSystem()}
	if err := c.Invoke(ctx, "CIM_PowerManagementService", "RequestPowerStateChange", in.Params(), nil); err != nil {
		t.Fatal(err)
	}
	var out wsman.ReadRecordsOutput
	if err := c.Invoke(ctx, "AMT_AuditLog", "ReadRecords", wsman.ReadRecordsInput{StartIndex: 1}.Params(), &out); err != nil {
		t.Fatal(err)
	}
	if out.TotalRecordCount != 1 || out.RecordsReturned != 1 || len(out.EventRecords) != 1 {
		t.Fatalf("ReadRecords: %+v", out)
	}
	b, _ := base64.StdEncoding.DecodeString(out.EventRecords[0])
	r, err := auditlog.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if r.Event() != "Performed Power Down" || r.Initiator() != "admin" || time.Since(r.Timestamp()).Abs() > time.Hour {
		t.Fatalf("record: %s by %q at %v", r.Event(), r.Initiator(), r.Timestamp())
	}
	// Power back on: an audit record and the BIOS's boot progress.
	in.PowerState = 2
	if err := c.Invoke(ctx, "CIM_PowerManagementService", "RequestPowerStateChange", in.Params(), nil); err != nil {
		t.Fatal(err)
	}
	if n := len(d.EventRecords()); n != len(bootProgress) {
		t.Fatalf("%d event records after power up, want %d", n, len(bootProgress))
	}
	// 23 records: pages of 10, 10 and 3; past the end, none.
	for i := range 21 {
		rec, _ := auditlog.Record{AppID: 16, EventID: 2, InitiatorType: auditlog.InitiatorLocal, Time: uint32(i)}.Encode()
		d.AppendAuditRecord(rec)
	}
	for _, c2 := range []struct{ start, n int }{{1, 10}, {11, 10}, {21, 3}, {24, 0}} {
		var out wsman.ReadRecordsOutput
		if err := c.Invoke(ctx, "AMT_AuditLog", "ReadRecords", wsman.ReadRecordsInput{StartIndex: c2.start}.Params(), &out); err != nil {
			t.Fatal(err)
		}
		if out.TotalRecordCount != 23 || int(out.RecordsReturned) != c2.n || len(out.EventRecords) != c2.n {
			t.Fatalf("from %d: total %d returned %d (%d records), want 23 %d", c2.start, out.TotalRecordCount, out.RecordsReturned, len(out.EventRecords), c2.n)
		}
	}
	err = c.Invoke(ctx, "AMT_AuditLog", "ReadRecords", wsman.ReadRecordsInput{StartIndex: 0}.Params(), nil)
	if code := returnCode(t, err); code != ptInvalidParam {
		t.Fatalf("StartIndex 0: %d", code)
	}
}

// TestAuditLogRedirection: switching SOL on and KVM off over WS-Man logs
// "SoL Enabled" and "KVM Disabled"; asking for the state it is in logs
// nothing.
func TestAuditLogRedirection(t *testing.T) {
	d, c := logsClient(t)
	ctx := ctxT(t)
	if err := c.RequestStateChange(ctx, "AMT_RedirectionService", 32768); err != nil {
		t.Fatal(err)
	}
	if err := c.RequestStateChange(ctx, "CIM_KVMRedirectionSAP", 2); err != nil {
		t.Fatal(err)
	}
	n := len(d.AuditRecords())
	if err := c.RequestStateChange(ctx, "AMT_RedirectionService", 32770); err != nil {
		t.Fatal(err)
	}
	if err := c.RequestStateChange(ctx, "CIM_KVMRedirectionSAP", 3); err != nil {
		t.Fatal(err)
	}
	if err := c.RequestStateChange(ctx, "CIM_KVMRedirectionSAP", 3); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range d.AuditRecords()[n:] {
		r, err := auditlog.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.Event()+" by "+r.Initiator())
	}
	if strings.Join(got, ", ") != "SoL Enabled by admin, KVM Disabled by admin" {
		t.Fatalf("records %q", got)
	}
}

// TestMessageLogNewestFirst: GetRecords walks the event log newest first
// from PositionToFirstRecord's identifier, MaxReadRecords at a time.
func TestMessageLogNewestFirst(t *testing.T) {
	d, c := logsClient(t)
	ctx := ctxT(t)
	for i := range 5 {
		d.AppendEventRecord(eventlog.Record{TimeStamp: uint32(1700000000 + i), EventSensorType: 15}.Encode())
	}
	var pos wsman.PositionToFirstRecordOutput
	if err := c.Invoke(ctx, "AMT_MessageLog", "PositionToFirstRecord", nil, &pos); err != nil {
		t.Fatal(err)
	}
	var got []uint32
	id := int(pos.IterationIdentifier)
	for range 10 {
		var out wsman.GetRecordsOutput
		if err := c.Invoke(ctx, "AMT_MessageLog", "GetRecords", wsman.GetRecordsInput{IterationIdentifier: id, MaxReadRecords: 2}.Params(), &out); err != nil {
			t.Fatal(err)
		}
		for _, s := range out.RecordArray {
			b, _ := base64.StdEncoding.DecodeString(s)
			r, err := eventlog.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, r.TimeStamp-1700000000)
		}
		id = int(out.IterationIdentifier)
		if out.NoMoreRecords {
			break
		}
	}
	if len(got) != 5 || got[0] != 4 || got[4] != 0 {
		t.Fatalf("records %v, want 4 3 2 1 0", got)
	}
}

// TestAlarmClock: AddAlarm keeps an occurrence (CIM datetime and
// interval), Enumerate lists it, a duplicate and a sixth are refused,
// Delete by InstanceID removes it.
func TestAlarmClock(t *testing.T) {
	d, c := logsClient(t)
	ctx := ctxT(t)
	add := func(name, start, interval string) error {
		uri, _ := wsman.ResourceURI("IPS_AlarmClockOccurrence")
		tpl := wsman.Property{Name: "AlarmTemplate", Fields: []wsman.Property{
			{Name: "InstanceID", Namespace: uri, Value: name}, {Name: "ElementName", Namespace: uri, Value: name},
			{Name: "StartTime", Namespace: uri, Fields: []wsman.Property{{Name: "Datetime", Namespace: wsman.NSCIMCommon, Value: start}}},
			{Name: "Interval", Namespace: uri, Fields: []wsman.Property{{Name: "Interval", Namespace: wsman.NSCIMCommon, Value: interval}}},
			{Name: "DeleteOnCompletion", Namespace: uri, Value: "false"}}}
		return c.Invoke(ctx, "AMT_AlarmClockService", "AddAlarm", []wsman.Property{tpl}, nil)
	}
	if err := add("wake", "2030-01-02T03:04:00Z", "P1DT2H"); err != nil {
		t.Fatal(err)
	}
	items, err := c.Enumerate(ctx, "IPS_AlarmClockOccurrence")
	if err != nil || len(items) != 1 {
		t.Fatalf("enumerate: %v %v", items, err)
	}
	if items[0].Value("InstanceID") != "wake" || items[0].Value("DeleteOnCompletion") != "false" {
		t.Fatalf("alarm %+v", items[0])
	}
	var dt, iv string
	for _, p := range items[0].Props {
		for _, f := range p.Fields {
			if p.Name == "StartTime" && f.Name == "Datetime" {
				dt = f.Value
			}
			if p.Name == "Interval" && f.Name == "Interval" {
				iv = f.Value
			}
		}
	}
	if dt != "2030-01-02T03:04:00Z" || iv != "P1DT2H" {
		t.Fatalf("StartTime %q Interval %q", dt, iv)
	}
	if code := returnCode(t, add("wake", "2030-01-02T03:04:00Z", "P1D")); code != ptDuplicate {
		t.Fatalf("duplicate: %d", code)
	}
	for _, bad := range [][2]string{{"not a time", "P1D"}, {"2030-01-02T03:04:00Z", "1 day"}, {"2030-01-02T03:04:00Z", "PT"}} {
		if code := returnCode(t, add("bad", bad[0], bad[1])); code != ptInvalidParam {
			t.Fatalf("%v: %d", bad, code)
		}
	}
	for i := range 4 {
		if err := add("a"+string(rune('0'+i)), "2030-01-02T03:04:00Z", "P1D"); err != nil {
			t.Fatal(err)
		}
	}
	if code := returnCode(t, add("sixth", "2030-01-02T03:04:00Z", "P1D")); code != ptMaxLimit {
		t.Fatalf("sixth alarm: %d", code)
	}
	if err := c.Delete(ctx, "IPS_AlarmClockOccurrence", wsman.Selector{Name: "InstanceID", Value: "wake"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, "IPS_AlarmClockOccurrence", wsman.Selector{Name: "InstanceID", Value: "wake"}); err == nil {
		t.Fatal("deleting a missing alarm succeeded")
	}
	if n := len(d.Alarms()); n != 4 {
		t.Fatalf("%d alarms left, want 4", n)
	}
}

// TestLogMethodShapes: ReadRecords, PositionToFirstRecord and GetRecords
// answer in the shape of the method fixtures (testdata/methods).
func TestLogMethodShapes(t *testing.T) {
	d := newTestDevice(t, Config{})
	for i := range 2 {
		rec, _ := auditlog.Record{AppID: 19, InitiatorType: auditlog.InitiatorLocal, Time: uint32(i)}.Encode()
		d.AppendAuditRecord(rec)
		d.AppendEventRecord(eventlog.Record{TimeStamp: 1700000000}.Encode())
	}
	var b wsman.Builder
	for _, c := range []struct {
		file, class, method string
		params              []wsman.Property
	}{
		{"amt_auditlog_readrecords.xml", "AMT_AuditLog", "ReadRecords", wsman.ReadRecordsInput{StartIndex: 1}.Params()},
		{"amt_messagelog_positiontofirstrecord.xml", "AMT_MessageLog", "PositionToFirstRecord", nil},
		{"amt_messagelog_getrecords.xml", "AMT_MessageLog", "GetRecords", wsman.GetRecordsInput{IterationIdentifier: 1, MaxReadRecords: 390}.Params()},
	} {
		fx, err := os.ReadFile("testdata/methods/" + c.file)
		if err != nil {
			t.Fatal(err)
		}
		req, err := b.Invoke(c.class, c.method, c.params)
		if err != nil {
			t.Fatal(err)
		}
		status, body := d.Dispatch(req.Body, Session{User: "admin"})
		if status != 200 {
			t.Fatalf("%s: HTTP %d %s", c.method, status, body)
		}
		want, got := shapeOf(t, fx), shapeOf(t, body)
		if strings.Join(want.body, " ") != strings.Join(got.body, " ") || strings.Join(want.header, " ") != strings.Join(got.header, " ") {
			t.Errorf("%s:\n got %v %v\nwant %v %v", c.method, got.header, got.body, want.header, want.body)
		}
	}
}

// TestAuditLogTimeSet: setting the clock over WS-Man logs "Intel(R) ME
// Time Set" with the new time as its extended data.
func TestAuditLogTimeSet(t *testing.T) {
	d, c := logsClient(t)
	ctx := ctxT(t)
	var low wsman.Instance
	if err := c.Invoke(ctx, "AMT_TimeSynchronizationService", "GetLowAccuracyTimeSynch", nil, &low); err != nil {
		t.Fatal(err)
	}
	ta0, _ := strconv.ParseInt(low.Value("Ta0"), 10, 64)
	set := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC).Unix()
	in := wsman.SetHighAccuracyTimeSynchInput{Ta0: ta0, Tm1: set, Tm2: set}
	if err := c.Invoke(ctx, "AMT_TimeSynchronizationService", "SetHighAccuracyTimeSynch", in.Params(), nil); err != nil {
		t.Fatal(err)
	}
	recs := d.AuditRecords()
	r, err := auditlog.Decode(recs[len(recs)-1])
	if err != nil {
		t.Fatal(err)
	}
	ex, ok := r.ExString()
	if r.Event() != "Intel(R) ME Time Set" || !ok || !strings.HasPrefix(ex, "2031-05-06T07:08") || r.Initiator() != "admin" {
		t.Fatalf("record %s %q %v by %q", r.Event(), ex, ok, r.Initiator())
	}
}
