package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"amtd/amt/auditlog"
	"amtd/amt/digest"
	"amtd/amt/wsman"
	"amtd/amtsim"
	"amtd/netsvc"
	"amtd/secret"
	"amtd/store"
)

// logsEnv is the API with one simulated device over CIRA and a caller
// that keeps every response body.
type logsEnv struct {
	*ciraEnv
	bodies []string
}

func (le *logsEnv) call(t *testing.T, method, path, tok, body string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	st, b := le.do(method, path, bearer(tok), r)
	le.bodies = append(le.bodies, string(b))
	return st, string(b)
}

func (le *logsEnv) json(t *testing.T, method, path, tok, body string, want int, v any) {
	t.Helper()
	st, b := le.call(t, method, path, tok, body)
	if st != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, st, b, want)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(b), v); err != nil {
			t.Fatalf("%s %s: body %s: %v", method, path, b, err)
		}
	}
}

type consentAnswer struct {
	Body struct {
		ReturnValue    *int
		ReturnValueStr string
	}
}

// TestAMTUserConsent: an operator starts user consent (the device shows a
// code), a wrong code is the device's 400, malformed codes are refused
// before the device is asked, the right code (sent as a JSON number, as
// MPS clients do) is accepted and audited by the device; cancel clears
// the code; a viewer may do none of it.
func TestAMTUserConsent(t *testing.T) {
	le := &logsEnv{ciraEnv: newCIRAEnv(t)}
	le.addDevice(simUUID)
	d := le.device(t, simUUID)
	viewer, op := le.key(store.RoleViewer, "viewer"), le.key(store.RoleOperator, "op")
	path := "/api/v1/amt/userConsentCode/" + simUUID

	if st, b := le.call(t, "GET", path, viewer, ""); st != 403 || d.OptInCode() != "" {
		t.Fatalf("viewer starting consent: %d %s, code %q", st, b, d.OptInCode())
	}
	var a consentAnswer
	le.json(t, "GET", path, op, "", 200, &a)
	if a.Body.ReturnValue == nil || *a.Body.ReturnValue != 0 || a.Body.ReturnValueStr != "SUCCESS" {
		t.Fatalf("StartOptIn answer %+v", a)
	}
	code := d.OptInCode()
	if len(code) != 6 {
		t.Fatalf("device shows %q after StartOptIn", code)
	}
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	a = consentAnswer{}
	le.json(t, "POST", path, op, `{"consentCode": "`+wrong+`"}`, 400, &a)
	if a.Body.ReturnValue == nil || *a.Body.ReturnValue == 0 {
		t.Fatalf("wrong code answer %+v", a)
	}
	for _, body := range []string{`{}`, `{"consentCode": "12345"}`, `{"consentCode": 1234567}`, `{"consentCode": "12a456"}`,
		`{"consentCode": -1}`, `{"consentCode": 1.5}`, `{"consentCode": true}`, `not json`, `{"consentCode": "123456", "x": 1}`} {
		if st, b := le.call(t, "POST", path, op, body); st != 400 || !strings.Contains(b, "six-digit") || d.OptInCode() != code {
			t.Fatalf("body %s: %d %s, device code %q (was %q)", body, st, b, d.OptInCode(), code)
		}
	}
	if st, _ := le.call(t, "POST", path, viewer, `{"consentCode": "`+code+`"}`); st != 403 || d.OptInCode() != code {
		t.Fatalf("viewer sending the code: %d", st)
	}
	n, _ := strconv.Atoi(code)
	a = consentAnswer{}
	le.json(t, "POST", path, op, `{"consentCode": `+strconv.Itoa(n)+`}`, 200, &a)
	if *a.Body.ReturnValue != 0 || d.OptInCode() != "" {
		t.Fatalf("right code: %+v, device still shows %q", a, d.OptInCode())
	}
	// The device audited the consent (AMT event 3001, success).
	var audit auditAnswer
	le.json(t, "GET", "/api/v1/amt/log/audit/"+simUUID, viewer, "", 200, &audit)
	if len(audit.Records) == 0 || audit.Records[0].Event != "Send Consent Code Event" || audit.Records[0].Initiator != "admin" ||
		audit.Records[0].ExStr == nil || *audit.Records[0].ExStr != "Success" {
		t.Fatalf("audit log after consent: %+v", audit)
	}

	// Start again and cancel: the code goes away.
	le.json(t, "GET", path, op, "", 200, nil)
	if d.OptInCode() == "" {
		t.Fatal("no code after the second StartOptIn")
	}
	if st, _ := le.call(t, "GET", "/api/v1/amt/userConsentCode/cancel/"+simUUID, viewer, ""); st != 403 || d.OptInCode() == "" {
		t.Fatalf("viewer cancelling: %d", st)
	}
	a = consentAnswer{}
	le.json(t, "GET", "/api/v1/amt/userConsentCode/cancel/"+simUUID, op, "", 200, &a)
	if *a.Body.ReturnValue != 0 || d.OptInCode() != "" {
		t.Fatalf("cancel: %+v, device shows %q", a, d.OptInCode())
	}
	// A code after cancelling is the device's refusal.
	if st, b := le.call(t, "POST", path, op, `{"consentCode": "`+code+`"}`); st != 400 || !strings.Contains(b, "ReturnValue") {
		t.Fatalf("code after cancel: %d %s", st, b)
	}
	le.checkAudit(t, "amt.consent.request ok", "amt.consent.send ok", "amt.consent.cancel ok", "amt.consent.send 400 Bad Request")
}

