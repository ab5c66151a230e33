// Code below was drafted from the property sets and values in the 297 fixture
// responses (shared/fixtures/wsman) and then reviewed; property types follow
// what AMT sends. Field order is the order AMT lists properties, which is
// also the order Encode writes them in a Put.

package wsman

// AddAlarmOutput is the output of AddAlarm.
type AddAlarmOutput struct {
	AlarmClock  EPR
	ReturnValue int64
}

// AMTAlarmClockService is an instance of AMT_AlarmClockService.
type AMTAlarmClockService struct {
	CreationClassName       string
	ElementName             string
	Name                    string
	SystemCreationClassName string
	SystemName              string
}

// AMTAssetTableService is an instance of AMT_AssetTableService.
type AMTAssetTableService struct {
	CreationClassName       string
	ElementName             string
	Name                    string
	SystemCreationClassName string
	SystemName              string
	TableTypes              []string
}

// AMTAuditLog is an instance of AMT_AuditLog.
type AMTAuditLog struct {
	AuditState             int64
	CurrentNumberOfRecords int64
	ElementName            string
	EnabledState           int64
	MaxAllowedAuditors     int64
	MaxNumberOfRecords     int64
	Name                   string
	OverwritePolicy        int64
	PercentageFree         int64
	RequestedState         int64
	StoragePolicy          int64
	TimeOfLastRecord       CIMDateTime
}

// ReadRecordsOutput is the output of ReadRecords.
type ReadRecordsOutput struct {
	TotalRecordCount int64
	RecordsReturned  int64
	EventRecords     []string
	ReturnValue      int64
}

// EnumerateUserAclEntriesOutput is the output of EnumerateUserAclEntries.
type EnumerateUserAclEntriesOutput struct {
	TotalCount   int64
	HandlesCount int64
	Handles      []int64
	ReturnValue  int64
}

// AMTAuthorizationService is an instance of AMT_AuthorizationService.
type AMTAuthorizationService struct {
	AllowHttpQopAuthOnly    int64
	CreationClassName       string
	ElementName             string
	EnabledState            int64
	Name                    string
	RequestedState          int64
	SystemCreationClassName string
	SystemName              string
}

// GetAclEnabledStateOutput is the output of GetAclEnabledState.
type GetAclEnabledStateOutput struct {
	Enabled     bool
	ReturnValue int64
}

// GetAdminAclEntryOutput is the output of GetAdminAclEntry.
type GetAdminAclEntryOutput struct {
	Username    string
	ReturnValue int64
}

// GetAdminAclEntryStatusOutput is the output of GetAdminAclEntryStatus.
type GetAdminAclEntryStatusOutput struct {
	IsDefault   bool
	ReturnValue int64
}

// GetAdminNetAclEntryStatusOutput is the output of GetAdminNetAclEntryStatus.
type GetAdminNetAclEntryStatusOutput struct {
	IsDefault   bool
	ReturnValue int64
}

// GetUserAclEntryExOutput is the output of GetUserAclEntryEx.
type GetUserAclEntryExOutput struct {
	DigestUsername   string
	AccessPermission int64
	Realms           string
	ReturnValue      int64
}

// RemoveUserAclEntryOutput is the output of RemoveUserAclEntry.
type RemoveUserAclEntryOutput struct {
	ReturnValue int64
}

// SetAclEnabledStateOutput is the output of SetAclEnabledState.
type SetAclEnabledStateOutput struct {
	ReturnValue int64
}

// SetAdminAclEntryExOutput is the output of SetAdminAclEntryEx.
type SetAdminAclEntryExOutput struct {
	ReturnValue int64
}

// AMTBootCapabilities is an instance of AMT_BootCapabilities.
type AMTBootCapabilities struct {
	BIOSPause                  bool
	BIOSReflash                bool
	BIOSSecureBoot             bool
	BIOSSetup                  bool
	ConfigurationDataReset     bool
	ElementName                string
	ForceCDorDVDBoot           bool
	ForceDiagnosticBoot        bool
	ForceHardDriveBoot         bool
	ForceHardDriveSafeModeBoot bool
	ForcePXEBoot               bool
	ForcedProgressEvents       bool
	IDER                       bool
	InstanceID                 string
	KeyboardLock               bool
	PowerButtonLock            bool
	ResetButtonLock            bool
	SOL                        bool
	SecureErase                bool
	SleepButtonLock            bool
	UserPasswordBypass         bool
	VerbosityQuiet             bool
	VerbosityScreenBlank       bool
	VerbosityVerbose           bool
}

// AMTBootSettingData is an instance of AMT_BootSettingData.
type AMTBootSettingData struct {
	BIOSLastStatus           []int64
	BIOSPause                bool
	BIOSSetup                bool
	BootMediaIndex           int64
	BootguardStatus          int64
	ConfigurationDataReset   bool
	ElementName              string
	EnforceSecureBoot        bool
	FirmwareVerbosity        int64
	ForcedProgressEvents     bool
	IDERBootDevice           int64
	InstanceID               string
	LockKeyboard             bool
	LockPowerButton          bool
	LockResetButton          bool
	LockSleepButton          bool
	OptionsCleared           bool
	OwningEntity             string
	PlatformErase            bool
	RPEEnabled               bool
	RSEPassword              string
	ReflashBIOS              bool
	SecureBootControlEnabled bool
	SecureErase              bool
	UEFIHTTPSBootEnabled     bool
	UEFILocalPBABootEnabled  bool
	UefiBootNumberOfParams   int64
	UseIDER                  bool
	UseSOL                   bool
	UseSafeMode              bool
	UserPasswordBypass       bool
	WinREBootEnabled         bool
}

// AMTCryptographicCapabilities is an instance of AMT_CryptographicCapabilities.
type AMTCryptographicCapabilities struct {
	ElementName          string
	HardwareAcceleration int64
	InstanceID           string
}

