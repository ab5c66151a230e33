package amtsim

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"amtd/amt/wsman"
)

// classHandler serves one class. A nil instances func serves the fixture
// instances (with any Put overlay); nil put/create/delete refuse the
// operation with the fault AMT gives for an unsupported action.
type classHandler struct {
	instances func(d *Device) []wsman.Instance
	put       func(d *Device, body *wsman.Instance, sel []wsman.Selector) *wsman.Fault
	create    func(d *Device, body *wsman.Instance) (*wsman.EPR, *wsman.Fault)
	delete    func(d *Device, sel []wsman.Selector) *wsman.Fault
	methods   map[string]method
}

// method runs a class method and returns its output properties (ReturnValue
// included, in the order AMT writes them).
type method func(d *Device, in *wsman.Instance, sess Session) []wsman.Property

// The class table is built on first use: its handlers reach the server,
// which reads the table, so it cannot be a package initializer.
var (
	handlersOnce sync.Once
	handlerTable map[string]*classHandler
)

func classHandlers() map[string]*classHandler {
	handlersOnce.Do(func() { handlerTable = classTable() })
	return handlerTable
}

func uriOf(class string) string {
	u, _ := wsman.ResourceURI(class)
	return u
}

func prop(class, name, value string) wsman.Property {
	return wsman.Property{Name: name, Namespace: uriOf(class), Value: value}
}

func rv(class string, code int) wsman.Property { return prop(class, "ReturnValue", strconv.Itoa(code)) }

func eprProp(class, name string, e wsman.EPR) wsman.Property {
	return wsman.Property{Name: name, Namespace: uriOf(class), EPR: &e}
}

func instanceEPR(class string, sel ...wsman.Selector) wsman.EPR {
	return wsman.EPR{Address: wsman.AnonymousAddress, ResourceURI: uriOf(class), Selectors: sel}
}

func atoi(s string) int {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return -1
	}
	return n
}

func boolStr(b bool) string { return strconv.FormatBool(b) }

func faultInvalidSelectors(class string) *wsman.Fault {
	return &wsman.Fault{Code: "a:Sender", Subcode: "c:InvalidSelectors", Reason: "The Selectors for the resource were not valid.", Class: class}
}

func faultActionNotSupported(class, action string) *wsman.Fault {
	return &wsman.Fault{Code: "a:Sender", Subcode: "b:ActionNotSupported", Reason: "The action is not supported by the service.", Class: class, Action: action}
}

func faultInvalidRepresentation(class, why string) *wsman.Fault {
	return &wsman.Fault{Code: "a:Sender", Subcode: "c:InvalidRepresentation", Reason: "The XML content was invalid. " + why, Class: class}
}

// instancesOf returns the instances the device reports for class: from its
// handler, else from the fixture (or a Put overlay).
func (d *Device) instancesOf(class string) ([]wsman.Instance, bool) {
	if h, ok := classHandlers()[class]; ok && h.instances != nil {
		return h.instances(d), true
	}
	d.mu.Lock()
	ov, ok := d.s.Overlays[class]
	d.mu.Unlock()
	if ok {
		out := make([]wsman.Instance, len(ov))
		for i := range ov {
			out[i] = cloneInstance(ov[i])
		}
		return out, true
	}
	ts, _ := loadTemplates()
	if _, ok := ts.byClass[class]; !ok {
		_, handled := classHandlers()[class]
		return nil, handled
	}
	return ts.instances(class), true
}

// overlayOr returns the stored Put overlay of class, else the fixture.
func (d *Device) overlayOr(class string) []wsman.Instance {
	d.mu.Lock()
	ov, ok := d.s.Overlays[class]
	d.mu.Unlock()
	if ok {
		out := make([]wsman.Instance, len(ov))
		for i := range ov {
			out[i] = cloneInstance(ov[i])
		}
		return out
	}
	ts, _ := loadTemplates()
	return ts.instances(class)
}