type auditAnswer struct {
	TotalCnt *int `json:"totalCnt"`
	Records  []struct {
		AuditAppID, EventID, InitiatorType int
		AuditApp, Event, Initiator, Time   string
		MCLocationType                     int
		NetAddress, Ex                     string
		ExStr                              *string
	} `json:"records"`
}

// TestAMTAuditLog: a power action shows up as the newest audit record;
// pages of ten come newest first with startIndex skipping the newest N;
// a record the decoder refuses is left out; bad startIndex is a 400.
func TestAMTAuditLog(t *testing.T) {
	le := &logsEnv{ciraEnv: newCIRAEnv(t)}
	le.addDevice(simUUID)
	d := le.device(t, simUUID)
	viewer, op := le.key(store.RoleViewer, "viewer"), le.key(store.RoleOperator, "op")
	path := "/api/v1/amt/log/audit/" + simUUID

	var a auditAnswer
	le.json(t, "GET", path, viewer, "", 200, &a)
	if a.TotalCnt == nil || *a.TotalCnt != 0 || a.Records == nil || len(a.Records) != 0 {
		t.Fatalf("empty log: %+v", a)
	}
	le.json(t, "POST", "/api/v1/amt/power/action/"+simUUID, op, `{"action": 8}`, 200, nil)
	le.json(t, "GET", path, viewer, "", 200, &a)
	if *a.TotalCnt != 1 || len(a.Records) != 1 {
		t.Fatalf("after a power action: %+v", a)
	}
	r := a.Records[0]
	if r.AuditAppID != 17 || r.EventID != 1 || r.AuditApp != "RCO" || r.Event != "Performed Power Down" || r.Initiator != "admin" || r.InitiatorType != 0 {
		t.Fatalf("power down record %+v", r)
	}
	if tm, err := time.Parse(time.RFC3339, r.Time); err != nil || time.Since(tm).Abs() > time.Hour || !strings.HasSuffix(r.Time, ".000Z") {
		t.Fatalf("record time %q (%v)", r.Time, err)
	}

	// 24 more records, Time 1..24: 25 in all. Newest first, ten a page.
	for i := 1; i <= 24; i++ {
		rec, err := auditlog.Record{AppID: 16, EventID: 2, InitiatorType: auditlog.InitiatorDigest, User: "op" + strconv.Itoa(i),
			Time: uint32(1700000000 + i), NetAddress: "192.0.2.9", Ex: []byte{0, 2, 'o', 'p'}}.Encode()
		if err != nil {
			t.Fatal(err)
		}
		d.AppendAuditRecord(rec)
	}
	for _, c := range []struct {
		start      string
		first, num int // Time-1700000000 of the first record, how many
	}{{"", 24, 10}, {"0", 24, 10}, {"10", 14, 10}, {"20", 4, 5}, {"24", 0, 1}, {"25", -1, 0}, {"1000", -1, 0}} {
		q := ""
		if c.start != "" {
			q = "?startIndex=" + c.start
		}
		var a auditAnswer
		le.json(t, "GET", path+q, viewer, "", 200, &a)
		if *a.TotalCnt != 25 || len(a.Records) != c.num {
			t.Fatalf("startIndex %q: total %d, %d records, want 25 and %d", c.start, *a.TotalCnt, len(a.Records), c.num)
		}
		for i, r := range a.Records {
			want := c.first - i
			if want == 0 {
				if r.Event != "Performed Power Down" {
					t.Fatalf("startIndex %q record %d: %+v, want the power down", c.start, i, r)
				}
				continue
			}
			tm := time.Unix(int64(1700000000+want), 0).UTC().Format("2006-01-02T15:04:05.000Z")
			if r.Time != tm || r.Initiator != "op"+strconv.Itoa(want) || r.Event != "ACL Entry Added" || r.ExStr == nil ||
				*r.ExStr != "op" || r.NetAddress != "192.0.2.9" || r.Ex != "\x00\x02op" {
				t.Fatalf("startIndex %q record %d: %+v, want Time %s by op%d", c.start, i, r, tm, want)
			}
		}
	}
	for _, q := range []string{"-1", "abc", "1.5", "99999999999"} {
		if st, b := le.call(t, "GET", path+"?startIndex="+q, viewer, ""); st != 400 || !strings.Contains(b, "whole number") {
			t.Fatalf("startIndex %s: %d %s", q, st, b)
		}
	}
	// A record the device garbles (initiator type 9) is left out; the
	// others still come.
	d.AppendAuditRecord([]byte{0, 16, 0, 2, 9, 1, 2, 3})
	le.json(t, "GET", path, viewer, "", 200, &a)
	if *a.TotalCnt != 26 || len(a.Records) != 9 || a.Records[0].Initiator != "op24" {
		t.Fatalf("with a garbled newest record: total %d, %d records (%+v)", *a.TotalCnt, len(a.Records), a.Records)
	}
	le.checkAudit(t, "amt.log.audit ok")
}

