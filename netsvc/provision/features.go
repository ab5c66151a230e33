package provision

import (
	"context"
	"fmt"

	"amtd/amt/wsman"
)

// Features are the redirection and user-consent settings a profile asks
// for (spec/activation.md §9 step 3).
type Features struct {
	KVM  bool `json:"kvm"`
	SOL  bool `json:"sol"`
	IDER bool `json:"ider"`
	// UserConsent is "none", "kvm" or "all": which redirection sessions
	// need the user at the machine to read out a code. CCM forces "all".
	UserConsent string `json:"userConsent"`
}

// StepFeatures is recorded in the device history before the features are set.
const StepFeatures = "features"

// optInRequired is IPS_OptInService.OptInRequired for a consent setting.
var optInRequired = map[string]string{"none": "0", "kvm": "1", "all": "4294967295"}

func (f *Features) validate(mode string) error {
	if f == nil {
		return nil
	}
	if _, ok := optInRequired[f.UserConsent]; !ok {
		return fmt.Errorf("user consent %q: want none, kvm or all", f.UserConsent)
	}
	if mode == "ccm" && f.UserConsent != "all" {
		return fmt.Errorf("user consent %q: client control mode always asks the user (all); only ACM can do without", f.UserConsent)
	}
	return nil
}

// redirectionState is AMT_RedirectionService's RequestedState for the
// IDER and SOL listeners (spec/activation.md §9 step 3: 32768-32771).
func (f *Features) redirectionState() int {
	s := 32768
	if f.IDER {
		s++
	}
	if f.SOL {
		s += 2
	}
	return s
}

// configureFeatures turns redirection (KVM, SOL, IDER) on or off and sets
// the user-consent policy, as the device's current admin password.
func (e *Engine) configureFeatures(ctx context.Context, uuid, host string, dial wsman.Dialer, f *Features, mode int) (err error) {
	c, admin, err := e.adminClient(ctx, uuid, host, dial, "features")
	if err != nil {
		return err
	}
	defer admin.Wipe()
	defer e.recordFailure(ctx, uuid, &err)
	if err := e.Store.Devices().SetState(ctx, uuid, "configuring", StepFeatures,
		fmt.Sprintf("kvm=%t sol=%t ider=%t consent=%s", f.KVM, f.SOL, f.IDER, f.UserConsent), false); err != nil {
		return err
	}
	put := func(ctx context.Context, class, prop, value string) error {
		var inst wsman.Instance
		if err := c.Get(ctx, class, &inst); err != nil {
			return err
		}
		inst.Set(prop, value)
		_, err := c.Put(ctx, class, inst)
		return err
	}
	kvm := 3 // CIM EnabledState: 2 enabled, 3 disabled
	if f.KVM {
		kvm = 2
	}
	listener := "false"
	if f.KVM || f.SOL || f.IDER {
		listener = "true"
	}
	steps := []func(ctx context.Context) error{
		func(ctx context.Context) error {
			return c.RequestStateChange(ctx, "AMT_RedirectionService", f.redirectionState())
		},
		func(ctx context.Context) error {
			return put(ctx, "AMT_RedirectionService", "ListenerEnabled", listener)
		},
		func(ctx context.Context) error { return c.RequestStateChange(ctx, "CIM_KVMRedirectionSAP", kvm) },
	}
	// CCM always requires consent and refuses the change (spec/activation.md §5).
	if mode == ModeACM {
		steps = append(steps, func(ctx context.Context) error {
			return put(ctx, "IPS_OptInService", "OptInRequired", optInRequired[f.UserConsent])
		})
	}
	for _, s := range steps {
		if err := e.call(ctx, s); err != nil {
			return fmt.Errorf("features: %w", err)
		}
	}
	return e.Store.Devices().SetState(ctx, uuid, StateConfigured, StepFeatures, "redirection and consent set", false)
}