// AMTEnvironmentDetectionSettingData is an instance of AMT_EnvironmentDetectionSettingData.
type AMTEnvironmentDetectionSettingData struct {
	DetectionAlgorithm int64
	DetectionStrings   []string
	ElementName        string
	InstanceID         string
}

// AMTEthernetPortSettings is an instance of AMT_EthernetPortSettings.
type AMTEthernetPortSettings struct {
	DHCPEnabled                  bool
	DefaultGateway               string
	ElementName                  string
	InstanceID                   string
	IpSyncEnabled                bool
	LinkIsUp                     bool
	LinkPolicy                   []int64
	MACAddress                   string
	PhysicalConnectionType       int64
	PrimaryDNS                   string
	SecondaryDNS                 string
	SharedDynamicIP              bool
	SharedMAC                    bool
	SharedStaticIp               bool
	SubnetMask                   string
	ConsoleTcpMaxRetransmissions int64
	LinkControl                  int64
	LinkPreference               int64
	WLANLinkProtectionLevel      int64
	IPAddress                    string
}

// AMTEventLogEntry is an instance of AMT_EventLogEntry.
type AMTEventLogEntry struct {
	CreationClassName string
	DeviceAddress     string
	ElementName       string
	EventData         string
	EventSensorType   int64
	EventType         int64
	RecordID          string
	TimeStamp         int64
}

// AMTGeneralSettings is an instance of AMT_GeneralSettings.
type AMTGeneralSettings struct {
	AMTNetworkEnabled             int64
	DDNSPeriodicUpdateInterval    int64
	DDNSTTL                       int64
	DDNSUpdateByDHCPServerEnabled bool
	DDNSUpdateEnabled             bool
	DHCPSyncRequiresHostname      int64
	DHCPv6ConfigurationTimeout    int64
	DigestRealm                   string `wsman:",readonly"`
	DomainName                    string
	ElementName                   string
	HostName                      string
	HostOSFQDN                    string `wsman:",readonly"`
	IdleWakeTimeout               int64
	InstanceID                    string
	NetworkInterfaceEnabled       bool
	PingResponseEnabled           bool
	PowerSource                   int64
	PreferredAddressFamily        int64
	PresenceNotificationInterval  int64
	PrivacyLevel                  int64
	RmcpPingResponseEnabled       bool
	SharedFQDN                    bool
	ThunderboltDockEnabled        int64
	WsmanOnlyMode                 bool
}

// AMTHdr8021Filter is an instance of AMT_Hdr8021Filter.
type AMTHdr8021Filter struct {
	CreationClassName       string
	ElementName             string
	FilterDirection         int64
	FilterEnabled           bool
	Name                    string
	SystemCreationClassName string
	SystemName              string
	VLANPriority            int64
	VLANID                  int64
}

// AMT8021XProfile is an instance of AMT_8021XProfile.
type AMT8021XProfile struct {
	ActiveInS0  bool
	ElementName string
	Enabled     bool
	InstanceID  string
	PxeTimeout  int64
}

// AMTKerberosSettingData is an instance of AMT_KerberosSettingData.
type AMTKerberosSettingData struct {
	ElementName                   string
	InstanceID                    string
	KrbEnabled                    bool
	SupportedEncryptionAlgorithms []int64
}

// GetCredentialCacheStateOutput is the output of GetCredentialCacheState.
type GetCredentialCacheStateOutput struct {
	Enabled     bool
	ReturnValue int64
}

// AMTManagementPresenceRemoteSAP is an instance of AMT_ManagementPresenceRemoteSAP.
type AMTManagementPresenceRemoteSAP struct {
	AccessInfo              string
	CN                      string
	CreationClassName       string
	ElementName             string
	InfoFormat              int64
	Name                    string
	Port                    int64
	SystemCreationClassName string
	SystemName              string
}

// AMTMessageLog is an instance of AMT_MessageLog.
type AMTMessageLog struct {
	Capabilities           []int64
	CharacterSet           int64
	CreationClassName      string
	CurrentNumberOfRecords int64
	ElementName            string
	EnabledDefault         int64
	EnabledState           int64
	HealthState            int64
	IsFrozen               bool
	LastChange             int64
	LogState               int64
	MaxLogSize             int64
	MaxNumberOfRecords     int64
	MaxRecordSize          int64
	Name                   string
	OperationalStatus      int64
	OverwritePolicy        int64
	PercentageNearFull     int64
	RequestedState         int64
	SizeOfHeader           int64
	SizeOfRecordHeader     int64
	Status                 string
}

// GetRecordsOutput is the output of GetRecords.
type GetRecordsOutput struct {
	IterationIdentifier int64
	NoMoreRecords       bool
	RecordArray         []string
	ReturnValue         int64
}

// PositionToFirstRecordOutput is the output of PositionToFirstRecord.
type PositionToFirstRecordOutput struct {
	IterationIdentifier int64
	ReturnValue         int64
}

// AMTMPSUsernamePassword is an instance of AMT_MPSUsernamePassword.
type AMTMPSUsernamePassword struct {
	InstanceID string
	RemoteID   string
}

// AMTPublicKeyCertificate is an instance of AMT_PublicKeyCertificate.
type AMTPublicKeyCertificate struct {
	ElementName           string
	InstanceID            string
	Issuer                string
	Subject               string
	TrustedRootCertficate bool
	X509Certificate       string
}

// AddCertificateOutput is the output of AddCertificate.
type AddCertificateOutput struct {
	CreatedCertificate EPR
	ReturnValue        int64
}

// AddKeyOutput is the output of AddKey.
type AddKeyOutput struct {
	CreatedKey  EPR
	ReturnValue int64
}

// AddTrustedRootCertificateOutput is the output of AddTrustedRootCertificate.
type AddTrustedRootCertificateOutput struct {
	CreatedCertificate EPR
	ReturnValue        int64
}