// matchSelectors picks the instance whose properties equal every selector;
// with no selectors, the first (singletons need none, spec/wsman.md §4).
func matchSelectors(ins []wsman.Instance, sel []wsman.Selector) int {
	if len(sel) == 0 {
		if len(ins) == 0 {
			return -1
		}
		return 0
	}
	for i := range ins {
		ok := true
		for _, s := range sel {
			if s.EPR != nil {
				continue
			}
			if v, has := ins[i].Get(s.Name); !has || v != s.Value {
				ok = false
				break
			}
		}
		if ok {
			return i
		}
	}
	return -1
}

// readOnly lists properties a Put cannot change.
var readOnly = map[string]bool{"DigestRealm": true, "HostOSFQDN": true, "InstanceID": true, "CreationClassName": true,
	"SystemCreationClassName": true, "SystemName": true, "Name": true, "ElementName": true, "MACAddress": true}

// merge writes the body's writable properties into in, keeping in's order.
func merge(in *wsman.Instance, body *wsman.Instance) {
	seen := map[string]bool{}
	for _, p := range body.Props {
		if readOnly[p.Name] || seen[p.Name] {
			continue
		}
		seen[p.Name] = true
		in.Set(p.Name, body.Values(p.Name)...)
	}
}

// genericPut stores a Put on a class the simulator serves from its fixture.
func genericPut(class string) func(d *Device, body *wsman.Instance, sel []wsman.Selector) *wsman.Fault {
	return func(d *Device, body *wsman.Instance, sel []wsman.Selector) *wsman.Fault {
		ins := d.overlayOr(class)
		i := matchSelectors(ins, sel)
		if i < 0 {
			return faultInvalidSelectors(class)
		}
		merge(&ins[i], body)
		d.mu.Lock()
		d.setOverlayLocked(class, ins)
		if class == "AMT_GeneralSettings" {
			d.s.HostName = ins[i].Value("HostName")
			d.s.DomainName = ins[i].Value("DomainName")
		}
		d.commitLocked()
		d.mu.Unlock()
		return nil
	}
}

