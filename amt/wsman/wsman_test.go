package wsman

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"amtd/secret"
)

const wantEnvelopeStart = `<?xml version="1.0" encoding="utf-8"?><Envelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns="http://www.w3.org/2003/05/soap-envelope"><Header>`

func header(action, uri, id, extra string) string {
	return wantEnvelopeStart + `<a:Action>` + action + `</a:Action><a:To>/wsman</a:To><w:ResourceURI>` + uri +
		`</w:ResourceURI><a:MessageID>` + id + `</a:MessageID><a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo><w:OperationTimeout>PT60S</w:OperationTimeout>` + extra + `</Header>`
}

// Request strings of spec/wsman.md §3, §4 and §6.
func TestBuildRequests(t *testing.T) {
	var b Builder
	amt := "http://intel.com/wbem/wscim/1/amt-schema/1/"
	must := func(r *Request, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return string(r.Body)
	}
	tests := []struct {
		name, got, want string
	}{
		{"get", must(b.Get("AMT_GeneralSettings")),
			header("http://schemas.xmlsoap.org/ws/2004/09/transfer/Get", amt+"AMT_GeneralSettings", "0", "") + `<Body></Body></Envelope>`},
		{"enumerate", must(b.Enumerate("CIM_SoftwareIdentity")),
			header("http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate", "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_SoftwareIdentity", "1", "") +
				`<Body><Enumerate xmlns="http://schemas.xmlsoap.org/ws/2004/09/enumeration" /></Body></Envelope>`},
		{"pull", must(b.Pull("AMT_PublicKeyCertificate", "A1000000-0000-0000-0000-000000000000")),
			header("http://schemas.xmlsoap.org/ws/2004/09/enumeration/Pull", amt+"AMT_PublicKeyCertificate", "2", "") +
				`<Body><Pull xmlns="http://schemas.xmlsoap.org/ws/2004/09/enumeration"><EnumerationContext>A1000000-0000-0000-0000-000000000000</EnumerationContext><MaxElements>999</MaxElements><MaxCharacters>99999</MaxCharacters></Pull></Body></Envelope>`},
		{"put tls settings with selector", must(b.Put("AMT_TLSSettingData",
			EncodeWritable(AMTTLSSettingData{ElementName: "Intel(r) AMT 802.3 TLS Settings", InstanceID: "Intel(r) AMT 802.3 TLS Settings", Enabled: true, AcceptNonSecureConnections: true}, "", ""),
			Selector{Name: "InstanceID", Value: "Intel(r) AMT 802.3 TLS Settings"})),
			header("http://schemas.xmlsoap.org/ws/2004/09/transfer/Put", amt+"AMT_TLSSettingData", "3",
				`<w:SelectorSet><w:Selector Name="InstanceID">Intel(r) AMT 802.3 TLS Settings</w:Selector></w:SelectorSet>`) +
				`<Body><h:AMT_TLSSettingData xmlns:h="` + amt + `AMT_TLSSettingData"><h:ElementName>Intel(r) AMT 802.3 TLS Settings</h:ElementName><h:InstanceID>Intel(r) AMT 802.3 TLS Settings</h:InstanceID><h:MutualAuthentication>false</h:MutualAuthentication><h:Enabled>true</h:Enabled><h:AcceptNonSecureConnections>true</h:AcceptNonSecureConnections></h:AMT_TLSSettingData></Body></Envelope>`},
		{"create tls credential context", must(b.Create("AMT_TLSCredentialContext", Encode(AMTTLSCredentialContext{
			ElementInContext: EPR{Address: "/wsman", ResourceURI: amt + "AMT_PublicKeyCertificate", Selectors: []Selector{{Name: "InstanceID", Value: "Intel(r) AMT Certificate: Handle: 1"}}},
			ElementProvidingContext: EPR{Address: "/wsman", ResourceURI: amt + "AMT_TLSProtocolEndpointCollection",
				Selectors: []Selector{{Name: "ElementName", Value: "TLSProtocolEndpointInstances Collection"}}},
		}, "", ""))),
			header("http://schemas.xmlsoap.org/ws/2004/09/transfer/Create", amt+"AMT_TLSCredentialContext", "4", "") +
				`<Body><h:AMT_TLSCredentialContext xmlns:h="` + amt + `AMT_TLSCredentialContext"><h:ElementInContext><a:Address>/wsman</a:Address><a:ReferenceParameters><w:ResourceURI>` + amt + `AMT_PublicKeyCertificate</w:ResourceURI><w:SelectorSet><w:Selector Name="InstanceID">Intel(r) AMT Certificate: Handle: 1</w:Selector></w:SelectorSet></a:ReferenceParameters></h:ElementInContext><h:ElementProvidingContext><a:Address>/wsman</a:Address><a:ReferenceParameters><w:ResourceURI>` + amt + `AMT_TLSProtocolEndpointCollection</w:ResourceURI><w:SelectorSet><w:Selector Name="ElementName">TLSProtocolEndpointInstances Collection</w:Selector></w:SelectorSet></a:ReferenceParameters></h:ElementProvidingContext></h:AMT_TLSCredentialContext></Body></Envelope>`},
		{"add remote access policy rule", must(b.Invoke("AMT_RemoteAccessService", "AddRemoteAccessPolicyRule", AddRemoteAccessPolicyRuleInput{
			Trigger: 2, TunnelLifeTime: 0, ExtendedData: "AAAAAAAAABk=",
			MpServer: EPR{ResourceURI: amt + "AMT_ManagementPresenceRemoteSAP", Selectors: []Selector{{Name: "Name", Value: "Intel(r) AMT:Management Presence Server 0"}}},
		}.Params())),
			header(amt+"AMT_RemoteAccessService/AddRemoteAccessPolicyRule", amt+"AMT_RemoteAccessService", "5", "") +
				`<Body><h:AddRemoteAccessPolicyRule_INPUT xmlns:h="` + amt + `AMT_RemoteAccessService"><h:Trigger>2</h:Trigger><h:TunnelLifeTime>0</h:TunnelLifeTime><h:ExtendedData>AAAAAAAAABk=</h:ExtendedData><h:MpServer><Address xmlns="http://schemas.xmlsoap.org/ws/2004/08/addressing">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</Address><ReferenceParameters xmlns="http://schemas.xmlsoap.org/ws/2004/08/addressing"><ResourceURI xmlns="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd">` + amt + `AMT_ManagementPresenceRemoteSAP</ResourceURI><SelectorSet xmlns="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><Selector Name="Name">Intel(r) AMT:Management Presence Server 0</Selector></SelectorSet></ReferenceParameters></h:MpServer></h:AddRemoteAccessPolicyRule_INPUT></Body></Envelope>`},
		{"setup", must(b.Invoke("IPS_HostBasedSetupService", "Setup", SetupInput{NetAdminPassEncryptionType: 2, NetworkAdminPassword: secret.FromString("f73b2c17b1ecbd7a235ec37d66cbed71")}.Params())),
			header("http://intel.com/wbem/wscim/1/ips-schema/1/IPS_HostBasedSetupService/Setup", "http://intel.com/wbem/wscim/1/ips-schema/1/IPS_HostBasedSetupService", "6", "") +
				`<Body><h:Setup_INPUT xmlns:h="http://intel.com/wbem/wscim/1/ips-schema/1/IPS_HostBasedSetupService"><h:NetAdminPassEncryptionType>2</h:NetAdminPassEncryptionType><h:NetworkAdminPassword>f73b2c17b1ecbd7a235ec37d66cbed71</h:NetworkAdminPassword></h:Setup_INPUT></Body></Envelope>`},
		{"request state change", must(b.RequestStateChange("AMT_UserInitiatedConnectionService", 32771)),
			header(amt+"AMT_UserInitiatedConnectionService/RequestStateChange", amt+"AMT_UserInitiatedConnectionService", "7", "") +
				`<Body><h:RequestStateChange_INPUT xmlns:h="` + amt + `AMT_UserInitiatedConnectionService"><h:RequestedState>32771</h:RequestedState></h:RequestStateChange_INPUT></Body></Envelope>`},
		{"put with EPR selectors", must(b.Put("AMT_RemoteAccessPolicyAppliesToMPS", Instance{Props: []Property{{Name: "OrderOfAccess", Value: "0"}}},
			Selector{Name: "ManagedElement", EPR: &EPR{ResourceURI: amt + "AMT_ManagementPresenceRemoteSAP", Selectors: []Selector{{Name: "Name", Value: "Intel(r) AMT:Management Presence Server 0"}}}})),
			header(NSTransfer+"/Put", amt+"AMT_RemoteAccessPolicyAppliesToMPS", "8",
				`<w:SelectorSet><w:Selector Name="ManagedElement"><EndpointReference xmlns="http://schemas.xmlsoap.org/ws/2004/08/addressing"><Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</Address><ReferenceParameters><ResourceURI xmlns="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd">`+amt+`AMT_ManagementPresenceRemoteSAP</ResourceURI><SelectorSet xmlns="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><Selector Name="Name">Intel(r) AMT:Management Presence Server 0</Selector></SelectorSet></ReferenceParameters></EndpointReference></w:Selector></w:SelectorSet>`) +
				`<Body><h:AMT_RemoteAccessPolicyAppliesToMPS xmlns:h="` + amt + `AMT_RemoteAccessPolicyAppliesToMPS"><h:OrderOfAccess>0</h:OrderOfAccess></h:AMT_RemoteAccessPolicyAppliesToMPS></Body></Envelope>`},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, tt.got, tt.want)
		}
		if _, err := ParseRequest([]byte(tt.got)); err != nil {
			t.Errorf("%s: our own request does not parse: %v", tt.name, err)
		}
	}
	if _, err := b.Get("Win32_Foo"); err == nil {
		t.Error("class without AMT_/IPS_/CIM_ prefix accepted")
	}
	if _, err := b.Invoke("AMT_X", "Bad<Name", nil); err == nil {
		t.Error("method name with markup accepted")
	}
	// Values are escaped, never injected.
	r, _ := b.Get("AMT_X", Selector{Name: "InstanceID", Value: "a</w:Selector><evil/>&"})
	m, err := ParseRequest(r.Body)
	if err != nil || m.Header.Selectors[0].Value != "a</w:Selector><evil/>&" {
		t.Errorf("escaped selector round trip: %v %+v", err, m)
	}
}

