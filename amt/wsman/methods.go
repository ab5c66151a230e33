package wsman

import "amtd/secret"

// Method inputs used by activation, configuration and the console
// (spec/wsman.md §6, spec/activation.md §3–§10). Field order is wire order:
// "parameter order inside _INPUT follows the class schema … field order
// matters in practice". Pass Params() to Builder.Invoke or Client.Invoke.

// ParamsOf encodes a method-input struct as parameters in field order.
func ParamsOf(v any) []Property { return Encode(v, "", "").Props }

// SetupInput is IPS_HostBasedSetupService.Setup (CCM activation).
type SetupInput struct {
	NetAdminPassEncryptionType int          // 2 = HTTP-Digest MD5 A1
	NetworkAdminPassword       secret.Value // digest.HA1Hex("admin", realm, password)
}

// AddNextCertInChainInput is IPS_HostBasedSetupService.AddNextCertInChain.
type AddNextCertInChainInput struct {
	NextCertificate   string // base64 DER, no PEM armour, no line breaks
	IsLeafCertificate bool
	IsRootCertificate bool
}

// AdminSetupInput is IPS_HostBasedSetupService.AdminSetup (ACM).
type AdminSetupInput struct {
	NetAdminPassEncryptionType int
	NetworkAdminPassword       secret.Value
	McNonce                    string // base64 of 20 random bytes
	SigningAlgorithm           int    // 2 = RSASHA2256
	DigitalSignature           string // base64
}

// UpgradeClientToAdminInput is IPS_HostBasedSetupService.UpgradeClientToAdmin.
type UpgradeClientToAdminInput struct {
	McNonce          string
	SigningAlgorithm int
	DigitalSignature string
}

// SetMEBxPasswordInput is AMT_SetupAndConfigurationService.SetMEBxPassword.
type SetMEBxPasswordInput struct {
	Password secret.Value // plain text
}

// UnprovisionInput is AMT_SetupAndConfigurationService.Unprovision.
type UnprovisionInput struct {
	ProvisioningMode int // 1 for both CCM and ACM
}

// SetAdminAclEntryExInput is AMT_AuthorizationService.SetAdminAclEntryEx.
type SetAdminAclEntryExInput struct {
	Username       string
	DigestPassword secret.Value // digest.HA1Base64("admin", realm, password)
}

// GenerateKeyPairInput is AMT_PublicKeyManagementService.GenerateKeyPair.
type GenerateKeyPairInput struct {
	KeyAlgorithm int // 0 = RSA
	KeyLength    int // 2048
}

// AddCertificateInput is AddCertificate and AddTrustedRootCertificate of
// AMT_PublicKeyManagementService.
type AddCertificateInput struct {
	CertificateBlob string // base64 DER
}

// SetHighAccuracyTimeSynchInput is AMT_TimeSynchronizationService.SetHighAccuracyTimeSynch.
type SetHighAccuracyTimeSynchInput struct {
	Ta0 int64 // from GetLowAccuracyTimeSynch
	Tm1 int64 // now, Unix seconds
	Tm2 int64 // now, Unix seconds
}

// AddMpServerInput is AMT_RemoteAccessService.AddMpServer.
type AddMpServerInput struct {
	AccessInfo  string       // IP or FQDN, ≤ 256
	InfoFormat  int          // 3 IPv4, 4 IPv6, 201 FQDN
	Port        int          // 4433
	AuthMethod  int          // 1 mutual, 2 user/password
	Username    string       `wsman:",omitempty"`
	Password    secret.Value `wsman:",omitempty"`
	CN          string
	Certificate *EPR `wsman:",omitempty"` // mutual authentication only
}

// AddRemoteAccessPolicyRuleInput is AMT_RemoteAccessService.AddRemoteAccessPolicyRule.
type AddRemoteAccessPolicyRuleInput struct {
	Trigger        int    // 0 user-initiated, 1 alert, 2 periodic, 3 home-provisioning
	TunnelLifeTime int    // 0 = stay up
	ExtendedData   string // base64, e.g. "AAAAAAAAABk=" = every 25 s
	MpServer       EPR    // AMT_ManagementPresenceRemoteSAP by Name
}

// SendOptInCodeInput is IPS_OptInService.SendOptInCode.
type SendOptInCodeInput struct {
	OptInCode int
}

// RequestPowerStateChangeInput is CIM_PowerManagementService.RequestPowerStateChange.
type RequestPowerStateChangeInput struct {
	PowerState     int // DMTF 2–17
	ManagedElement EPR // CIM_ComputerSystem ManagedSystem
}

// ReadRecordsInput is AMT_AuditLog.ReadRecords.
type ReadRecordsInput struct {
	StartIndex int // 1-based
}

// GetRecordsInput is AMT_MessageLog.GetRecords.
type GetRecordsInput struct {
	IterationIdentifier int
	MaxReadRecords      int
}

// ManagedSystem is the CIM_ComputerSystem EPR that power changes target.
func ManagedSystem() EPR {
	return EPR{Address: AnonymousAddress, ResourceURI: BaseCIM + "CIM_ComputerSystem", Selectors: []Selector{
		{Name: "CreationClassName", Value: "CIM_ComputerSystem"}, {Name: "Name", Value: "ManagedSystem"},
	}}
}

// Params returns the wire parameters.
func (in SetupInput) Params() []Property { return ParamsOf(in) }

// Params returns the wire parameters.
func (in AddNextCertInChainInput) Params() []Property { return ParamsOf(in) }

// Params returns the wire parameters.
func (in AdminSetupInput) Params() []Property { return ParamsOf(in) }

// Params returns the wire parameters.
func (in UpgradeClientToAdminInput) Params() []Property { return ParamsOf(in) }

// Params returns the wire parameters.
func (in SetMEBxPasswordInput) Params() []Property { return ParamsOf(in) }

// Params returns the wire parameters.
func (in UnprovisionInput) Params() []Property { return ParamsOf(in) }

// Params returns the wire parameters.
func (in SetAdminAclEntryExInput) Params() []Property { return ParamsOf(in) }

// Params returns the wire parameters.
func (in GenerateKeyPairInput) Params() []Property { return ParamsOf(in) }

// Params returns the wire parameters.
func (in AddCertificateInput) Params() []Property { return ParamsOf(in) }

// Params returns the wire parameters.
func (in SetHighAccuracyTimeSynchInput) Params() []Property { return ParamsOf(in) }

// Params returns the wire parameters.
func (in AddMpServerInput) Params() []Property { return ParamsOf(in) }

// Params returns the wire parameters.
func (in AddRemoteAccessPolicyRuleInput) Params() []Property { return ParamsOf(in) }

// Params returns the wire parameters.
func (in SendOptInCodeInput) Params() []Property { return ParamsOf(in) }

// Params returns the wire parameters.
func (in RequestPowerStateChangeInput) Params() []Property { return ParamsOf(in) }

// Params returns the wire parameters.
func (in ReadRecordsInput) Params() []Property { return ParamsOf(in) }

// Params returns the wire parameters.
func (in GetRecordsInput) Params() []Property { return ParamsOf(in) }