func classTable() map[string]*classHandler {
	t := map[string]*classHandler{
		"AMT_GeneralSettings": {instances: generalSettings, put: genericPut("AMT_GeneralSettings")},
		"AMT_SetupAndConfigurationService": {instances: setupAndConfiguration, methods: map[string]method{
			"SetMEBxPassword": func(d *Device, in *wsman.Instance, _ Session) []wsman.Property {
				return []wsman.Property{rv("AMT_SetupAndConfigurationService", d.SetMEBxPassword(in.Value("Password")))}
			},
			"CommitChanges": func(d *Device, _ *wsman.Instance, s Session) []wsman.Property {
				return []wsman.Property{rv("AMT_SetupAndConfigurationService", d.CommitChanges(s))}
			},
			"Unprovision": func(d *Device, in *wsman.Instance, _ Session) []wsman.Property {
				return []wsman.Property{rv("AMT_SetupAndConfigurationService", d.Unprovision(atoi(in.Value("ProvisioningMode"))))}
			},
			"GetUuid": func(d *Device, _ *wsman.Instance, _ Session) []wsman.Property {
				raw := d.UUID.SMBIOS()
				return []wsman.Property{prop("AMT_SetupAndConfigurationService", "UUID", base64.StdEncoding.EncodeToString(raw[:])),
					rv("AMT_SetupAndConfigurationService", 0)}
			},
		}},
		"IPS_HostBasedSetupService": {instances: hostBasedSetup, methods: map[string]method{
			"Setup": func(d *Device, in *wsman.Instance, _ Session) []wsman.Property {
				return []wsman.Property{rv("IPS_HostBasedSetupService", d.Setup(atoi(in.Value("NetAdminPassEncryptionType")), in.Value("NetworkAdminPassword")))}
			},
			"AddNextCertInChain": func(d *Device, in *wsman.Instance, _ Session) []wsman.Property {
				der, err := base64.StdEncoding.DecodeString(in.Value("NextCertificate"))
				code := hbsInvalidParam
				if err == nil {
					code = d.AddNextCertInChain(der, in.Value("IsLeafCertificate") == "true", in.Value("IsRootCertificate") == "true")
				}
				return []wsman.Property{rv("IPS_HostBasedSetupService", code)}
			},
			"AdminSetup": func(d *Device, in *wsman.Instance, _ Session) []wsman.Property {
				mc, err1 := base64.StdEncoding.DecodeString(in.Value("McNonce"))
				sig, err2 := base64.StdEncoding.DecodeString(in.Value("DigitalSignature"))
				code := hbsInvalidParam
				if err1 == nil && err2 == nil {
					code = d.AdminSetup(atoi(in.Value("NetAdminPassEncryptionType")), in.Value("NetworkAdminPassword"), mc, atoi(in.Value("SigningAlgorithm")), sig)
				}
				return []wsman.Property{rv("IPS_HostBasedSetupService", code)}
			},
			"UpgradeClientToAdmin": func(d *Device, in *wsman.Instance, _ Session) []wsman.Property {
				mc, err1 := base64.StdEncoding.DecodeString(in.Value("McNonce"))
				sig, err2 := base64.StdEncoding.DecodeString(in.Value("DigitalSignature"))
				code := hbsInvalidParam
				if err1 == nil && err2 == nil {
					code = d.UpgradeClientToAdmin(mc, atoi(in.Value("SigningAlgorithm")), sig)
				}
				return []wsman.Property{rv("IPS_HostBasedSetupService", code)}
			},
		}},
		"AMT_AuthorizationService": {methods: map[string]method{
			"SetAdminAclEntryEx": func(d *Device, in *wsman.Instance, _ Session) []wsman.Property {
				return []wsman.Property{rv("AMT_AuthorizationService", d.SetAdminAclEntryEx(in.Value("Username"), in.Value("DigestPassword")))}
			},
		}},
		"AMT_PublicKeyManagementService": {methods: map[string]method{
			"GenerateKeyPair": func(d *Device, in *wsman.Instance, _ Session) []wsman.Property {
				id, code := d.GenerateKeyPair(atoi(in.Value("KeyAlgorithm")), atoi(in.Value("KeyLength")))
				return withEPR("AMT_PublicKeyManagementService", "KeyPair", "AMT_PublicPrivateKeyPair", id, code)
			},
			"AddCertificate": func(d *Device, in *wsman.Instance, _ Session) []wsman.Property {
				id, code := d.AddCertificate(in.Value("CertificateBlob"))
				return withEPR("AMT_PublicKeyManagementService", "CreatedCertificate", "AMT_PublicKeyCertificate", id, code)
			},
			"AddTrustedRootCertificate": func(d *Device, in *wsman.Instance, _ Session) []wsman.Property {
				id, code := d.AddTrustedRootCertificate(in.Value("CertificateBlob"))
				return withEPR("AMT_PublicKeyManagementService", "CreatedCertificate", "AMT_PublicKeyCertificate", id, code)
			},
		}},
		"AMT_PublicPrivateKeyPair": {instances: keyPairs, delete: func(d *Device, sel []wsman.Selector) *wsman.Fault {
			if !d.deleteKey(selValue(sel, "InstanceID")) {
				return faultInvalidSelectors("AMT_PublicPrivateKeyPair")
			}
			return nil
		}},
		"AMT_PublicKeyCertificate": {instances: certificates, delete: func(d *Device, sel []wsman.Selector) *wsman.Fault {
			if !d.deleteCert(selValue(sel, "InstanceID")) {
				return faultInvalidSelectors("AMT_PublicKeyCertificate")
			}
			return nil
		}},
		"AMT_TLSCredentialContext": {instances: tlsCredentialContext,
			create: func(d *Device, body *wsman.Instance) (*wsman.EPR, *wsman.Fault) {
				id := body.EPR("ElementInContext").Selector("InstanceID")
				if !d.setTLSCredential(id) {
					return nil, faultInvalidRepresentation("AMT_TLSCredentialContext", "ElementInContext names no certificate with a key in the store.")
				}
				e := instanceEPR("AMT_TLSCredentialContext", wsman.Selector{Name: "ElementInContext", Value: id})
				return &e, nil
			},
			put: func(d *Device, body *wsman.Instance, _ []wsman.Selector) *wsman.Fault {
				id := body.EPR("ElementInContext").Selector("InstanceID")
				if !d.setTLSCredential(id) {
					return faultInvalidRepresentation("AMT_TLSCredentialContext", "ElementInContext names no certificate with a key in the store.")
				}
				return nil
			},
			delete: func(d *Device, _ []wsman.Selector) *wsman.Fault {
				d.setTLSCredential("")
				return nil
			}},
		"AMT_TLSSettingData": {instances: tlsSettingData, put: putTLSSettingData},
		"AMT_TimeSynchronizationService": {methods: map[string]method{
			"GetLowAccuracyTimeSynch": func(d *Device, _ *wsman.Instance, _ Session) []wsman.Property {
				return []wsman.Property{prop("AMT_TimeSynchronizationService", "Ta0", strconv.FormatInt(d.Time(), 10)), rv("AMT_TimeSynchronizationService", 0)}
			},
			"SetHighAccuracyTimeSynch": func(d *Device, in *wsman.Instance, _ Session) []wsman.Property {
				ta0, _ := strconv.ParseInt(in.Value("Ta0"), 10, 64)
				tm1, _ := strconv.ParseInt(in.Value("Tm1"), 10, 64)
				tm2, _ := strconv.ParseInt(in.Value("Tm2"), 10, 64)
				return []wsman.Property{rv("AMT_TimeSynchronizationService", d.SetHighAccuracyTimeSynch(ta0, tm1, tm2))}
			},
		}},
		"AMT_RemoteAccessService": {instances: remoteAccessService, methods: map[string]method{
			"AddMpServer": func(d *Device, in *wsman.Instance, _ Session) []wsman.Property {
				name, code := d.AddMpServer(MPServer{AccessInfo: in.Value("AccessInfo"), InfoFormat: atoi(in.Value("InfoFormat")), Port: atoi(in.Value("Port")),
					AuthMethod: atoi(in.Value("AuthMethod")), Username: in.Value("Username"), Password: in.Value("Password"), CN: in.Value("CN")})
				out := []wsman.Property{}
				if code == 0 {
					out = append(out, eprProp("AMT_RemoteAccessService", "MpServer", instanceEPR("AMT_ManagementPresenceRemoteSAP", sapSelectors(name)...)))
				}
				return append(out, rv("AMT_RemoteAccessService", code))
			},
			"AddRemoteAccessPolicyRule": func(d *Device, in *wsman.Instance, _ Session) []wsman.Property {
				name, code := d.AddRemoteAccessPolicyRule(atoi(in.Value("Trigger")), atoi(in.Value("TunnelLifeTime")), in.Value("ExtendedData"),
					in.EPR("MpServer").Selector("Name"))
				out := []wsman.Property{}
				if code == 0 {
					out = append(out, eprProp("AMT_RemoteAccessService", "PolicyRule", instanceEPR("AMT_RemoteAccessPolicyRule", ruleSelectors(name)...)))
				}
				return append(out, rv("AMT_RemoteAccessService", code))
			},
		}},
		"AMT_ManagementPresenceRemoteSAP": {instances: mpServers, delete: func(d *Device, sel []wsman.Selector) *wsman.Fault {
			if !d.deleteMPServer(selValue(sel, "Name")) {
				return faultInvalidSelectors("AMT_ManagementPresenceRemoteSAP")
			}
			return nil
		}},
		"AMT_RemoteAccessPolicyRule": {instances: policyRules, delete: func(d *Device, sel []wsman.Selector) *wsman.Fault {
			if !d.deletePolicyRule(selValue(sel, "PolicyRuleName")) {
				return faultInvalidSelectors("AMT_RemoteAccessPolicyRule")
			}
			return nil
		}},
		"AMT_RemoteAccessPolicyAppliesToMPS": {instances: policyAppliesToMPS, put: putPolicyAppliesToMPS},
		"AMT_UserInitiatedConnectionService": {instances: func(d *Device) []wsman.Instance {
			return enabledStateInstance(d, "AMT_UserInitiatedConnectionService", func(s *Settings) int { return s.UserInitConn })
		}, methods: stateChange("AMT_UserInitiatedConnectionService")},
		"AMT_EnvironmentDetectionSettingData": {instances: environmentDetection, put: func(d *Device, body *wsman.Instance, _ []wsman.Selector) *wsman.Fault {
			d.mu.Lock()
			d.s.Detection = slices.DeleteFunc(body.Values("DetectionStrings"), func(s string) bool { return strings.TrimSpace(s) == "" })
			d.commitLocked()
			d.mu.Unlock()
			go d.ciraReconcile()
			return nil
		}},
		"AMT_RedirectionService": {instances: redirectionService, methods: stateChange("AMT_RedirectionService"),
			put: func(d *Device, body *wsman.Instance, _ []wsman.Selector) *wsman.Fault {
				if v, ok := body.Get("ListenerEnabled"); ok {
					d.mu.Lock()
					d.s.RedirListener = v == "true"
					d.commitLocked()
					d.mu.Unlock()
				}
				return nil
			}},
		"CIM_KVMRedirectionSAP": {instances: kvmSAP, methods: stateChange("CIM_KVMRedirectionSAP")},
		"IPS_OptInService":      {instances: optInService, put: putOptIn, methods: optInMethods()},
		"CIM_SoftwareIdentity":  {instances: softwareIdentity},
		"CIM_AssociatedPowerManagementService": {instances: func(d *Device) []wsman.Instance {
			ts, _ := loadTemplates()
			ins := ts.instances("CIM_AssociatedPowerManagementService")
			for i := range ins {
				setProp(&ins[i], "PowerState", strconv.Itoa(d.PowerState()))
			}
			return ins
		}},
		"CIM_PowerManagementService": {methods: map[string]method{
			"RequestPowerStateChange": func(d *Device, in *wsman.Instance, _ Session) []wsman.Property {
				return []wsman.Property{rv("CIM_PowerManagementService", d.RequestPowerStateChange(atoi(in.Value("PowerState"))))}
			},
		}},
	}
	// Classes the console API reads and drives, one file each:
	// settings, boot and power (classes_settings.go), logs, consent and
	// alarms (classes_logs.go).
	addSettingsClasses(t)
	addLogClasses(t)
	addDisplayClasses(t)     // KVM screens (classes_displays.go)
	addNetworkSyncClasses(t) // AMT_EthernetPortSettings (network_sync.go)
	return t
}