type eventAnswer []struct {
	DeviceAddress, EventSensorType, EventType, EventOffset, EventSourceType, EventSeverity, SensorNumber, Entity, EntityInstance int
	EventData                                                                                                                    []int
	TimeStamp                                                                                                                    *string
	EntityStr                                                                                                                    string
	Desc                                                                                                                         *string
}

// TestAMTEventLog: powering the host off and on makes the BIOS log its
// boot progress; the event log comes newest first, decoded as MPS.
func TestAMTEventLog(t *testing.T) {
	le := &logsEnv{ciraEnv: newCIRAEnv(t)}
	le.addDevice(simUUID)
	d := le.device(t, simUUID)
	viewer, op := le.key(store.RoleViewer, "viewer"), le.key(store.RoleOperator, "op")
	path := "/api/v1/amt/log/event/" + simUUID

	var ev eventAnswer
	le.json(t, "GET", path, viewer, "", 200, &ev)
	if ev == nil || len(ev) != 0 {
		t.Fatalf("empty event log: %+v", ev)
	}
	le.json(t, "POST", "/api/v1/amt/power/action/"+simUUID, op, `{"action": 8}`, 200, nil)
	le.json(t, "POST", "/api/v1/amt/power/action/"+simUUID, op, `{"action": 2}`, 200, nil)
	le.json(t, "GET", path, viewer, "", 200, &ev)
	wantDesc := []string{"Starting operating system boot process", "PCI resource configuration", "Memory initialization."}
	if len(ev) != len(wantDesc) {
		t.Fatalf("after power on: %d events, want %d: %+v", len(ev), len(wantDesc), ev)
	}
	for i, e := range ev {
		if e.Desc == nil || *e.Desc != wantDesc[i] || e.EntityStr != "BIOS" || e.EventSensorType != 15 || e.Entity != 34 ||
			e.EventType != 0x6f || e.EventOffset != 2 || len(e.EventData) != 8 || e.TimeStamp == nil {
			t.Fatalf("event %d: %+v, want %q", i, e, wantDesc[i])
		}
		if tm, err := time.Parse(time.RFC3339, *e.TimeStamp); err != nil || time.Since(tm).Abs() > time.Hour {
			t.Fatalf("event %d time %q", i, *e.TimeStamp)
		}
	}
	// A short record is left out; one with no time stamp has null.
	d.AppendEventRecord(make([]byte, 20))
	d.AppendEventRecord(append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 30}, make([]byte, 15)...))
	le.json(t, "GET", path, viewer, "", 200, &ev)
	if len(ev) != 4 || ev[0].TimeStamp != nil || ev[0].Desc == nil || *ev[0].Desc != "No bootable media" || ev[0].EntityStr != "Unspecified" {
		t.Fatalf("with planted records: %+v", ev)
	}
	le.checkAudit(t, "amt.log.event ok")
}

type alarmAnswer []struct {
	ElementName, InstanceID string
	StartTime               map[string]string
	Interval                map[string]string
	DeleteOnCompletion      any
	InternalInMinutes       int
}