// GenerateKeyPairOutput is the output of GenerateKeyPair.
type GenerateKeyPairOutput struct {
	KeyPair     EPR
	ReturnValue int64
}

// GeneratePKCS10RequestExOutput is the output of GeneratePKCS10RequestEx.
type GeneratePKCS10RequestExOutput struct {
	SignedCertificateRequest string
	ReturnValue              int64
}

// AMTPublicKeyManagementService is an instance of AMT_PublicKeyManagementService.
type AMTPublicKeyManagementService struct {
	CreationClassName       string
	ElementName             string
	EnabledDefault          int64
	EnabledState            int64
	Name                    string
	RequestedState          int64
	SystemCreationClassName string
	SystemName              string
}

// AMTPublicPrivateKeyPair is an instance of AMT_PublicPrivateKeyPair.
type AMTPublicPrivateKeyPair struct {
	DERKey      string
	ElementName string
	InstanceID  string
}

// AMTRedirectionService is an instance of AMT_RedirectionService.
type AMTRedirectionService struct {
	CreationClassName       string
	ElementName             string
	EnabledState            int64
	ListenerEnabled         bool
	Name                    string
	SystemCreationClassName string
	SystemName              string
}

// RequestStateChangeOutput is the output of RequestStateChange.
type RequestStateChangeOutput struct {
	ReturnValue int64
}

// AMTRemoteAccessCapabilities is an instance of AMT_RemoteAccessCapabilities.
type AMTRemoteAccessCapabilities struct {
	ElementName              string
	InstanceID               string
	MaxMpsPerPolicy          int64
	MaxTotalMpServers        int64
	MaxTotalPolicies         int64
	MaxTotalProxyEntryPoints int64
}

// AMTRemoteAccessPolicyAppliesToMPS is an instance of AMT_RemoteAccessPolicyAppliesToMPS.
type AMTRemoteAccessPolicyAppliesToMPS struct {
	ManagedElement EPR
	MpsType        int64
	OrderOfAccess  int64
	PolicySet      EPR
}

// AMTRemoteAccessPolicyRule is an instance of AMT_RemoteAccessPolicyRule.
type AMTRemoteAccessPolicyRule struct {
	CreationClassName       string
	ElementName             string
	ExtendedData            string
	PolicyRuleName          string
	SystemCreationClassName string
	SystemName              string
	Trigger                 int64
	TunnelLifeTime          int64
}

// AddMpServerOutput is the output of AddMpServer.
type AddMpServerOutput struct {
	MpServer    EPR
	ReturnValue int64
}

// AddRemoteAccessPolicyRuleOutput is the output of AddRemoteAccessPolicyRule.
type AddRemoteAccessPolicyRuleOutput struct {
	PolicyRule  EPR
	ReturnValue int64
}

// AMTRemoteAccessService is an instance of AMT_RemoteAccessService.
type AMTRemoteAccessService struct {
	CreationClassName            string
	ElementName                  string
	IsRemoteTunnelConnected      bool
	Name                         string
	RemoteTunnelKeepAliveTimeout int64
	SystemCreationClassName      string
	SystemName                   string
}

// CommitChangesOutput is the output of CommitChanges.
type CommitChangesOutput struct {
	ReturnValue int64
}

// AMTSetupAndConfigurationService is an instance of AMT_SetupAndConfigurationService.
type AMTSetupAndConfigurationService struct {
	CreationClassName             string
	ElementName                   string
	EnabledState                  int64
	Name                          string
	PasswordModel                 string
	ProvisioningMode              int64
	ProvisioningServerOTP         string
	ProvisioningState             int64
	RequestedState                int64
	SystemCreationClassName       string
	SystemName                    string
	ZeroTouchConfigurationEnabled bool
	ConfigurationServerFQDN       string `wsman:",omitempty,readonly"`
	DhcpDNSSuffix                 string `wsman:",omitempty,readonly"`
	TrustedDNSSuffix              string `wsman:",omitempty,readonly"`
}

// GetUuidOutput is the output of GetUuid.
type GetUuidOutput struct {
	UUID string
}

// PartialUnprovisionOutput is the output of PartialUnprovision.
type PartialUnprovisionOutput struct {
	ReturnValue int64
}

// SetMEBxPasswordOutput is the output of SetMEBxPassword.
type SetMEBxPasswordOutput struct {
	ReturnValue int64
}

// UnprovisionOutput is the output of Unprovision.
type UnprovisionOutput struct {
	ReturnValue int64
}

// AMTSystemPowerScheme is an instance of AMT_SystemPowerScheme.
type AMTSystemPowerScheme struct {
	Description string
	ElementName string
	InstanceID  string
	SchemeGUID  string
}

// AMTTimeSynchronizationService is an instance of AMT_TimeSynchronizationService.
type AMTTimeSynchronizationService struct {
	CreationClassName       string
	ElementName             string
	EnabledState            int64
	LocalTimeSyncEnabled    int64
	Name                    string
	RequestedState          int64
	SystemCreationClassName string
	SystemName              string
	TimeSource              int64
}

// GetLowAccuracyTimeSynchOutput is the output of GetLowAccuracyTimeSynch.
type GetLowAccuracyTimeSynchOutput struct {
	Ta0         int64
	ReturnValue int64
}

// SetHighAccuracyTimeSynchOutput is the output of SetHighAccuracyTimeSynch.
type SetHighAccuracyTimeSynchOutput struct {
	ReturnValue int64
}

// AMTTLSCredentialContext is an instance of AMT_TLSCredentialContext.
type AMTTLSCredentialContext struct {
	ElementInContext        EPR
	ElementProvidingContext EPR
}

// AMTTLSProtocolEndpointCollection is an instance of AMT_TLSProtocolEndpointCollection.
type AMTTLSProtocolEndpointCollection struct {
	ElementName string
}