func selValue(sel []wsman.Selector, name string) string {
	for _, s := range sel {
		if s.Name == name {
			return s.Value
		}
	}
	return ""
}

func withEPR(class, name, target, id string, code int) []wsman.Property {
	if code != 0 {
		return []wsman.Property{rv(class, code)}
	}
	return []wsman.Property{eprProp(class, name, instanceEPR(target, wsman.Selector{Name: "InstanceID", Value: id})), rv(class, code)}
}

func stateChange(class string) map[string]method {
	return map[string]method{"RequestStateChange": func(d *Device, in *wsman.Instance, _ Session) []wsman.Property {
		return []wsman.Property{rv(class, d.requestStateChange(class, atoi(in.Value("RequestedState"))))}
	}}
}

func generalSettings(d *Device) []wsman.Instance {
	ins := d.overlayOr("AMT_GeneralSettings")
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range ins {
		setProp(&ins[i], "DigestRealm", d.s.Realm)
		setProp(&ins[i], "HostName", d.s.HostName)
		setProp(&ins[i], "DomainName", d.s.DomainName)
		setProp(&ins[i], "HostOSFQDN", strings.TrimSuffix(d.s.HostName+"."+d.s.DomainName, "."))
	}
	return ins
}

func setupAndConfiguration(d *Device) []wsman.Instance {
	ts, _ := loadTemplates()
	in := ts.template("AMT_SetupAndConfigurationService")
	d.mu.Lock()
	defer d.mu.Unlock()
	// ProvisioningMode: 1 admin, 4 client (spec/wsman.md §6); pre-provisioning reports 1.
	mode := 1
	if d.s.ControlMode == ModeCCM {
		mode = 4
	}
	setProp(&in, "ProvisioningMode", strconv.Itoa(mode))
	setProp(&in, "ProvisioningState", strconv.Itoa(d.s.ProvisioningState))
	setProp(&in, "ZeroTouchConfigurationEnabled", boolStr(d.s.RemoteConfigEnabled))
	return []wsman.Instance{in}
}

