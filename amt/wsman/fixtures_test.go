package wsman

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// fixtureDir finds ../shared/fixtures/wsman beside the repository root (the
// directory holding go.mod), as CI lays it out. Missing fixtures fail the
// test: they are the proof that the parser reads what firmware sends.
func fixtureDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
	fx := filepath.Join(dir, "..", "shared", "fixtures", "wsman")
	if _, err := os.Stat(fx); err != nil {
		t.Fatalf("WS-Man fixtures missing at %s (CI clones shared/ beside the repo): %v", fx, err)
	}
	return fx
}

type fixture struct {
	rel  string // e.g. ips/hostbasedsetup/get.xml
	body []byte
}

func loadFixtures(t testing.TB) []fixture {
	t.Helper()
	root := fixtureDir(t)
	var out []fixture
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".xml") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, fixture{rel: filepath.ToSlash(rel), body: b})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rel < out[j].rel })
	if len(out) < 297 {
		t.Fatalf("found %d fixture files under %s, want 297", len(out), root)
	}
	return out
}

// fixtureClass is the class each fixture directory is about: the
// ResourceURI the header must carry.
var fixtureClass = map[string]string{
	"amt/alarmclock": "AMT_AlarmClockService", "amt/asset": "AMT_AssetTableService", "amt/auditlog": "AMT_AuditLog",
	"amt/authorization": "AMT_AuthorizationService", "amt/boot/capabilities": "AMT_BootCapabilities",
	"amt/boot/settingdata": "AMT_BootSettingData", "amt/cryptographiccapabilities": "AMT_CryptographicCapabilities",
	"amt/environmentdetection": "AMT_EnvironmentDetectionSettingData", "amt/ethernetport": "AMT_EthernetPortSettings",
	"amt/eventlogentry": "AMT_EventLogEntry", "amt/general": "AMT_GeneralSettings", "amt/hdr8021filter": "AMT_Hdr8021Filter",
	"amt/ieee8021x/credentialcontext": "AMT_8021xCredentialContext", "amt/ieee8021x/profile": "AMT_8021XProfile",
	"amt/kerberos": "AMT_KerberosSettingData", "amt/managementpresence": "AMT_ManagementPresenceRemoteSAP",
	"amt/messagelog": "AMT_MessageLog", "amt/mps": "AMT_MPSUsernamePassword",
	"amt/publickey/certificate": "AMT_PublicKeyCertificate", "amt/publickey/management": "AMT_PublicKeyManagementService",
	"amt/publicprivate": "AMT_PublicPrivateKeyPair", "amt/redirectionservice": "AMT_RedirectionService",
	"amt/remoteaccess/capabilities":       "AMT_RemoteAccessCapabilities",
	"amt/remoteaccess/policyappliestomps": "AMT_RemoteAccessPolicyAppliesToMPS",
	"amt/remoteaccess/policyrule":         "AMT_RemoteAccessPolicyRule", "amt/remoteaccess/service": "AMT_RemoteAccessService",
	"amt/setupandconfiguration": "AMT_SetupAndConfigurationService", "amt/systempowerscheme": "AMT_SystemPowerScheme",
	"amt/timesynchronization": "AMT_TimeSynchronizationService", "amt/tls/credentialcontext": "AMT_TLSCredentialContext",
	"amt/tls/protocolendpointcollection": "AMT_TLSProtocolEndpointCollection", "amt/tls/settingdata": "AMT_TLSSettingData",
	"amt/userinitiatedconnection":           "AMT_UserInitiatedConnectionService",
	"amt/wifiportconfiguration":             "AMT_WiFiPortConfigurationService",
	"cim/associatedpower/managementservice": "CIM_AssociatedPowerManagementService", "cim/battery": "CIM_Battery",
	"cim/bios/element": "CIM_BIOSElement", "cim/bios/feature": "CIM_BIOSFeature", "cim/boot/configsetting": "CIM_BootConfigSetting",
	"cim/boot/service": "CIM_BootService", "cim/boot/sourcesetting": "CIM_BootSourceSetting", "cim/card": "CIM_Card",
	"cim/chassis": "CIM_Chassis", "cim/chip": "CIM_Chip", "cim/computer/systempackage": "CIM_ComputerSystemPackage",
	"cim/concrete/dependency": "CIM_ConcreteDependency", "cim/credential/context": "CIM_CredentialContext",
	"cim/ethernetport": "CIM_EthernetPort", "cim/fan": "CIM_Fan", "cim/ieee8021x/settings": "CIM_IEEE8021xSettings",
	"cim/kvm": "CIM_KVMRedirectionSAP", "cim/mediaaccess": "CIM_MediaAccessDevice", "cim/physical/memory": "CIM_PhysicalMemory",
	"cim/physical/package": "CIM_PhysicalPackage", "cim/physical/processor": "CIM_Processor",
	"cim/power/capabilities": "CIM_PowerManagementCapabilities", "cim/power/managementservice": "CIM_PowerManagementService",
	"cim/redirectionservice": "CIM_RedirectionService", "cim/sensor": "CIM_Sensor",
	"cim/service/availabletoelement": "CIM_ServiceAvailableToElement", "cim/software/identity": "CIM_SoftwareIdentity",
	"cim/system/packaging": "CIM_SystemPackaging", "cim/wifi/endpoint": "CIM_WiFiEndpoint",
	"cim/wifi/endpointcapabilities": "CIM_WiFiEndpointCapabilities", "cim/wifi/endpointsettings": "CIM_WiFiEndpointSettings",
	"cim/wifi/port": "CIM_WiFiPort", "cim/wifi/portcapabilities": "CIM_WiFiPortCapabilities",
	"ips/alarmclock": "IPS_AlarmClockOccurrence", "ips/hostbasedsetup": "IPS_HostBasedSetupService",
	"ips/hostbootreason": "IPS_HostBootReason", "ips/hostipsettings": "IPS_HostIPSettings", "ips/http": "IPS_HTTPProxyService",
	"ips/ieee8021x/credentialcontext": "IPS_8021xCredentialContext", "ips/ieee8021x/settings": "IPS_IEEE8021xSettings",
	"ips/ipv6portsettings": "IPS_IPv6PortSettings", "ips/kvmredirection/settings": "IPS_KVMRedirectionSettingData",
	"ips/lanendpoint": "IPS_LANEndpoint", "ips/optin": "IPS_OptInService", "ips/power/managementservice": "IPS_PowerManagementService",
	"ips/provisioningrecordlog": "IPS_ProvisioningRecordLog", "ips/screensetting": "IPS_ScreenSettingData",
	"ips/secio/service": "IPS_SecIOService",
}