// AMTTLSSettingData is an instance of AMT_TLSSettingData.
type AMTTLSSettingData struct {
	ElementName                   string
	InstanceID                    string
	MutualAuthentication          bool
	Enabled                       bool
	TrustedCN                     []string `wsman:",omitempty"`
	AcceptNonSecureConnections    bool
	NonSecureConnectionsSupported *bool `wsman:",readonly"`
}

// AMTUserInitiatedConnectionService is an instance of AMT_UserInitiatedConnectionService.
type AMTUserInitiatedConnectionService struct {
	CreationClassName       string
	ElementName             string
	EnabledState            int64
	Name                    string
	SystemCreationClassName string
	SystemName              string
	LastConnectionReason    string
}

// AddWiFiSettingsOutput is the output of AddWiFiSettings.
type AddWiFiSettingsOutput struct {
	ReturnValue int64
}

// AMTWiFiPortConfigurationService is an instance of AMT_WiFiPortConfigurationService.
type AMTWiFiPortConfigurationService struct {
	CreationClassName                  string
	ElementName                        string
	EnabledState                       int64
	HealthState                        int64
	LastConnectedSsidUnderMeControl    string
	Name                               string
	NoHostCsmeSoftwarePolicy           int64
	RequestedState                     int64
	SystemCreationClassName            string
	SystemName                         string
	UEFIWiFiProfileShareEnabled        bool
	LocalProfileSynchronizationEnabled int64 `wsman:"localProfileSynchronizationEnabled"`
}

// UpdateWiFiSettingsOutput is the output of UpdateWiFiSettings.
type UpdateWiFiSettingsOutput struct {
	ReturnValue int64
}

// CIMAssociatedPowerManagementService is an instance of CIM_AssociatedPowerManagementService.
type CIMAssociatedPowerManagementService struct {
	AvailableRequestedPowerStates []int64
	PowerState                    int64
	ServiceProvided               EPR
	UserOfService                 EPR
}

// CIMBattery is an instance of CIM_Battery.
type CIMBattery struct {
	BatteryStatus            int64
	ChargingStatus           int64
	Chemistry                int64
	CreationClassName        string
	DesignCapacity           int64
	DesignVoltage            int64
	DeviceID                 string
	ElementName              string
	EnabledState             int64
	EstimatedChargeRemaining int64
	FullChargeCapacity       int64
	HealthState              int64
	RequestedState           int64
	SystemCreationClassName  string
	SystemName               string
}

// CIMBIOSElement is an instance of CIM_BIOSElement.
type CIMBIOSElement struct {
	ElementName           string
	Manufacturer          string
	Name                  string
	OperationalStatus     int64
	PrimaryBIOS           bool
	ReleaseDate           CIMDateTime
	SoftwareElementID     string
	SoftwareElementState  int64
	TargetOperatingSystem int64
	Version               string
}

// CIMBIOSFeature is an instance of CIM_BIOSFeature.
type CIMBIOSFeature struct {
	Characteristics   []string
	ElementName       string
	IdentifyingNumber string
	Name              string
	OperationalStatus int64
	ProductName       string
	Vendor            string
	Version           string
}

// ChangeBootOrderOutput is the output of ChangeBootOrder.
type ChangeBootOrderOutput struct {
	ReturnValue int64
}

// CIMBootConfigSetting is an instance of CIM_BootConfigSetting.
type CIMBootConfigSetting struct {
	ElementName string
	InstanceID  string
}

// CIMBootService is an instance of CIM_BootService.
type CIMBootService struct {
	CreationClassName       string
	ElementName             string
	EnabledState            int64
	Name                    string
	OperationalStatus       int64
	RequestedState          int64
	SystemCreationClassName string
	SystemName              string
}

// SetBootConfigRoleOutput is the output of SetBootConfigRole.
type SetBootConfigRoleOutput struct {
	ReturnValue int64
}

// CIMBootSourceSetting is an instance of CIM_BootSourceSetting.
type CIMBootSourceSetting struct {
	ElementName          string
	FailThroughSupported int64
	InstanceID           string
	StructuredBootString string
}

// CIMCard is an instance of CIM_Card.
type CIMCard struct {
	CanBeFRUed        bool
	CreationClassName string
	ElementName       string
	Manufacturer      string
	Model             string
	OperationalStatus int64
	PackageType       int64
	SerialNumber      string
	Tag               string
	Version           string
}

// CIMChassis is an instance of CIM_Chassis.
type CIMChassis struct {
	ChassisPackageType int64
	CreationClassName  string
	ElementName        string
	Manufacturer       string
	Model              string
	OperationalStatus  int64
	PackageType        int64
	SerialNumber       string
	Tag                string
	Version            string
}

// CIMChip is an instance of CIM_Chip.
type CIMChip struct {
	CanBeFRUed        bool
	CreationClassName string
	ElementName       string
	Manufacturer      string
	OperationalStatus int64
	Tag               string
	Version           string
}

// CIMComputerSystemPackage is an instance of CIM_ComputerSystemPackage.
type CIMComputerSystemPackage struct {
	Antecedent   EPR
	Dependent    EPR
	PlatformGUID string
}

// CIMConcreteDependency is an instance of CIM_ConcreteDependency.
type CIMConcreteDependency struct {
	Antecedent EPR
	Dependent  EPR
}

// CIMCredentialContext is an instance of CIM_CredentialContext.
type CIMCredentialContext struct {
	ElementInContext        EPR
	ElementProvidingContext EPR
}

// CIMEthernetPort is an instance of CIM_EthernetPort.
type CIMEthernetPort struct {
	CreationClassName       string
	Description             string
	DeviceID                string
	ElementName             string
	EnabledDefault          int64
	EnabledState            int64
	LinkTechnology          int64
	MaxSpeed                int64
	NetworkAddresses        string
	OperationalStatus       int64
	PortType                int64
	RequestedState          int64
	Speed                   int64
	SystemCreationClassName string
	SystemName              string
}