func hostBasedSetup(d *Device) []wsman.Instance {
	ts, _ := loadTemplates()
	in := ts.template("IPS_HostBasedSetupService")
	d.mu.Lock()
	defer d.mu.Unlock()
	// AllowedControlModes stays as firmware reports it (2 and 1, even in
	// ACM, per the fixture).
	setProp(&in, "ConfigurationNonce", base64.StdEncoding.EncodeToString(d.s.ConfigurationNonce))
	setProp(&in, "CurrentControlMode", strconv.Itoa(d.s.ControlMode))
	return []wsman.Instance{in}
}

func keyPairs(d *Device) []wsman.Instance {
	ts, _ := loadTemplates()
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []wsman.Instance
	for _, kp := range d.s.Keys {
		k, err := kp.private()
		if err != nil {
			continue
		}
		in := ts.template("AMT_PublicPrivateKeyPair")
		setProp(&in, "DERKey", base64.StdEncoding.EncodeToString(x509.MarshalPKCS1PublicKey(&k.PublicKey)))
		setProp(&in, "InstanceID", kp.InstanceID)
		out = append(out, in)
	}
	return out
}

// amtDN renders a name the way AMT_PublicKeyCertificate shows it:
// attributes in certificate order, "C=…,O=…,CN=…".
func amtDN(n pkix.Name) string {
	short := map[string]string{"2.5.4.6": "C", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.3": "CN", "2.5.4.7": "L", "2.5.4.8": "ST"}
	var parts []string
	for _, rdn := range n.ToRDNSequence() {
		for _, a := range rdn {
			k, ok := short[a.Type.String()]
			if !ok {
				k = a.Type.String()
			}
			parts = append(parts, fmt.Sprintf("%s=%v", k, a.Value))
		}
	}
	return strings.Join(parts, ",")
}

func certificates(d *Device) []wsman.Instance {
	ts, _ := loadTemplates()
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []wsman.Instance
	for _, c := range d.s.Certs {
		cert, err := x509.ParseCertificate(c.DER)
		if err != nil {
			continue
		}
		in := ts.template("AMT_PublicKeyCertificate")
		setProp(&in, "InstanceID", c.InstanceID)
		setProp(&in, "Issuer", amtDN(cert.Issuer))
		setProp(&in, "Subject", amtDN(cert.Subject))
		setProp(&in, "TrustedRootCertficate", boolStr(c.TrustedRoot)) // AMT's spelling
		setProp(&in, "X509Certificate", base64.StdEncoding.EncodeToString(c.DER))
		out = append(out, in)
	}
	return out
}

func tlsCredentialContext(d *Device) []wsman.Instance {
	d.mu.Lock()
	id := d.s.TLSCredCert
	d.mu.Unlock()
	if id == "" {
		return nil
	}
	ts, _ := loadTemplates()
	in := ts.template("AMT_TLSCredentialContext")
	for i := range in.Props {
		if in.Props[i].Name == "ElementInContext" && in.Props[i].EPR != nil {
			e := *in.Props[i].EPR
			e.Selectors = []wsman.Selector{{Name: "InstanceID", Value: id}}
			in.Props[i].EPR = &e
		}
	}
	return []wsman.Instance{in}
}

const (
	tlsRemoteID = "Intel(r) AMT 802.3 TLS Settings"
	tlsLocalID  = "Intel(r) AMT LMS TLS Settings"
)

func tlsSettingData(d *Device) []wsman.Instance {
	ts, _ := loadTemplates()
	ins := ts.instances("AMT_TLSSettingData")
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range ins {
		s := d.s.TLSRemote
		if ins[i].Value("InstanceID") == tlsLocalID {
			s = d.s.TLSLocal
		}
		setProp(&ins[i], "AcceptNonSecureConnections", boolStr(s.AcceptNonSecure))
		setProp(&ins[i], "Enabled", boolStr(s.Enabled))
		setProp(&ins[i], "MutualAuthentication", boolStr(s.Mutual))
	}
	return ins
}

func putTLSSettingData(d *Device, body *wsman.Instance, sel []wsman.Selector) *wsman.Fault {
	id := selValue(sel, "InstanceID")
	if id == "" {
		id = body.Value("InstanceID")
	}
	d.mu.Lock()
	var s *TLSSetting
	switch id {
	case tlsRemoteID:
		s = &d.s.TLSRemote
	case tlsLocalID:
		s = &d.s.TLSLocal
	default:
		d.mu.Unlock()
		return faultInvalidSelectors("AMT_TLSSettingData")
	}
	if v, ok := body.Get("Enabled"); ok {
		s.Enabled = v == "true"
	}
	if v, ok := body.Get("MutualAuthentication"); ok {
		s.Mutual = v == "true"
	}
	if v, ok := body.Get("AcceptNonSecureConnections"); ok {
		s.AcceptNonSecure = v == "true"
	}
	d.commitLocked()
	d.mu.Unlock()
	return nil
}

func remoteAccessService(d *Device) []wsman.Instance {
	ts, _ := loadTemplates()
	in := ts.template("AMT_RemoteAccessService")
	setProp(&in, "IsRemoteTunnelConnected", boolStr(d.CIRAConnected()))
	return []wsman.Instance{in}
}

func sapSelectors(name string) []wsman.Selector {
	return []wsman.Selector{{Name: "CreationClassName", Value: "AMT_ManagementPresenceRemoteSAP"}, {Name: "Name", Value: name},
		{Name: "SystemCreationClassName", Value: "CIM_ComputerSystem"}, {Name: "SystemName", Value: "Intel(r) AMT"}}
}

func ruleSelectors(name string) []wsman.Selector {
	return []wsman.Selector{{Name: "CreationClassName", Value: "AMT_RemoteAccessPolicyRule"}, {Name: "PolicyRuleName", Value: name},
		{Name: "SystemCreationClassName", Value: "CIM_ComputerSystem"}, {Name: "SystemName", Value: "Intel(r) AMT"}}
}

func mpServers(d *Device) []wsman.Instance {
	ts, _ := loadTemplates()
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []wsman.Instance
	for _, m := range d.s.MPServers {
		in := ts.template("AMT_ManagementPresenceRemoteSAP")
		setProp(&in, "AccessInfo", m.AccessInfo)
		setProp(&in, "CN", m.CN)
		setProp(&in, "InfoFormat", strconv.Itoa(m.InfoFormat))
		setProp(&in, "Name", m.Name)
		setProp(&in, "Port", strconv.Itoa(m.Port))
		out = append(out, in)
	}
	return out
}

func policyRules(d *Device) []wsman.Instance {
	ts, _ := loadTemplates()
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []wsman.Instance
	for _, r := range d.s.PolicyRules {
		in := ts.template("AMT_RemoteAccessPolicyRule")
		setProp(&in, "ExtendedData", r.ExtendedData)
		setProp(&in, "PolicyRuleName", r.Name)
		setProp(&in, "Trigger", strconv.Itoa(r.Trigger))
		setProp(&in, "TunnelLifeTime", strconv.Itoa(r.TunnelLifeTime))
		out = append(out, in)
	}
	return out
}

func policyAppliesToMPS(d *Device) []wsman.Instance {
	ts, _ := loadTemplates()
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []wsman.Instance
	for _, r := range d.s.PolicyRules {
		in := ts.template("AMT_RemoteAccessPolicyAppliesToMPS")
		for i := range in.Props {
			p := &in.Props[i]
			switch {
			case p.Name == "ManagedElement" && p.EPR != nil:
				e := instanceEPR("AMT_ManagementPresenceRemoteSAP", sapSelectors(r.MpServer)...)
				p.EPR = &e
			case p.Name == "PolicySet" && p.EPR != nil:
				e := instanceEPR("AMT_RemoteAccessPolicyRule", ruleSelectors(r.Name)...)
				p.EPR = &e
			case p.Name == "MpsType":
				p.Value = strconv.Itoa(r.MpsType)
			case p.Name == "OrderOfAccess":
				p.Value = strconv.Itoa(r.OrderOfAccess)
			}
		}
		out = append(out, in)
	}
	return out
}

// putPolicyAppliesToMPS finds the rule from the PolicySet EPR (header
// selector or body) and stores MpsType and OrderOfAccess (spec/wsman.md §6).
func putPolicyAppliesToMPS(d *Device, body *wsman.Instance, sel []wsman.Selector) *wsman.Fault {
	name := body.EPR("PolicySet").Selector("PolicyRuleName")
	for _, s := range sel {
		if s.Name == "PolicySet" && s.EPR != nil {
			name = s.EPR.Selector("PolicyRuleName")
		}
	}
	mpsType, order := atoi(body.Value("MpsType")), atoi(body.Value("OrderOfAccess"))
	if mpsType < 0 || mpsType > 2 || order < 0 {
		return faultInvalidRepresentation("AMT_RemoteAccessPolicyAppliesToMPS", "MpsType must be 0–2.")
	}
	d.mu.Lock()
	i := slices.IndexFunc(d.s.PolicyRules, func(r PolicyRule) bool { return r.Name == name })
	if i < 0 {
		d.mu.Unlock()
		return faultInvalidSelectors("AMT_RemoteAccessPolicyAppliesToMPS")
	}
	d.s.PolicyRules[i].MpsType, d.s.PolicyRules[i].OrderOfAccess = mpsType, order
	d.commitLocked()
	d.mu.Unlock()
	return nil
}

func enabledStateInstance(d *Device, class string, get func(*Settings) int) []wsman.Instance {
	ts, _ := loadTemplates()
	in := ts.template(class)
	d.mu.Lock()
	defer d.mu.Unlock()
	setProp(&in, "EnabledState", strconv.Itoa(get(d.s)))
	return []wsman.Instance{in}
}

func environmentDetection(d *Device) []wsman.Instance {
	ts, _ := loadTemplates()
	in := ts.template("AMT_EnvironmentDetectionSettingData")
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.s.Detection) == 0 {
		dropProp(&in, "DetectionStrings")
	} else {
		setProp(&in, "DetectionStrings", d.s.Detection...)
	}
	return []wsman.Instance{in}
}