// TestAMTAlarmOccurrences: an operator adds an alarm (kept by the
// device), lists it with MPS's fields, is refused a duplicate, a sixth
// alarm and malformed bodies (nothing changes), and deletes it; a viewer
// may only list.
func TestAMTAlarmOccurrences(t *testing.T) {
	le := &logsEnv{ciraEnv: newCIRAEnv(t)}
	le.addDevice(simUUID)
	d := le.device(t, simUUID)
	viewer, op := le.key(store.RoleViewer, "viewer"), le.key(store.RoleOperator, "op")
	path := "/api/v1/amt/alarmOccurrences/" + simUUID

	var al alarmAnswer
	le.json(t, "GET", path, viewer, "", 200, &al)
	if al == nil || len(al) != 0 {
		t.Fatalf("no alarms: %+v", al)
	}
	wake := `{"ElementName": "wake", "StartTime": "2030-01-02T03:04:00Z", "Interval": 1500, "DeleteOnCompletion": false}`
	if st, _ := le.call(t, "POST", path, viewer, wake); st != 403 || len(d.Alarms()) != 0 {
		t.Fatalf("viewer adding: %d", st)
	}
	var res map[string]any
	le.json(t, "POST", path, op, wake, 200, &res)
	if res["status"] != "SUCCESS" || res["ReturnValue"] != float64(0) {
		t.Fatalf("add: %v", res)
	}
	if got := d.Alarms(); len(got) != 1 || got[0].InstanceID != "wake" || got[0].Interval != "P1DT1H0M" || got[0].DeleteOnCompletion ||
		got[0].StartTime != "2030-01-02T03:04:00Z" {
		t.Fatalf("device alarms %+v", got)
	}
	le.json(t, "GET", path, viewer, "", 200, &al)
	if len(al) != 1 || al[0].InstanceID != "wake" || al[0].ElementName != "wake" || al[0].StartTime["Datetime"] != "2030-01-02T03:04:00Z" ||
		al[0].Interval["Interval"] != "P1DT1H0M" || al[0].InternalInMinutes != 1500 || al[0].DeleteOnCompletion != false {
		t.Fatalf("listed %+v", al)
	}
	if st, b := le.call(t, "POST", path, op, wake); st != 400 || !strings.Contains(b, "exists") {
		t.Fatalf("duplicate: %d %s", st, b)
	}
	for _, body := range []string{`{}`, `{"ElementName": "x"}`, `{"StartTime": "2030-01-02T03:04:00Z"}`,
		`{"ElementName": "x", "StartTime": "tomorrow"}`, `{"ElementName": "x", "StartTime": "2030-01-02T03:04:00Z", "Interval": -5}`,
		`{"ElementName": "` + strings.Repeat("x", 33) + `", "StartTime": "2030-01-02T03:04:00Z"}`,
		`{"ElementName": "a<b>\u00e9", "StartTime": "2030-01-02T03:04:00Z"}`, `{"ElementName": "", "StartTime": "2030-01-02T03:04:00Z"}`,
		`{"ElementName": "x", "StartTime": "2030-01-02T03:04:00Z", "Colour": "red"}`, `[]`} {
		if st, b := le.call(t, "POST", path, op, body); st != 400 || !strings.Contains(b, "send") && !strings.Contains(b, "want") || len(d.Alarms()) != 1 {
			t.Fatalf("body %s: %d %s, %d alarms", body, st, b, len(d.Alarms()))
		}
	}
	// Four more fill the device; the sixth is refused.
	for i := range 4 {
		le.json(t, "POST", path, op, `{"ElementName": "a`+strconv.Itoa(i)+`", "StartTime": "2030-01-02T03:04"}`, 200, nil)
	}
	if st, b := le.call(t, "POST", path, op, `{"ElementName": "sixth", "StartTime": "2030-01-02T03:04:00Z"}`); st != 400 ||
		!strings.Contains(b, "as many alarms") || len(d.Alarms()) != 5 {
		t.Fatalf("sixth alarm: %d %s", st, b)
	}
	le.json(t, "GET", path, viewer, "", 200, &al)
	if len(al) != 5 || al[1].Interval != nil || al[1].InternalInMinutes != 0 || al[1].DeleteOnCompletion != true {
		t.Fatalf("five alarms: %+v", al)
	}

	if st, _ := le.call(t, "DELETE", path, viewer, `{"Name": "wake"}`); st != 403 || len(d.Alarms()) != 5 {
		t.Fatalf("viewer deleting: %d", st)
	}
	for _, body := range []string{`{}`, `{"Name": ""}`, `{"Name": 5}`, `nope`} {
		if st, b := le.call(t, "DELETE", path, op, body); st != 400 || len(d.Alarms()) != 5 {
			t.Fatalf("delete body %s: %d %s", body, st, b)
		}
	}
	le.json(t, "DELETE", path, op, `{"Name": "wake"}`, 200, &res)
	if res["status"] != "SUCCESS" || len(d.Alarms()) != 4 {
		t.Fatalf("delete: %v, %d alarms", res, len(d.Alarms()))
	}
	if st, b := le.call(t, "DELETE", path, op, `{"Name": "wake"}`); st != 404 || !strings.Contains(b, "no alarm") {
		t.Fatalf("deleting again: %d %s", st, b)
	}
	le.checkAudit(t, "amt.alarms.list ok", "amt.alarms.add ok", "amt.alarms.add 400 Bad Request", "amt.alarms.delete ok",
		"amt.alarms.delete 404 Not Found")
}