// CIMFan is an instance of CIM_Fan.
type CIMFan struct {
	ActiveCooling           bool
	CreationClassName       string
	DesiredSpeed            int64
	DeviceID                string
	ElementName             string
	EnabledState            int64
	HealthState             int64
	OperationalStatus       int64
	RequestedState          int64
	SystemCreationClassName string
	SystemName              string
	VariableSpeed           bool
}

// CIMIEEE8021xSettings is an instance of CIM_IEEE8021xSettings.
type CIMIEEE8021xSettings struct {
	AuthenticationProtocol int64
	ElementName            string
	InstanceID             string
	Username               string
}

// CIMKVMRedirectionSAP is an instance of CIM_KVMRedirectionSAP.
type CIMKVMRedirectionSAP struct {
	CreationClassName       string
	ElementName             string
	EnabledState            int64
	KVMProtocol             int64
	Name                    string
	RequestedState          int64
	SystemCreationClassName string
	SystemName              string
}

// CIMMediaAccessDevice is an instance of CIM_MediaAccessDevice.
type CIMMediaAccessDevice struct {
	Capabilities            int64
	CreationClassName       string
	DeviceID                string
	ElementName             string
	EnabledDefault          int64
	EnabledState            int64
	MaxMediaSize            int64
	OperationalStatus       int64
	RequestedState          int64
	Security                int64
	SystemCreationClassName string
	SystemName              string
}

// CIMPhysicalMemory is an instance of CIM_PhysicalMemory.
type CIMPhysicalMemory struct {
	BankLabel                  string
	Capacity                   int64
	ConfiguredMemoryClockSpeed int64
	CreationClassName          string
	ElementName                string
	FormFactor                 int64
	IsSpeedInMhz               bool
	Manufacturer               string
	MaxMemorySpeed             int64
	MemoryType                 int64
	PartNumber                 string
	SerialNumber               string
	Speed                      int64
	Tag                        string
}

// CIMProcessor is an instance of CIM_Processor.
type CIMProcessor struct {
	CPUStatus               int64
	CreationClassName       string
	CurrentClockSpeed       int64
	DeviceID                string
	ElementName             string
	EnabledState            int64
	ExternalBusClockSpeed   int64
	Family                  int64
	HealthState             int64
	MaxClockSpeed           int64
	OperationalStatus       int64
	OtherFamilyDescription  string
	RequestedState          int64
	Role                    string
	Stepping                int64
	SystemCreationClassName string
	SystemName              string
	UpgradeMethod           int64
}

// CIMPowerManagementCapabilities is an instance of CIM_PowerManagementCapabilities.
type CIMPowerManagementCapabilities struct {
	ElementName                   string
	InstanceID                    string
	OtherPowerChangeCapabilities  string
	PowerChangeCapabilities       []int64
	PowerStatesSupported          []int64
	RequestedPowerStatesSupported []int64
}

// CIMPowerManagementService is an instance of CIM_PowerManagementService.
type CIMPowerManagementService struct {
	CreationClassName       string
	ElementName             string
	EnabledState            int64
	Name                    string
	RequestedState          int64
	SystemCreationClassName string
	SystemName              string
}

// RequestPowerStateChangeOutput is the output of RequestPowerStateChange.
type RequestPowerStateChangeOutput struct {
	ReturnValue int64
}

// CIMRedirectionService is an instance of CIM_RedirectionService.
type CIMRedirectionService struct {
	CreationClassName       string
	ElementName             string
	EnabledState            int64
	MaxCurrentEnabledSAPs   int64
	Name                    string
	RedirectionServiceType  int64
	RequestedState          int64
	SharingMode             int64
	SystemCreationClassName string
	SystemName              string
}

// CIMSensor is an instance of CIM_Sensor.
type CIMSensor struct {
	CreationClassName       string
	CurrentState            string
	DeviceID                string
	ElementName             string
	EnabledState            int64
	HealthState             int64
	OperationalStatus       int64
	PossibleStates          []string
	RequestedState          int64
	SensorType              int64
	SystemCreationClassName string
	SystemName              string
}

// CIMSoftwareIdentity is an instance of CIM_SoftwareIdentity.
type CIMSoftwareIdentity struct {
	InstanceID    string
	IsEntity      bool
	VersionString string
}

// CIMWiFiEndpoint is an instance of CIM_WiFiEndpoint.
type CIMWiFiEndpoint struct {
	ElementName string
}

// CIMWiFiEndpointCapabilities is an instance of CIM_WiFiEndpointCapabilities.
type CIMWiFiEndpointCapabilities struct {
	ElementName string
}

// CIMWiFiEndpointSettings is an instance of CIM_WiFiEndpointSettings.
type CIMWiFiEndpointSettings struct {
	AuthenticationMethod int64
	BSSType              int64
	ElementName          string
	EncryptionMethod     int64
	InstanceID           string
	Priority             int64
	SSID                 string
}

// CIMWiFiPort is an instance of CIM_WiFiPort.
type CIMWiFiPort struct {
	CreationClassName       string
	DeviceID                string
	ElementName             string
	EnabledState            int64
	HealthState             int64
	LinkTechnology          int64
	PermanentAddress        string
	PortType                int64
	RequestedState          int64
	SystemCreationClassName string
	SystemName              string
}

// CIMWiFiPortCapabilities is an instance of CIM_WiFiPortCapabilities.
type CIMWiFiPortCapabilities struct {
	ElementName string
}

// IPSAlarmClockOccurrence is an instance of IPS_AlarmClockOccurrence.
type IPSAlarmClockOccurrence struct {
	ElementName        string
	InstanceID         string
	StartTime          string
	Interval           int64
	DeleteOnCompletion bool
}

// AddNextCertInChainOutput is the output of AddNextCertInChain.
type AddNextCertInChainOutput struct {
	ReturnValue int64
}

// AdminSetupOutput is the output of AdminSetup.
type AdminSetupOutput struct {
	ReturnValue int64
}

