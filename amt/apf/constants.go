package apf

import "fmt"

// MsgType is the first byte of every APF message. 1–97 are SSH's numbers,
// 192 and up are Intel's (spec/apf.md §1, §2).
type MsgType uint8

// APF message types (spec/apf.md §2).
const (
	TypeDisconnect              MsgType = 1
	TypeServiceRequest          MsgType = 5
	TypeServiceAccept           MsgType = 6
	TypeUserauthRequest         MsgType = 50
	TypeUserauthFailure         MsgType = 51
	TypeUserauthSuccess         MsgType = 52
	TypeGlobalRequest           MsgType = 80
	TypeRequestSuccess          MsgType = 81
	TypeRequestFailure          MsgType = 82
	TypeChannelOpen             MsgType = 90
	TypeChannelOpenConfirmation MsgType = 91
	TypeChannelOpenFailure      MsgType = 92
	TypeChannelWindowAdjust     MsgType = 93
	TypeChannelData             MsgType = 94
	TypeChannelClose            MsgType = 97
	TypeProtocolVersion         MsgType = 192
	TypeKeepaliveRequest        MsgType = 208
	TypeKeepaliveReply          MsgType = 209
	TypeKeepaliveOptionsRequest MsgType = 210
	TypeKeepaliveOptionsReply   MsgType = 211
	// TypeJSONControl is MeshCentral's agent extension. Real AMT never sends
	// it, so the decoder recognises it only to report it as a protocol error
	// (spec/apf.md §2 notes).
	TypeJSONControl MsgType = 250
)

var typeNames = map[MsgType]string{
	TypeDisconnect:              "DISCONNECT",
	TypeServiceRequest:          "SERVICE_REQUEST",
	TypeServiceAccept:           "SERVICE_ACCEPT",
	TypeUserauthRequest:         "USERAUTH_REQUEST",
	TypeUserauthFailure:         "USERAUTH_FAILURE",
	TypeUserauthSuccess:         "USERAUTH_SUCCESS",
	TypeGlobalRequest:           "GLOBAL_REQUEST",
	TypeRequestSuccess:          "REQUEST_SUCCESS",
	TypeRequestFailure:          "REQUEST_FAILURE",
	TypeChannelOpen:             "CHANNEL_OPEN",
	TypeChannelOpenConfirmation: "CHANNEL_OPEN_CONFIRMATION",
	TypeChannelOpenFailure:      "CHANNEL_OPEN_FAILURE",
	TypeChannelWindowAdjust:     "CHANNEL_WINDOW_ADJUST",
	TypeChannelData:             "CHANNEL_DATA",
	TypeChannelClose:            "CHANNEL_CLOSE",
	TypeProtocolVersion:         "PROTOCOLVERSION",
	TypeKeepaliveRequest:        "KEEPALIVE_REQUEST",
	TypeKeepaliveReply:          "KEEPALIVE_REPLY",
	TypeKeepaliveOptionsRequest: "KEEPALIVE_OPTIONS_REQUEST",
	TypeKeepaliveOptionsReply:   "KEEPALIVE_OPTIONS_REPLY",
	TypeJSONControl:             "JSON_CONTROL",
}

func (t MsgType) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type %d (0x%02x)", uint8(t), uint8(t))
}

// DisconnectReason is the reason code of DISCONNECT (spec/apf.md §2).
type DisconnectReason uint32

// Disconnect reasons. 1–15 are SSH's; 16–18 appear only in MPS and
// MeshCentral and are unverified against AMT (spec/apf.md §2).
const (
	DisconnectHostNotAllowedToConnect     DisconnectReason = 1
	DisconnectProtocolError               DisconnectReason = 2
	DisconnectKeyExchangeFailed           DisconnectReason = 3
	DisconnectReserved                    DisconnectReason = 4
	DisconnectMACError                    DisconnectReason = 5
	DisconnectCompressionError            DisconnectReason = 6
	DisconnectServiceNotAvailable         DisconnectReason = 7
	DisconnectProtocolVersionNotSupported DisconnectReason = 8
	DisconnectHostKeyNotVerifiable        DisconnectReason = 9
	DisconnectConnectionLost              DisconnectReason = 10
	DisconnectByApplication               DisconnectReason = 11
	DisconnectTooManyConnections          DisconnectReason = 12
	DisconnectAuthCancelledByUser         DisconnectReason = 13
	DisconnectNoMoreAuthMethodsAvailable  DisconnectReason = 14
	// DisconnectInvalidCredentials is SSH's and GWM's ILLEGAL_USER_NAME.
	DisconnectInvalidCredentials     DisconnectReason = 15
	DisconnectConnectionTimedOut     DisconnectReason = 16
	DisconnectByPolicy               DisconnectReason = 17
	DisconnectTemporarilyUnavailable DisconnectReason = 18
)

