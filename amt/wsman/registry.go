package wsman

import (
	"errors"
	"fmt"
	"strings"
)

// ErrUnknownClass is wrapped when no typed struct is registered for an
// element; the generic Instance is still usable.
var ErrUnknownClass = errors.New("wsman: no typed struct for this class")

// DecodeInstance decodes an Instance into the typed struct registered for
// its element name: a class (AMT_GeneralSettings → *AMTGeneralSettings) or
// a method output (Setup_OUTPUT → *SetupOutput).
func DecodeInstance(in *Instance) (any, error) {
	newT, ok := classRegistry[in.Class]
	if !ok {
		newT, ok = outputRegistry[in.Class]
	}
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownClass, clip(in.Class))
	}
	v := newT()
	if err := Decode(in, v); err != nil {
		return nil, err
	}
	return v, nil
}

// Registered reports whether a typed struct exists for an element name.
func Registered(element string) bool {
	_, a := classRegistry[element]
	_, b := outputRegistry[element]
	return a || b
}

// ReturnError is a method call that reached AMT and came back with a
// non-zero ReturnValue (spec/wsman.md §5: "Still check ReturnValue").
type ReturnError struct {
	Class  string
	Method string
	Code   int
}

func (e *ReturnError) Error() string {
	return fmt.Sprintf("wsman: %s.%s returned %d (%s)", e.Class, e.Method, e.Code, ReturnValueName(e.Class, e.Code))
}

// Return-value names by class family (spec/wsman.md §6).
var (
	// IPS_HostBasedSetupService.
	hostBasedSetupCodes = map[int]string{
		0: "Success", 1: "InternalError", 2: "InvalidState", 3: "InvalidParam",
		4: "MethodDisabled", 5: "AuthFailed", 6: "FlashWriteLimitExceeded",
	}
	// AMT_* services return Intel PT_STATUS codes; these are the ones
	// spec/wsman.md §6 and activation.md §10 list for the classes amtd uses.
	ptStatusCodes = map[int]string{
		0: "PT_STATUS_SUCCESS", 1: "PT_STATUS_INTERNAL_ERROR", 12: "PT_STATUS_INVALID_NAME",
		16: "PT_STATUS_NOT_PERMITTED", 23: "PT_STATUS_MAX_LIMIT_REACHED", 35: "PT_STATUS_INVALID_INDEX",
		36: "PT_STATUS_INVALID_PARAMETER", 38: "PT_STATUS_FLASH_WRITE_LIMIT_EXCEEDED",
		2053: "PT_STATUS_INVALID_HANDLE", 2054: "PT_STATUS_INVALID_PASSWORD", 2055: "PT_STATUS_INVALID_REALM",
		2057: "PT_STATUS_DATA_MISSING", 2058: "PT_STATUS_DUPLICATE", 2065: "PT_STATUS_MAX_KERB_DOMAIN_REACHED",
		2075: "PT_STATUS_AUDIT_FAIL", 2076: "PT_STATUS_BLOCKING_COMPONENT",
	}
	// DMTF CIM method return codes (RequestStateChange,
	// RequestPowerStateChange, ChangeBootOrder, SetBootConfigRole).
	cimCodes = map[int]string{
		0: "Completed with No Error", 1: "Not Supported", 2: "Unknown or Unspecified Error",
		3: "Cannot complete within Timeout Period", 4: "Failed", 5: "Invalid Parameter", 6: "In Use",
		4096: "Method Parameters Checked - Job Started", 4097: "Invalid State Transition",
		4098: "Use of Timeout Parameter Not Supported", 4099: "Busy",
	}
)

// ReturnValueName names a ReturnValue for a class, or "code N" when the
// family's table does not know it.
func ReturnValueName(class string, code int) string {
	var table map[int]string
	switch {
	case class == "IPS_HostBasedSetupService":
		table = hostBasedSetupCodes
	case strings.HasPrefix(class, "AMT_"):
		table = ptStatusCodes
	case strings.HasPrefix(class, "CIM_"):
		table = cimCodes
	}
	if n, ok := table[code]; ok {
		return n
	}
	return fmt.Sprintf("code %d", code)
}