// IPSHostBasedSetupService is an instance of IPS_HostBasedSetupService.
type IPSHostBasedSetupService struct {
	AllowedControlModes     []int64
	CertChainStatus         int64
	ConfigurationNonce      string
	CreationClassName       string
	CurrentControlMode      int64
	ElementName             string
	Name                    string
	SystemCreationClassName string
	SystemName              string
}

// SetupOutput is the output of Setup.
type SetupOutput struct {
	ReturnValue int64
}

// UpgradeClientToAdminOutput is the output of UpgradeClientToAdmin.
type UpgradeClientToAdminOutput struct {
	ReturnValue int64
}

// IPSHostBootReason is an instance of IPS_HostBootReason.
type IPSHostBootReason struct {
	ElementName     string
	InstanceID      string
	PreviousSxState int64
	Reason          string
	ReasonDetails   string
}

// IPSHostIPSettings is an instance of IPS_HostIPSettings.
type IPSHostIPSettings struct {
	DHCPEnabled bool
	ElementName string
	InstanceID  string
}

// AddProxyAccessPointOutput is the output of AddProxyAccessPoint.
type AddProxyAccessPointOutput struct {
	ProxyAccessPoint EPR
	ReturnValue      int64
}

// IPSIEEE8021xSettings is an instance of IPS_IEEE8021xSettings.
type IPSIEEE8021xSettings struct {
	AvailableInS0 bool
	ElementName   string
	Enabled       int64
	InstanceID    string
	PxeTimeout    int64
}

// SetCertificatesOutput is the output of SetCertificates.
type SetCertificatesOutput struct {
	ReturnValue int64
}

// IPSIPv6PortSettings is an instance of IPS_IPv6PortSettings.
type IPSIPv6PortSettings struct {
	CurrentDefaultRouter string
	CurrentPrimaryDNS    string
	CurrentSecondaryDNS  string
	DefaultRouter        string
	ElementName          string
	IPv6Address          string
	InstanceID           string
	InterfaceIDType      int64
	ManualInterfaceID    string
	PrimaryDNS           string
	SecondaryDNS         string
}

// IPSKVMRedirectionSettingData is an instance of IPS_KVMRedirectionSettingData.
type IPSKVMRedirectionSettingData struct {
	BackToBackFbMode               bool
	DefaultScreen                  int64
	ElementName                    string
	EnabledByMEBx                  bool
	InstanceID                     string
	Is5900PortEnabled              bool
	OptInPolicy                    bool
	OptInPolicyTimeout             int64
	RFBPassword                    string
	SessionTimeout                 int64
	DoubleBufferActive             bool
	DoubleBufferEnabled            bool
	GrayscalePixelFormatSupported  bool
	InitialDecimationModeForLowRes int64
	ZlibControlSupported           bool
}

// IPSLANEndpoint is an instance of IPS_LANEndpoint.
type IPSLANEndpoint struct {
	CreationClassName       string
	EnabledState            int64
	LANType                 int64
	MACAddress              string
	Name                    string
	ProtocolType            int64
	RequestedState          int64
	SystemCreationClassName string
	SystemName              string
}

// CancelOptInOutput is the output of CancelOptIn.
type CancelOptInOutput struct {
	ReturnValue int64
}

// IPSOptInService is an instance of IPS_OptInService.
type IPSOptInService struct {
	CanModifyOptInPolicy    int64
	CreationClassName       string
	ElementName             string
	Name                    string
	OptInCodeTimeout        int64
	OptInDisplayTimeout     int64
	OptInRequired           int64
	OptInState              int64
	SystemCreationClassName string
	SystemName              string
}

// SendOptInCodeOutput is the output of SendOptInCode.
type SendOptInCodeOutput struct {
	ReturnValue int64
}

// StartOptInOutput is the output of StartOptIn.
type StartOptInOutput struct {
	ReturnValue int64
}

// IPSPowerManagementService is an instance of IPS_PowerManagementService.
type IPSPowerManagementService struct {
	CreationClassName       string
	ElementName             string
	EnabledState            int64
	Name                    string
	RequestedState          int64
	SystemCreationClassName string
	SystemName              string
	OSPowerSavingState      int64
}

// RequestOSPowerSavingStateChangeOutput is the output of RequestOSPowerSavingStateChange.
type RequestOSPowerSavingStateChangeOutput struct {
	ReturnValue int64
}

// IPSProvisioningRecordLog is an instance of IPS_ProvisioningRecordLog.
type IPSProvisioningRecordLog struct {
	CurrentNumberOfRecords int64
	ElementName            string
	EnabledState           int64
	HealthState            int64
	InstanceID             string
	LogState               int64
	MaxNumberOfRecords     int64
	Name                   string
	OverwritePolicy        int64
	RequestedState         int64
}

// IPSScreenSettingData is an instance of IPS_ScreenSettingData.
type IPSScreenSettingData struct {
	ElementName    string
	InstanceID     string
	IsActive       []bool
	PrimaryIndex   int64
	QuadraryIndex  int64
	ResolutionX    []int64
	ResolutionY    []int64
	SecondaryIndex int64
	TertiaryIndex  int64
	UpperLeftX     []int64
	UpperLeftY     []int64
}

// IPSSecIOService is an instance of IPS_SecIOService.
type IPSSecIOService struct {
	CreationClassName       string
	DefaultScreen           int64
	EnabledState            int64
	Name                    string
	RequestedLanguage       string
	Started                 bool
	Status                  string
	SystemCreationClassName string
	SystemName              string
	Language                string `wsman:"language"`
	Zoom                    int64  `wsman:"zoom"`
}