type certAnswer struct {
	Certificates struct {
		KeyManagementItems        []any `json:"keyManagementItems"`
		PublicKeyCertificateItems []struct {
			ElementName, InstanceID, X509Certificate, Issuer, Subject, PublicKeyHandle, DisplayName string
			TrustedRootCertificate, ReadOnlyCertificate                                             bool
			AssociatedProfiles                                                                      []string
		} `json:"publicKeyCertificateItems"`
	} `json:"certificates"`
	PublicKeys struct {
		PublicPrivateKeyPairItems []struct {
			ElementName, InstanceID, DERKey, CertificateHandle string
		} `json:"publicPrivateKeyPairItems"`
	} `json:"publicKeys"`
	ProfileAssociation []any `json:"profileAssociation"`
}

// TestAMTCertificates: the device's trusted root (amtd's CIRA root, put
// there at configuration) is listed; a key pair and the certificate
// issued for it are linked both ways; once TLS uses that certificate it
// is the "TLS" profile's and cannot be deleted (409).
func TestAMTCertificates(t *testing.T) {
	le := &logsEnv{ciraEnv: newCIRAEnv(t)}
	le.addDevice(simUUID)
	d := le.device(t, simUUID)
	viewer := le.key(store.RoleViewer, "viewer")
	path := "/api/v1/amt/certificates/" + simUUID

	var c certAnswer
	le.json(t, "GET", path, viewer, "", 200, &c)
	items := c.Certificates.PublicKeyCertificateItems
	if len(items) != 1 || !items[0].TrustedRootCertificate || items[0].PublicKeyHandle != "" || c.Certificates.KeyManagementItems == nil ||
		c.PublicKeys.PublicPrivateKeyPairItems == nil || len(c.PublicKeys.PublicPrivateKeyPairItems) != 0 || c.ProfileAssociation == nil {
		t.Fatalf("certificates: %+v", c)
	}
	der, _ := base64.StdEncoding.DecodeString(items[0].X509Certificate)
	root, err := x509.ParseCertificate(der)
	if err != nil || items[0].DisplayName != root.Subject.CommonName || !strings.Contains(items[0].Subject, "CN="+root.Subject.CommonName) {
		t.Fatalf("root %q (%v): %+v", items[0].DisplayName, err, items[0])
	}

	// A key pair on the device and a certificate for it.
	keyID, code := d.GenerateKeyPair(0, 2048)
	if code != 0 {
		t.Fatal(code)
	}
	le.json(t, "GET", path, viewer, "", 200, &c)
	if len(c.PublicKeys.PublicPrivateKeyPairItems) != 1 || c.PublicKeys.PublicPrivateKeyPairItems[0].InstanceID != keyID {
		t.Fatalf("keys: %+v", c.PublicKeys)
	}
	kder, _ := base64.StdEncoding.DecodeString(c.PublicKeys.PublicPrivateKeyPairItems[0].DERKey)
	pub, err := x509.ParsePKCS1PublicKey(kder)
	if err != nil {
		t.Fatal(err)
	}
	certID, code := d.AddCertificate(base64.StdEncoding.EncodeToString(issueFor(t, pub, "amt-tls.corp.example.com")))
	if code != 0 {
		t.Fatalf("AddCertificate: %d", code)
	}
	le.json(t, "GET", path, viewer, "", 200, &c)
	linked := false
	for _, it := range c.Certificates.PublicKeyCertificateItems {
		if it.InstanceID == certID {
			linked = it.PublicKeyHandle == keyID && it.DisplayName == "amt-tls.corp.example.com" && !it.TrustedRootCertificate
		}
	}
	if !linked || c.PublicKeys.PublicPrivateKeyPairItems[0].CertificateHandle != certID {
		t.Fatalf("certificate and key not linked: %+v", c)
	}

	// The device's TLS certificate: profile "TLS", and it cannot be deleted.
	l, err := d.Listen(amtsim.ListenAddrs{Plain: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	wc := wsman.NewClient(func(ctx context.Context) (net.Conn, error) {
		var nd net.Dialer
		return nd.DialContext(ctx, "tcp", l.Plain.String())
	}, wsman.Credentials{Host: simUUID + ":16992", Username: "admin", Password: secret.FromString(simAdminPass)})
	body := wsman.Instance{Class: "AMT_TLSCredentialContext"}
	body.AddEPR("ElementInContext", wsman.EPR{Address: wsman.AnonymousAddress, ResourceURI: wsman.BaseAMT + "AMT_PublicKeyCertificate",
		Selectors: []wsman.Selector{{Name: "InstanceID", Value: certID}}})
	body.AddEPR("ElementProvidingContext", wsman.EPR{Address: wsman.AnonymousAddress, ResourceURI: wsman.BaseAMT + "AMT_TLSProtocolEndpointCollection",
		Selectors: []wsman.Selector{{Name: "ElementName", Value: "TLSProtocolEndpointInstances Collection"}}})
	req, err := wc.B.Create("AMT_TLSCredentialContext", body)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wc.Do(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	var withTLS struct {
		ProfileAssociation []struct {
			Type, ProfileID   string
			ClientCertificate *struct{ InstanceID string }
			PublicKey         *struct{ InstanceID string }
		} `json:"profileAssociation"`
	}
	le.json(t, "GET", path, viewer, "", 200, &withTLS)
	if pa := withTLS.ProfileAssociation; len(pa) != 1 || pa[0].Type != "TLS" || pa[0].ClientCertificate == nil ||
		pa[0].ClientCertificate.InstanceID != certID || pa[0].PublicKey == nil || pa[0].PublicKey.InstanceID != keyID {
		t.Fatalf("TLS profile: %+v", withTLS)
	}
	admin := le.key(store.RoleAdmin, "admin")
	if st, b := le.call(t, "DELETE", path+"/"+url.PathEscape(certID), admin, ""); st != 409 || !strings.Contains(b, "TLS") {
		t.Fatalf("deleting the TLS certificate: %d %s", st, b)
	}
	le.json(t, "GET", path, viewer, "", 200, &c)
	if len(c.Certificates.PublicKeyCertificateItems) != 2 {
		t.Fatalf("after the refused delete: %+v", c)
	}
	le.checkAudit(t, "amt.certificates ok", "amt.certificates.delete 409 Conflict")
}

// TestAMTCertificateChanges: an admin adds a trusted root (PEM or DER)
// and gets its handle, is refused a duplicate, an expired, a garbled and
// a keyless client certificate with nothing changed, may not delete one
// that is not there, and deletes the root; an operator may not change the
// store. (TestAMTCertificates tries to delete the TLS certificate.)
func TestAMTCertificateChanges(t *testing.T) {
	le := &logsEnv{ciraEnv: newCIRAEnv(t)}
	le.addDevice(simUUID)
	le.device(t, simUUID)
	admin, op := le.key(store.RoleAdmin, "admin"), le.key(store.RoleOperator, "op")
	path := "/api/v1/amt/certificates/" + simUUID
	count := func() int {
		var c certAnswer
		le.json(t, "GET", path, op, "", 200, &c)
		return len(c.Certificates.PublicKeyCertificateItems)
	}
	n0 := count()

	rootDER, expiredDER := testRoot(t, time.Hour), testRoot(t, -time.Hour)
	pemB64 := base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER}))
	add := `{"cert": "` + pemB64 + `", "isTrusted": true}`
	if st, _ := le.call(t, "POST", path, op, add); st != 403 || count() != n0 {
		t.Fatalf("operator adding: %d", st)
	}
	var res map[string]string
	le.json(t, "POST", path, admin, add, 200, &res)
	handle := res["handle"]
	if handle == "" || count() != n0+1 {
		t.Fatalf("add: %v, %d certificates", res, count())
	}
	derAdd := `{"cert": "` + base64.StdEncoding.EncodeToString(rootDER) + `", "isTrusted": true}`
	if st, b := le.call(t, "POST", path, admin, derAdd); st != 400 || !strings.Contains(b, "already") {
		t.Fatalf("duplicate: %d %s", st, b)
	}
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	keyless := base64.StdEncoding.EncodeToString(issueFor(t, &key.PublicKey, "keyless.example.com"))
	for _, body := range []string{`{}`, `{"cert": "` + pemB64 + `"}`, `{"isTrusted": true}`, `{"cert": "not base64!", "isTrusted": true}`,
		`{"cert": "aGVsbG8=", "isTrusted": true}`, `{"cert": "` + base64.StdEncoding.EncodeToString(expiredDER) + `", "isTrusted": true}`,
		`{"cert": "` + keyless + `", "isTrusted": false}`, `{"cert": "` + strings.Repeat("A", 70000) + `", "isTrusted": true}`} {
		if st, b := le.call(t, "POST", path, admin, body); st != 400 || count() != n0+1 {
			t.Fatalf("body %.80s: %d %s, %d certificates", body, st, b, count())
		}
	}

	del := path + "/" + url.PathEscape(handle)
	if st, _ := le.call(t, "DELETE", del, op, ""); st != 403 || count() != n0+1 {
		t.Fatalf("operator deleting: %d", st)
	}
	if st, b := le.call(t, "DELETE", path+"/"+url.PathEscape("Intel(r) AMT Certificate: Handle: 999"), admin, ""); st != 404 || count() != n0+1 {
		t.Fatalf("deleting a missing certificate: %d %s", st, b)
	}
	le.json(t, "DELETE", del, admin, "", 200, &res)
	if res["handle"] != handle || res["message"] != "Certificate deleted successfully" || count() != n0 {
		t.Fatalf("delete: %v, %d certificates", res, count())
	}
	le.checkAudit(t, "amt.certificates.add ok", "amt.certificates.add 400 Bad Request", "amt.certificates.delete ok",
		"amt.certificates.delete 404 Not Found")
}

