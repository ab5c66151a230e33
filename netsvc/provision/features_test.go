package provision

import (
	"context"
	"strings"
	"testing"
)

func TestConfigureFeatures(t *testing.T) {
	r := newRig(t, nil)
	ctx := ctxT(t)
	if _, err := r.engine.ActivateACM(ctx, r.target, r.chain.cert); err != nil {
		t.Fatal(err)
	}
	dial := r.engine.dialer(r.target, nil)
	f := &Features{KVM: true, SOL: true, UserConsent: "none"}
	if _, err := r.engine.configure(ctx, r.target.UUID, r.target.host(), dial, ProfileSettings{Mode: "acm", Features: f}, ModeACM); err != nil {
		t.Fatal(err)
	}
	s := r.dev.Snapshot()
	if s.RedirectionState != 32770 || !s.RedirListener || s.KVMState != 2 || s.OptInRequired != 0 {
		t.Fatalf("redirection %d listener %t kvm %d consent %d", s.RedirectionState, s.RedirListener, s.KVMState, s.OptInRequired)
	}
	// Everything off, consent for all.
	f = &Features{UserConsent: "all"}
	if _, err := r.engine.configure(ctx, r.target.UUID, r.target.host(), dial, ProfileSettings{Mode: "acm", Features: f}, ModeACM); err != nil {
		t.Fatal(err)
	}
	s = r.dev.Snapshot()
	if s.RedirectionState != 32768 || s.RedirListener || s.KVMState != 3 || s.OptInRequired != 4294967295 {
		t.Fatalf("off: redirection %d listener %t kvm %d consent %d", s.RedirectionState, s.RedirListener, s.KVMState, s.OptInRequired)
	}
	if d, _ := r.store.Devices().Get(context.Background(), r.target.UUID); d.ProvisioningState != StateConfigured {
		t.Fatalf("state %q", d.ProvisioningState)
	}
}

func TestFeaturesValidate(t *testing.T) {
	for _, c := range []struct {
		s    ProfileSettings
		want string
	}{
		{ProfileSettings{Mode: "acm", Features: &Features{UserConsent: "none"}}, ""},
		{ProfileSettings{Mode: "ccm", Features: &Features{UserConsent: "all", KVM: true}}, ""},
		{ProfileSettings{Mode: "ccm", Features: &Features{UserConsent: "none"}}, "client control mode always asks"},
		{ProfileSettings{Mode: "acm", Features: &Features{UserConsent: "sometimes"}}, "want none, kvm or all"},
	} {
		err := c.s.Validate()
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.s, err, c.want)
		}
	}
}