// classRegistry maps a class element name to its typed struct.
var classRegistry = map[string]func() any{
	"AMT_AlarmClockService":                func() any { return new(AMTAlarmClockService) },
	"AMT_AssetTableService":                func() any { return new(AMTAssetTableService) },
	"AMT_AuditLog":                         func() any { return new(AMTAuditLog) },
	"AMT_AuthorizationService":             func() any { return new(AMTAuthorizationService) },
	"AMT_BootCapabilities":                 func() any { return new(AMTBootCapabilities) },
	"AMT_BootSettingData":                  func() any { return new(AMTBootSettingData) },
	"AMT_CryptographicCapabilities":        func() any { return new(AMTCryptographicCapabilities) },
	"AMT_EnvironmentDetectionSettingData":  func() any { return new(AMTEnvironmentDetectionSettingData) },
	"AMT_EthernetPortSettings":             func() any { return new(AMTEthernetPortSettings) },
	"AMT_EventLogEntry":                    func() any { return new(AMTEventLogEntry) },
	"AMT_GeneralSettings":                  func() any { return new(AMTGeneralSettings) },
	"AMT_Hdr8021Filter":                    func() any { return new(AMTHdr8021Filter) },
	"AMT_8021XProfile":                     func() any { return new(AMT8021XProfile) },
	"AMT_KerberosSettingData":              func() any { return new(AMTKerberosSettingData) },
	"AMT_ManagementPresenceRemoteSAP":      func() any { return new(AMTManagementPresenceRemoteSAP) },
	"AMT_MessageLog":                       func() any { return new(AMTMessageLog) },
	"AMT_MPSUsernamePassword":              func() any { return new(AMTMPSUsernamePassword) },
	"AMT_PublicKeyCertificate":             func() any { return new(AMTPublicKeyCertificate) },
	"AMT_PublicKeyManagementService":       func() any { return new(AMTPublicKeyManagementService) },
	"AMT_PublicPrivateKeyPair":             func() any { return new(AMTPublicPrivateKeyPair) },
	"AMT_RedirectionService":               func() any { return new(AMTRedirectionService) },
	"AMT_RemoteAccessCapabilities":         func() any { return new(AMTRemoteAccessCapabilities) },
	"AMT_RemoteAccessPolicyAppliesToMPS":   func() any { return new(AMTRemoteAccessPolicyAppliesToMPS) },
	"AMT_RemoteAccessPolicyRule":           func() any { return new(AMTRemoteAccessPolicyRule) },
	"AMT_RemoteAccessService":              func() any { return new(AMTRemoteAccessService) },
	"AMT_SetupAndConfigurationService":     func() any { return new(AMTSetupAndConfigurationService) },
	"AMT_SystemPowerScheme":                func() any { return new(AMTSystemPowerScheme) },
	"AMT_TimeSynchronizationService":       func() any { return new(AMTTimeSynchronizationService) },
	"AMT_TLSCredentialContext":             func() any { return new(AMTTLSCredentialContext) },
	"AMT_TLSProtocolEndpointCollection":    func() any { return new(AMTTLSProtocolEndpointCollection) },
	"AMT_TLSSettingData":                   func() any { return new(AMTTLSSettingData) },
	"AMT_UserInitiatedConnectionService":   func() any { return new(AMTUserInitiatedConnectionService) },
	"AMT_WiFiPortConfigurationService":     func() any { return new(AMTWiFiPortConfigurationService) },
	"CIM_AssociatedPowerManagementService": func() any { return new(CIMAssociatedPowerManagementService) },
	"CIM_Battery":                          func() any { return new(CIMBattery) },
	"CIM_BIOSElement":                      func() any { return new(CIMBIOSElement) },
	"CIM_BIOSFeature":                      func() any { return new(CIMBIOSFeature) },
	"CIM_BootConfigSetting":                func() any { return new(CIMBootConfigSetting) },
	"CIM_BootService":                      func() any { return new(CIMBootService) },
	"CIM_BootSourceSetting":                func() any { return new(CIMBootSourceSetting) },
	"CIM_Card":                             func() any { return new(CIMCard) },
	"CIM_Chassis":                          func() any { return new(CIMChassis) },
	"CIM_Chip":                             func() any { return new(CIMChip) },
	"CIM_ComputerSystemPackage":            func() any { return new(CIMComputerSystemPackage) },
	"CIM_ConcreteDependency":               func() any { return new(CIMConcreteDependency) },
	"CIM_CredentialContext":                func() any { return new(CIMCredentialContext) },
	"CIM_EthernetPort":                     func() any { return new(CIMEthernetPort) },
	"CIM_Fan":                              func() any { return new(CIMFan) },
	"CIM_IEEE8021xSettings":                func() any { return new(CIMIEEE8021xSettings) },
	"CIM_KVMRedirectionSAP":                func() any { return new(CIMKVMRedirectionSAP) },
	"CIM_MediaAccessDevice":                func() any { return new(CIMMediaAccessDevice) },
	"CIM_PhysicalMemory":                   func() any { return new(CIMPhysicalMemory) },
	"CIM_Processor":                        func() any { return new(CIMProcessor) },
	"CIM_PowerManagementCapabilities":      func() any { return new(CIMPowerManagementCapabilities) },
	"CIM_PowerManagementService":           func() any { return new(CIMPowerManagementService) },
	"CIM_RedirectionService":               func() any { return new(CIMRedirectionService) },
	"CIM_Sensor":                           func() any { return new(CIMSensor) },
	"CIM_SoftwareIdentity":                 func() any { return new(CIMSoftwareIdentity) },
	"CIM_WiFiEndpoint":                     func() any { return new(CIMWiFiEndpoint) },
	"CIM_WiFiEndpointCapabilities":         func() any { return new(CIMWiFiEndpointCapabilities) },
	"CIM_WiFiEndpointSettings":             func() any { return new(CIMWiFiEndpointSettings) },
	"CIM_WiFiPort":                         func() any { return new(CIMWiFiPort) },
	"CIM_WiFiPortCapabilities":             func() any { return new(CIMWiFiPortCapabilities) },
	"IPS_AlarmClockOccurrence":             func() any { return new(IPSAlarmClockOccurrence) },
	"IPS_HostBasedSetupService":            func() any { return new(IPSHostBasedSetupService) },
	"IPS_HostBootReason":                   func() any { return new(IPSHostBootReason) },
	"IPS_HostIPSettings":                   func() any { return new(IPSHostIPSettings) },
	"IPS_IEEE8021xSettings":                func() any { return new(IPSIEEE8021xSettings) },
	"IPS_IPv6PortSettings":                 func() any { return new(IPSIPv6PortSettings) },
	"IPS_KVMRedirectionSettingData":        func() any { return new(IPSKVMRedirectionSettingData) },
	"IPS_LANEndpoint":                      func() any { return new(IPSLANEndpoint) },
	"IPS_OptInService":                     func() any { return new(IPSOptInService) },
	"IPS_PowerManagementService":           func() any { return new(IPSPowerManagementService) },
	"IPS_ProvisioningRecordLog":            func() any { return new(IPSProvisioningRecordLog) },
	"IPS_ScreenSettingData":                func() any { return new(IPSScreenSettingData) },
	"IPS_SecIOService":                     func() any { return new(IPSSecIOService) },
}