// itemClass: Pulls whose items are a subclass or an associated class of
// the enumerated one (AMT answers CIM_PhysicalPackage with CIM_Card).
var itemClass = map[string]string{
	"CIM_PhysicalPackage":           "CIM_Card",
	"CIM_SystemPackaging":           "CIM_ComputerSystemPackage",
	"CIM_ServiceAvailableToElement": "CIM_AssociatedPowerManagementService",
}

// keyed reports whether a decoded struct has a non-empty identifying
// field: a key property, a name, or an association end.
func keyed(v any) bool {
	rv := reflect.Indirect(reflect.ValueOf(v))
	for _, f := range []string{"InstanceID", "Name", "CreationClassName", "ElementName", "DeviceID", "Tag", "PolicyRuleName"} {
		if fv := rv.FieldByName(f); fv.IsValid() && fv.Kind() == reflect.String && fv.String() != "" {
			return true
		}
	}
	for _, f := range []string{"Antecedent", "ManagedElement", "ElementInContext", "UserOfService"} {
		if fv := rv.FieldByName(f); fv.IsValid() && fv.Interface().(EPR).ResourceURI != "" {
			return true
		}
	}
	return false
}

// TestFixtures decodes every fixture into its typed struct and checks
// what each kind of response must carry.
func TestFixtures(t *testing.T) {
	fixtures := loadFixtures(t)
	for _, fx := range fixtures {
		t.Run(fx.rel, func(t *testing.T) {
			dir, file := filepath.Split(fx.rel)
			dir = strings.TrimSuffix(dir, "/")
			op := strings.TrimSuffix(file, ".xml")
			wantClass, ok := fixtureClass[dir]
			if !ok {
				t.Fatalf("no expected class for directory %s", dir)
			}
			m, err := ParseResponse(fx.body)
			if err != nil {
				t.Fatalf("ParseResponse: %v", err)
			}
			if got := m.Class(); got != wantClass {
				t.Fatalf("ResourceURI class %q, want %q", got, wantClass)
			}
			switch {
			case op == "enumerate":
				if m.Kind != KindEnumerate || m.EnumerationContext == "" {
					t.Fatalf("kind %v context %q", m.Kind, m.EnumerationContext)
				}
			case op == "pull":
				if m.Kind != KindPull {
					t.Fatalf("kind %v, want pull", m.Kind)
				}
				if !m.EndOfSequence && m.EnumerationContext == "" {
					t.Fatal("pull has neither EndOfSequence nor a context to continue")
				}
				if len(m.Instances) == 0 && dir != "amt/ieee8021x/credentialcontext" {
					t.Fatal("pull has no items")
				}
				want := wantClass
				if alt, ok := itemClass[wantClass]; ok {
					want = alt
				}
				for i := range m.Instances {
					it := &m.Instances[i]
					if it.Class != want {
						t.Fatalf("item %d class %q, want %q", i, it.Class, want)
					}
					checkTyped(t, it)
				}
			case op == "get" || op == "put" || strings.HasPrefix(op, "put"):
				if m.Kind == KindEmpty && op == "put" {
					return // Put answered with an empty body (AMT_MPSUsernamePassword, policy appliestomps)
				}
				if m.Kind != KindInstance || len(m.Instances) != 1 {
					t.Fatalf("kind %v with %d instances, want one instance", m.Kind, len(m.Instances))
				}
				if m.Instances[0].Class != wantClass && itemClass[wantClass] != m.Instances[0].Class {
					t.Fatalf("instance class %q, want %q", m.Instances[0].Class, wantClass)
				}
				checkTyped(t, &m.Instances[0])
			case op == "delete":
				switch m.Kind {
				case KindEmpty:
				case KindMethod: // cim/wifi/endpointsettings answers <g:ReturnValue>0</g:ReturnValue>
					code, ok, err := m.Method.ReturnValue()
					if err != nil || !ok || code != 0 {
						t.Fatalf("delete ReturnValue %d %v %v", code, ok, err)
					}
				default:
					t.Fatalf("kind %v, want empty", m.Kind)
				}
			case op == "create":
				if m.Kind != KindCreated || m.Created == nil || m.Created.ResourceURI == "" || len(m.Created.Selectors) == 0 {
					t.Fatalf("kind %v created %+v", m.Kind, m.Created)
				}
			default: // a method reply
				if m.Kind != KindMethod || m.Method == nil || !strings.HasSuffix(m.Method.Class, "_OUTPUT") {
					t.Fatalf("kind %v, want a method _OUTPUT", m.Kind)
				}
				if m.Method.Namespace != ResourceURIOf(wantClass) {
					t.Fatalf("output namespace %q, want %q", m.Method.Namespace, ResourceURIOf(wantClass))
				}
				v, err := DecodeInstance(m.Method)
				if err != nil {
					t.Fatal(err)
				}
				code, hasRV, err := m.Method.ReturnValue()
				if err != nil {
					t.Fatal(err)
				}
				if hasRV {
					typed := reflect.Indirect(reflect.ValueOf(v)).FieldByName("ReturnValue")
					if !typed.IsValid() || typed.Int() != int64(code) {
						t.Fatalf("typed ReturnValue %v, generic %d", typed, code)
					}
					if name := ReturnValueName(wantClass, code); name == "" {
						t.Fatal("no return value name")
					}
				} else if m.Method.Class != "GetUuid_OUTPUT" || m.Method.Value("UUID") == "" {
					t.Fatalf("%s has no ReturnValue", m.Method.Class)
				}
			}
		})
	}
}

// ResourceURIOf is ResourceURI for names known to be valid.
func ResourceURIOf(class string) string {
	u, err := ResourceURI(class)
	if err != nil {
		panic(err)
	}
	return u
}

func checkTyped(t *testing.T, in *Instance) {
	t.Helper()
	if !Registered(in.Class) {
		t.Fatalf("no typed struct registered for %s", in.Class)
	}
	v, err := DecodeInstance(in)
	if err != nil {
		t.Fatal(err)
	}
	if !keyed(v) {
		t.Fatalf("%s decoded with no identifying field: %+v", in.Class, v)
	}
	// Every property of the fixture landed in a typed field.
	fields := map[string]bool{}
	for _, f := range fieldsOf(reflect.Indirect(reflect.ValueOf(v)).Type()) {
		fields[f.name] = true
	}
	for _, p := range in.Props {
		if !fields[p.Name] {
			t.Errorf("%s: property %s has no typed field", in.Class, p.Name)
		}
	}
}