// testRoot makes a self-signed CA certificate valid until now+until.
func testRoot(t *testing.T, until time.Duration) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "amtd test root"},
		NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(until), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// issueFor makes a certificate for pub signed by a throwaway CA.
func issueFor(t *testing.T, pub *rsa.PublicKey, cn string) []byte {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{Organization: []string{"amtd"}, CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, pub, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestAMTLogRoutesRefuse: every route answers a malformed GUID with 400,
// an unknown device with 404, a device without a link with MPS's 404, and
// [CIRA] off with its own 404.
func TestAMTLogRoutesRefuse(t *testing.T) {
	le := &logsEnv{ciraEnv: newCIRAEnv(t)}
	le.addDevice(simOffUUID)
	admin := le.key(store.RoleAdmin, "admin")
	cert := `{"cert": "` + base64.StdEncoding.EncodeToString(testRoot(t, time.Hour)) + `", "isTrusted": true}`
	routes := []struct{ method, path, suffix, body string }{
		{"GET", "/api/v1/amt/userConsentCode/", "", ""},
		{"POST", "/api/v1/amt/userConsentCode/", "", `{"consentCode": "123456"}`},
		{"GET", "/api/v1/amt/userConsentCode/cancel/", "", ""},
		{"GET", "/api/v1/amt/log/audit/", "", ""},
		{"GET", "/api/v1/amt/log/event/", "", ""},
		{"GET", "/api/v1/amt/alarmOccurrences/", "", ""},
		{"POST", "/api/v1/amt/alarmOccurrences/", "", `{"ElementName": "x", "StartTime": "2030-01-02T03:04:00Z"}`},
		{"DELETE", "/api/v1/amt/alarmOccurrences/", "", `{"Name": "x"}`},
		{"GET", "/api/v1/amt/certificates/", "", ""},
		{"POST", "/api/v1/amt/certificates/", "", cert},
		{"DELETE", "/api/v1/amt/certificates/", "/Intel(r)%20AMT%20Certificate:%20Handle:%200", ""},
	}
	for _, r := range routes {
		if st, b := le.call(t, r.method, r.path+"not-a-guid"+r.suffix, admin, r.body); st != 400 {
			t.Errorf("%s %s bad guid: %d %s", r.method, r.path, st, b)
		}
		if st, b := le.call(t, r.method, r.path+"4c4c4544-0042-3510-8052-b4c04f4e7fff"+r.suffix, admin, r.body); st != 404 || !strings.Contains(b, "not found") {
			t.Errorf("%s %s unknown device: %d %s", r.method, r.path, st, b)
		}
		if st, b := le.call(t, r.method, r.path+simOffUUID+r.suffix, admin, r.body); st != 404 || !strings.Contains(b, "not found/connected") {
			t.Errorf("%s %s device without a link: %d %s", r.method, r.path, st, b)
		}
	}
	e := newEnv(t, false)
	e.putDevice(uuidA, "a", true)
	tok := e.key(store.RoleAdmin, "admin")
	for _, r := range routes {
		var body io.Reader
		if r.body != "" {
			body = strings.NewReader(r.body)
		}
		if st, b := e.do(r.method, r.path+uuidA+r.suffix, bearer(tok), body); st != 404 || !strings.Contains(string(b), "[CIRA] is off") {
			t.Errorf("%s %s without CIRA: %d %s", r.method, r.path, st, b)
		}
	}
}

// checkAudit: the audit trail has a row for each action and result on the
// device, and no response carried a password.
func (le *logsEnv) checkAudit(t *testing.T, want ...string) {
	t.Helper()
	es, err := le.st.AuditList(context.Background(), store.AuditQuery{Object: "device/" + simUUID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range es {
		seen[e.Action+" "+e.Result] = true
	}
	for _, w := range want {
		if !seen["api."+w] {
			t.Errorf("no audit row %q for the device in %v", "api."+w, seen)
		}
	}
	for _, pw := range []string{simAdminPass, simMPSPass} {
		if strings.Contains(strings.Join(le.bodies, "\n"), pw) || strings.Contains(le.logs.String(), pw) {
			t.Errorf("a password appears in a response or the log")
		}
	}
}

// hostileDevice is an AMT that authenticates as a device should and then
// answers AMT_AuditLog and AMT_MessageLog methods with what broken or
// hostile firmware could send.
type hostileDevice struct {
	srv    *httptest.Server
	answer func(method string) []wsman.Property
}

func (h *hostileDevice) Dial(ctx context.Context, _ string, _ uint16) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", h.srv.Listener.Addr().String())
}

func newHostileDevice(t *testing.T) *hostileDevice {
	h := &hostileDevice{}
	realm := "Digest:" + strings.Repeat("AB", 16)
	ds := digest.NewServer(realm)
	creds := digest.PasswordCredentials("admin", realm, secret.FromString(simAdminPass))
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if _, err := ds.Verify(time.Now(), r.Method, r.Header.Get("Authorization"), creds); err != nil {
			w.Header().Set("WWW-Authenticate", ds.Challenge(time.Now(), errors.Is(err, digest.ErrStale)))
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		msg, err := wsman.ParseRequest(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		method := strings.TrimPrefix(msg.Header.Action, msg.Header.ResourceURI+"/")
		b := wsman.WriteMethodResponse(wsman.ReplyTo(msg, 1), wsman.Instance{Class: method + "_OUTPUT",
			Namespace: msg.Header.ResourceURI, Props: h.answer(method)})
		w.Header().Set("Content-Type", "application/soap+xml; charset=UTF-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		_, _ = w.Write(b)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// TestAMTLogsHostileDevice: answers no AMT sends (a count that is not a
// number, a hundred times the records asked for, a record longer than
// any, an event log over the response cap) are refused with a 502 naming
// the problem or cut to what was asked, never decoded without bound.
func TestAMTLogsHostileDevice(t *testing.T) {
	hd := newHostileDevice(t)
	e := newEnvDevices(t, false, func(*store.Store, *netsvc.Listeners) DeviceDialer { return hd })
	addSimDevice(t, e.st, simUUID)
	viewer := e.key(store.RoleViewer, "viewer")
	audit, _ := wsman.ResourceURI("AMT_AuditLog")
	msgLog, _ := wsman.ResourceURI("AMT_MessageLog")
	good, _ := auditlog.Record{AppID: 16, EventID: 2, InitiatorType: auditlog.InitiatorLocal}.Encode()
	goodEvent := base64.StdEncoding.EncodeToString(make([]byte, 21))
	p := func(ns, name, v string) wsman.Property { return wsman.Property{Name: name, Namespace: ns, Value: v} }
	records := func(n int, rec string) []wsman.Property {
		out := []wsman.Property{p(audit, "TotalRecordCount", strconv.Itoa(n)), p(audit, "RecordsReturned", strconv.Itoa(n))}
		for range n {
			out = append(out, p(audit, "EventRecords", rec))
		}
		return append(out, p(audit, "ReturnValue", "0"))
	}
	events := func(id string, n int) func(string) []wsman.Property {
		return func(method string) []wsman.Property {
			if method == "PositionToFirstRecord" {
				return []wsman.Property{p(msgLog, "IterationIdentifier", id), p(msgLog, "ReturnValue", "0")}
			}
			out := []wsman.Property{p(msgLog, "IterationIdentifier", "9"), p(msgLog, "NoMoreRecords", "true")}
			for range n {
				out = append(out, p(msgLog, "RecordArray", goodEvent))
			}
			return append(out, p(msgLog, "ReturnValue", "0"))
		}
	}
	for _, c := range []struct {
		name, path string
		answer     func(string) []wsman.Property
		status     int
		says       string
		n          int
	}{
		{"sane audit", "log/audit/", func(string) []wsman.Property { return records(3, base64.StdEncoding.EncodeToString(good)) }, 200, `"totalCnt":3`, 3},
		{"count not a number", "log/audit/", func(string) []wsman.Property {
			return []wsman.Property{p(audit, "TotalRecordCount", "lots"), p(audit, "ReturnValue", "0")}
		}, 502, "TotalRecordCount", 0},
		{"a thousand records", "log/audit/", func(string) []wsman.Property { return records(1000, base64.StdEncoding.EncodeToString(good)) }, 502, "at most 10", 0},
		{"a 100 KB record", "log/audit/", func(string) []wsman.Property {
			return records(1, base64.StdEncoding.EncodeToString(make([]byte, 100<<10)))
		}, 502, "longer than any audit record", 0},
		{"not base64", "log/audit/", func(string) []wsman.Property { return records(1, "!!!") }, 502, "not base64", 0},
		{"5000 events", "log/event/", events("1", 5000), 200, "", eventReadMax},
		{"identifier not a number", "log/event/", events("x", 1), 502, "IterationIdentifier", 0},
		{"events over the response cap", "log/event/", events("1", 200000), 502, "", 0},
	} {
		hd.answer = c.answer
		st, b := e.do("GET", "/api/v1/amt/"+c.path+simUUID, bearer(viewer), nil)
		if st != c.status || !strings.Contains(string(b), c.says) {
			t.Errorf("%s: %d %.300s, want %d saying %q", c.name, st, b, c.status, c.says)
			continue
		}
		if st == 200 && c.path == "log/event/" {
			var ev []any
			if err := json.Unmarshal(b, &ev); err != nil || len(ev) != c.n {
				t.Errorf("%s: %d events (%v), want %d", c.name, len(ev), err, c.n)
			}
		}
		if st == 200 && c.path == "log/audit/" {
			var a auditAnswer
			if err := json.Unmarshal(b, &a); err != nil || len(a.Records) != c.n {
				t.Errorf("%s: %d records (%v), want %d", c.name, len(a.Records), err, c.n)
			}
		}
	}
}