// outputRegistry maps a method output element name to its typed struct.
var outputRegistry = map[string]func() any{
	"AddAlarm_OUTPUT":                        func() any { return new(AddAlarmOutput) },
	"ReadRecords_OUTPUT":                     func() any { return new(ReadRecordsOutput) },
	"EnumerateUserAclEntries_OUTPUT":         func() any { return new(EnumerateUserAclEntriesOutput) },
	"GetAclEnabledState_OUTPUT":              func() any { return new(GetAclEnabledStateOutput) },
	"GetAdminAclEntry_OUTPUT":                func() any { return new(GetAdminAclEntryOutput) },
	"GetAdminAclEntryStatus_OUTPUT":          func() any { return new(GetAdminAclEntryStatusOutput) },
	"GetAdminNetAclEntryStatus_OUTPUT":       func() any { return new(GetAdminNetAclEntryStatusOutput) },
	"GetUserAclEntryEx_OUTPUT":               func() any { return new(GetUserAclEntryExOutput) },
	"RemoveUserAclEntry_OUTPUT":              func() any { return new(RemoveUserAclEntryOutput) },
	"SetAclEnabledState_OUTPUT":              func() any { return new(SetAclEnabledStateOutput) },
	"SetAdminAclEntryEx_OUTPUT":              func() any { return new(SetAdminAclEntryExOutput) },
	"GetCredentialCacheState_OUTPUT":         func() any { return new(GetCredentialCacheStateOutput) },
	"GetRecords_OUTPUT":                      func() any { return new(GetRecordsOutput) },
	"PositionToFirstRecord_OUTPUT":           func() any { return new(PositionToFirstRecordOutput) },
	"AddCertificate_OUTPUT":                  func() any { return new(AddCertificateOutput) },
	"AddKey_OUTPUT":                          func() any { return new(AddKeyOutput) },
	"AddTrustedRootCertificate_OUTPUT":       func() any { return new(AddTrustedRootCertificateOutput) },
	"GenerateKeyPair_OUTPUT":                 func() any { return new(GenerateKeyPairOutput) },
	"GeneratePKCS10RequestEx_OUTPUT":         func() any { return new(GeneratePKCS10RequestExOutput) },
	"RequestStateChange_OUTPUT":              func() any { return new(RequestStateChangeOutput) },
	"AddMpServer_OUTPUT":                     func() any { return new(AddMpServerOutput) },
	"AddRemoteAccessPolicyRule_OUTPUT":       func() any { return new(AddRemoteAccessPolicyRuleOutput) },
	"CommitChanges_OUTPUT":                   func() any { return new(CommitChangesOutput) },
	"GetUuid_OUTPUT":                         func() any { return new(GetUuidOutput) },
	"PartialUnprovision_OUTPUT":              func() any { return new(PartialUnprovisionOutput) },
	"SetMEBxPassword_OUTPUT":                 func() any { return new(SetMEBxPasswordOutput) },
	"Unprovision_OUTPUT":                     func() any { return new(UnprovisionOutput) },
	"GetLowAccuracyTimeSynch_OUTPUT":         func() any { return new(GetLowAccuracyTimeSynchOutput) },
	"SetHighAccuracyTimeSynch_OUTPUT":        func() any { return new(SetHighAccuracyTimeSynchOutput) },
	"AddWiFiSettings_OUTPUT":                 func() any { return new(AddWiFiSettingsOutput) },
	"UpdateWiFiSettings_OUTPUT":              func() any { return new(UpdateWiFiSettingsOutput) },
	"ChangeBootOrder_OUTPUT":                 func() any { return new(ChangeBootOrderOutput) },
	"SetBootConfigRole_OUTPUT":               func() any { return new(SetBootConfigRoleOutput) },
	"RequestPowerStateChange_OUTPUT":         func() any { return new(RequestPowerStateChangeOutput) },
	"AddNextCertInChain_OUTPUT":              func() any { return new(AddNextCertInChainOutput) },
	"AdminSetup_OUTPUT":                      func() any { return new(AdminSetupOutput) },
	"Setup_OUTPUT":                           func() any { return new(SetupOutput) },
	"UpgradeClientToAdmin_OUTPUT":            func() any { return new(UpgradeClientToAdminOutput) },
	"AddProxyAccessPoint_OUTPUT":             func() any { return new(AddProxyAccessPointOutput) },
	"SetCertificates_OUTPUT":                 func() any { return new(SetCertificatesOutput) },
	"CancelOptIn_OUTPUT":                     func() any { return new(CancelOptInOutput) },
	"SendOptInCode_OUTPUT":                   func() any { return new(SendOptInCodeOutput) },
	"StartOptIn_OUTPUT":                      func() any { return new(StartOptInOutput) },
	"RequestOSPowerSavingStateChange_OUTPUT": func() any { return new(RequestOSPowerSavingStateChangeOutput) },
}