func TestParseRequest(t *testing.T) {
	var b Builder
	r, _ := b.Invoke("AMT_RemoteAccessService", "AddRemoteAccessPolicyRule", AddRemoteAccessPolicyRuleInput{
		Trigger: 2, ExtendedData: "AAAAAAAAABk=",
		MpServer: EPR{ResourceURI: BaseAMT + "AMT_ManagementPresenceRemoteSAP", Selectors: []Selector{{Name: "Name", Value: "Intel(r) AMT:Management Presence Server 0"}}},
	}.Params())
	m, err := ParseRequest(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Action != BaseAMT+"AMT_RemoteAccessService/AddRemoteAccessPolicyRule" || m.Class() != "AMT_RemoteAccessService" ||
		m.Header.MessageID != "0" || m.Kind != KindMethod || m.Method.Method() != "AddRemoteAccessPolicyRule" {
		t.Fatalf("parsed %+v", m)
	}
	names := []string{}
	for _, p := range m.Method.Props {
		names = append(names, p.Name)
	}
	if strings.Join(names, ",") != "Trigger,TunnelLifeTime,ExtendedData,MpServer" {
		t.Errorf("parameter order %v", names)
	}
	if e := m.Method.EPR("MpServer"); e == nil || e.Selector("Name") != "Intel(r) AMT:Management Presence Server 0" || e.Address != AnonymousAddress {
		t.Errorf("MpServer EPR %+v", e)
	}
	// A request-shaped fixture (go-wsman-messages' Put body) parses too.
	body, err := os.ReadFile(filepath.Join(fixtureDir(t), "amt/boot/settingdata/put.xml"))
	if err != nil {
		t.Fatal(err)
	}
	m, err = ParseRequest(body)
	if err != nil || m.Header.Action != ActionPut || m.Kind != KindInstance || m.Instances[0].Value("InstanceID") != "Intel(r) AMT:BootSettingData 0" {
		t.Fatalf("put.xml: %v %+v", err, m)
	}
	if _, err := ParseRequest([]byte(`<Envelope xmlns="` + NSSOAP + `"><Header/><Body/></Envelope>`)); err == nil {
		t.Error("request without Action accepted")
	}
}

func parseFixture(t *testing.T, rel string) *Message {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseResponse(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Exact values from a few fixtures.
func TestFixtureValues(t *testing.T) {
	m := parseFixture(t, "ips/hostbasedsetup/get.xml")
	var hbs IPSHostBasedSetupService
	if err := Decode(&m.Instances[0], &hbs); err != nil {
		t.Fatal(err)
	}
	if hbs.CurrentControlMode != 2 || !reflect.DeepEqual(hbs.AllowedControlModes, []int64{2, 1}) {
		t.Errorf("CurrentControlMode %d AllowedControlModes %v", hbs.CurrentControlMode, hbs.AllowedControlModes)
	}
	nonce, err := base64.StdEncoding.DecodeString(hbs.ConfigurationNonce)
	if err != nil || len(nonce) != 20 {
		t.Errorf("nonce %q decodes to %d bytes (%v), want 20", hbs.ConfigurationNonce, len(nonce), err)
	}
	if m.Header.MessageID != "uuid:00000000-8086-8086-8086-0000000032E9" || m.Header.RelatesTo != "0" {
		t.Errorf("header %+v", m.Header)
	}

	m = parseFixture(t, "amt/publickey/management/generatekeypair.xml")
	var gk GenerateKeyPairOutput
	if err := Decode(m.Method, &gk); err != nil {
		t.Fatal(err)
	}
	if gk.ReturnValue != 0 || gk.KeyPair.Selector("InstanceID") != "Intel(r) AMT Key: Handle: 0" || gk.KeyPair.ResourceURI != BaseAMT+"AMT_PublicPrivateKeyPair" {
		t.Errorf("GenerateKeyPair %+v", gk)
	}

	m = parseFixture(t, "amt/tls/credentialcontext/create.xml")
	if sel := m.Created.Selectors; len(sel) != 2 || sel[0].EPR.Selector("InstanceID") != "testCertificate" ||
		sel[1].EPR.Selector("ElementName") != "TLSProtocolEndpoint Instances Collection" {
		t.Errorf("created %+v", m.Created)
	}

	m = parseFixture(t, "cim/software/identity/pull.xml")
	if len(m.Instances) != 11 || !m.EndOfSequence {
		t.Fatalf("%d items, end %v", len(m.Instances), m.EndOfSequence)
	}

	m = parseFixture(t, "cim/bios/element/get.xml")
	var bios CIMBIOSElement
	if err := Decode(&m.Instances[0], &bios); err != nil {
		t.Fatal(err)
	}
	if bios.ReleaseDate.Datetime == "" || bios.Version == "" {
		t.Errorf("BIOS %+v", bios)
	}

	// getuuid.xml: an unprefixed <UUID> in the SOAP default namespace.
	m = parseFixture(t, "amt/setupandconfiguration/getuuid.xml")
	var gu GetUuidOutput
	if err := Decode(m.Method, &gu); err != nil || gu.UUID != "E67jVdK/u2EXoIiu3XA36g==" {
		t.Errorf("GetUuid %+v %v", gu, err)
	}
	if name := ReturnValueName("AMT_SetupAndConfigurationService", 2057); name != "PT_STATUS_DATA_MISSING" {
		t.Errorf("2057 = %s", name)
	}
}

// The fault of spec/wsman.md §5 (go-wsman-messages amterror test shape).
func TestParseFault(t *testing.T) {
	body := `<?xml version="1.0" encoding="UTF-8"?><a:Envelope xmlns:a="http://www.w3.org/2003/05/soap-envelope" xmlns:b="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:c="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><a:Header><b:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</b:To><b:RelatesTo>1</b:RelatesTo><b:Action a:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/08/addressing/fault</b:Action><b:MessageID>uuid:00000000-8086-8086-8086-000000000061</b:MessageID></a:Header><a:Body><a:Fault><a:Code><a:Value>a:Sender</a:Value><a:Subcode><a:Value>b:DestinationUnreachable</a:Value></a:Subcode></a:Code><a:Reason><a:Text xml:lang="en-US">No route can be determined to reach the destination role defined by the WS-Addressing To.</a:Text></a:Reason><a:Detail></a:Detail></a:Fault></a:Body></a:Envelope>`
	m, err := ParseResponse([]byte(body))
	var f *Fault
	if !errors.As(err, &f) || m.Kind != KindFault {
		t.Fatalf("err %v kind %v", err, m)
	}
	if f.Code != "a:Sender" || f.Subcode != "b:DestinationUnreachable" || !strings.HasPrefix(f.Reason, "No route") || f.Detail != "" {
		t.Errorf("fault %+v", f)
	}
	// The writer produces the same shape.
	out := WriteFault(Reply{RelatesTo: "1", MessageID: 0x61}, f)
	_, err = ParseResponse(out)
	var f2 *Fault
	if !errors.As(err, &f2) || *f2 != *f {
		t.Errorf("written fault re-parses as %+v", f2)
	}
}

// Every fixture: parse → write in AMT's shape → parse gives the same data.
func TestRoundTripFixtures(t *testing.T) {
	for _, fx := range loadFixtures(t) {
		m, err := ParseResponse(fx.body)
		if err != nil {
			t.Fatalf("%s: %v", fx.rel, err)
		}
		r := Reply{Action: m.Header.Action, RelatesTo: m.Header.RelatesTo, ResourceURI: m.Header.ResourceURI, MessageID: 0x32E9}
		var out []byte
		switch m.Kind {
		case KindInstance:
			if len(m.Instances) != 1 {
				t.Fatalf("%s: %d instances", fx.rel, len(m.Instances))
			}
			out = WriteGetResponse(r, m.Instances[0])
		case KindPull:
			out = WritePullResponse(r, m.Instances, m.EnumerationContext, m.EndOfSequence)
		case KindEnumerate:
			out = WriteEnumerateResponse(r, m.EnumerationContext)
		case KindMethod:
			out = WriteMethodResponse(r, *m.Method)
		case KindCreated:
			out = WriteCreatedResponse(r, *m.Created)
		case KindEmpty:
			out = WriteEmptyResponse(r)
		default:
			t.Fatalf("%s: kind %v", fx.rel, m.Kind)
		}
		m2, err := ParseResponse(out)
		if err != nil {
			t.Fatalf("%s: written response does not parse: %v\n%s", fx.rel, err, out)
		}
		if m2.Header.MessageID != "uuid:00000000-8086-8086-8086-0000000032E9" || m2.Header.RelatesTo != m.Header.RelatesTo ||
			m2.Header.Action != m.Header.Action || m2.Header.ResourceURI != m.Header.ResourceURI {
			t.Fatalf("%s: header %+v", fx.rel, m2.Header)
		}
		// Pull round trip keeps the context only when not at the end, as AMT does.
		if m.Kind == KindPull && m.EndOfSequence {
			m.EnumerationContext = ""
		}
		m2.Header, m.Header = Header{}, Header{}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("%s: round trip changed the message\nbefore %+v\nafter  %+v", fx.rel, m, m2)
		}
	}
}

func TestHostileInput(t *testing.T) {
	deep := `<Envelope xmlns="` + NSSOAP + `"><Body>` + strings.Repeat("<x>", 100) + strings.Repeat("</x>", 100) + `</Body></Envelope>`
	if _, err := ParseResponse([]byte(deep)); !errors.Is(err, ErrTooDeep) {
		t.Errorf("deep nesting: %v", err)
	}
	big := make([]byte, MaxEnvelopeBytes+1)
	if _, err := ParseResponse(big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversize: %v", err)
	}
	wide := `<Envelope xmlns="` + NSSOAP + `"><Body><x>` + strings.Repeat("<y/>", maxElements) + `</x></Body></Envelope>`
	if _, err := ParseResponse([]byte(wide)); !errors.Is(err, ErrTooDeep) {
		t.Errorf("too many elements: %v", err)
	}
	for _, bad := range []string{
		"", "not xml", `<Envelope><Body/></Envelope>`,
		`<!DOCTYPE x [<!ENTITY a "aaaa">]><Envelope xmlns="` + NSSOAP + `"><Body/></Envelope>`,
		`<Envelope xmlns="` + NSSOAP + `"><Header/></Envelope>`,
		`<?xml version="1.0" encoding="ISO-8859-1"?><Envelope xmlns="` + NSSOAP + `"><Body/></Envelope>`,
	} {
		if _, err := ParseResponse([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