func redirectionService(d *Device) []wsman.Instance {
	ts, _ := loadTemplates()
	in := ts.template("AMT_RedirectionService")
	d.mu.Lock()
	defer d.mu.Unlock()
	setProp(&in, "EnabledState", strconv.Itoa(d.s.RedirectionState))
	setProp(&in, "ListenerEnabled", boolStr(d.s.RedirListener))
	return []wsman.Instance{in}
}

func kvmSAP(d *Device) []wsman.Instance {
	ts, _ := loadTemplates()
	in := ts.template("CIM_KVMRedirectionSAP")
	d.mu.Lock()
	defer d.mu.Unlock()
	// 6 = enabled but offline: KVM is on but the redirection listener is off.
	state := d.s.KVMState
	if state == 2 && !d.s.RedirListener {
		state = 6
	}
	setProp(&in, "EnabledState", strconv.Itoa(state))
	setProp(&in, "RequestedState", strconv.Itoa(d.s.KVMState))
	return []wsman.Instance{in}
}

func softwareIdentity(d *Device) []wsman.Instance {
	ts, _ := loadTemplates()
	ins := ts.instances("CIM_SoftwareIdentity")
	for i := range ins {
		switch ins[i].Value("InstanceID") {
		case "Flash", "Netstack", "AMTApps", "AMT", "Recovery Version", "AMT FW Core Version":
			setProp(&ins[i], "VersionString", d.Version.short())
		case "Build Number", "Recovery Build Num":
			setProp(&ins[i], "VersionString", strconv.Itoa(d.Version.Build))
		}
	}
	return ins
}