var disconnectNames = [...]string{
	1:  "HOST_NOT_ALLOWED_TO_CONNECT",
	2:  "PROTOCOL_ERROR",
	3:  "KEY_EXCHANGE_FAILED",
	4:  "RESERVED",
	5:  "MAC_ERROR",
	6:  "COMPRESSION_ERROR",
	7:  "SERVICE_NOT_AVAILABLE",
	8:  "PROTOCOL_VERSION_NOT_SUPPORTED",
	9:  "HOST_KEY_NOT_VERIFIABLE",
	10: "CONNECTION_LOST",
	11: "BY_APPLICATION",
	12: "TOO_MANY_CONNECTIONS",
	13: "AUTH_CANCELLED_BY_USER",
	14: "NO_MORE_AUTH_METHODS_AVAILABLE",
	15: "INVALID_CREDENTIALS",
	16: "CONNECTION_TIMED_OUT",
	17: "BY_POLICY",
	18: "TEMPORARILY_UNAVAILABLE",
}

func (r DisconnectReason) String() string {
	if r >= 1 && int(r) < len(disconnectNames) {
		return disconnectNames[r]
	}
	return fmt.Sprintf("reason %d", uint32(r))
}

// OpenFailureReason is the reason code of CHANNEL_OPEN_FAILURE, as in SSH
// (spec/apf.md §2).
type OpenFailureReason uint32

// Channel-open failure reasons. AMT answers ConnectFailed or ResourceShortage
// when a device has too many channels open; callers retry those after a delay
// (spec/apf.md §7.6).
const (
	OpenAdministrativelyProhibited OpenFailureReason = 1
	OpenConnectFailed              OpenFailureReason = 2
	OpenUnknownChannelType         OpenFailureReason = 3
	OpenResourceShortage           OpenFailureReason = 4
)

var openFailureNames = [...]string{
	1: "ADMINISTRATIVELY_PROHIBITED",
	2: "CONNECT_FAILED",
	3: "UNKNOWN_CHANNEL_TYPE",
	4: "RESOURCE_SHORTAGE",
}

func (r OpenFailureReason) String() string {
	if r >= 1 && int(r) < len(openFailureNames) {
		return openFailureNames[r]
	}
	return fmt.Sprintf("reason %d", uint32(r))
}

// TriggerReason says why AMT opened the CIRA connection (PROTOCOLVERSION).
// The policy-rule trigger of AddRemoteAccessPolicyRule is a different enum
// (spec/apf.md §2).
type TriggerReason uint32

// Trigger reasons (spec/apf.md §2). rpc-go sends TriggerLME to the local LME;
// the MPS simulator sends 0.
const (
	TriggerUserInitiated   TriggerReason = 1
	TriggerAlert           TriggerReason = 2
	TriggerHITProvisioning TriggerReason = 3
	TriggerPeriodic        TriggerReason = 4
	TriggerLME             TriggerReason = 254
)

func (r TriggerReason) String() string {
	switch r {
	case TriggerUserInitiated:
		return "USER_INITIATED"
	case TriggerAlert:
		return "ALERT"
	case TriggerHITProvisioning:
		return "HIT_PROVISIONING"
	case TriggerPeriodic:
		return "PERIODIC"
	case TriggerLME:
		return "LME"
	}
	return fmt.Sprintf("trigger %d", uint32(r))
}

// Service, method, request and channel-type names (spec/apf.md §2, §3, §7.1).
const (
	ServiceAuth        = "auth@amt.intel.com"
	ServicePortForward = "pfwd@amt.intel.com"

	MethodPassword = "password"
	MethodNone     = "none"

	RequestTCPIPForward       = "tcpip-forward"
	RequestCancelTCPIPForward = "cancel-tcpip-forward"
	RequestUDPSendTo          = "udp-send-to@amt.intel.com"

	ChannelForwardedTCPIP = "forwarded-tcpip"
	ChannelDirectTCPIP    = "direct-tcpip"
)

// ChannelOpenReserved is what MPS, MeshCentral and GWM all send in
// CHANNEL_OPEN's reserved field, where SSH has max-packet (spec/apf.md §2).
const ChannelOpenReserved uint32 = 0xFFFFFFFF
