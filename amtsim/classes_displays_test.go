package amtsim

import (
	"errors"
	"strings"
	"testing"

	"amtd/amt/wsman"
)

// TestKVMDisplaySettings: over WS-Man, IPS_KVMRedirectionSettingData's
// DefaultScreen changes with a Put and reads back; out-of-range and
// malformed values are faults that change nothing; the RFB password is
// write-only and port 5900 needs one; OptInPolicy stays on in client
// control mode; IPS_ScreenSettingData is read only and shows what
// SetDisplays set.
func TestKVMDisplaySettings(t *testing.T) {
	d, c := settingsClient(t) // client control mode
	ctx := ctxT(t)
	get := func() *wsman.Instance {
		t.Helper()
		var in wsman.Instance
		if err := c.Get(ctx, "IPS_KVMRedirectionSettingData", &in); err != nil {
			t.Fatal(err)
		}
		return &in
	}
	fault := func(err error, want string) {
		t.Helper()
		var f *wsman.Fault
		if !errors.As(err, &f) || !strings.Contains(f.Error(), want) {
			t.Fatalf("got %v, want a fault saying %q", err, want)
		}
	}

	kvm := get()
	if kvm.Value("DefaultScreen") != "0" || d.DefaultScreen() != 0 {
		t.Fatalf("fixture DefaultScreen %q", kvm.Value("DefaultScreen"))
	}
	kvm.Set("DefaultScreen", "1")
	msg, err := c.Put(ctx, "IPS_KVMRedirectionSettingData", *kvm)
	if err != nil {
		t.Fatal(err)
	}
	if len(msg.Instances) != 1 || msg.Instances[0].Value("DefaultScreen") != "1" || get().Value("DefaultScreen") != "1" || d.DefaultScreen() != 1 {
		t.Fatalf("after Put: echo %v, device %d", msg.Instances, d.DefaultScreen())
	}

	for _, c2 := range []struct{ prop, value, want string }{
		{"DefaultScreen", "4", "DefaultScreen must be 0 to 3"},
		{"DefaultScreen", "-1", "DefaultScreen must be 0 to 3"},
		{"DefaultScreen", "x", "DefaultScreen must be 0 to 3"},
		{"OptInPolicy", "maybe", "must be true or false"},
		{"SessionTimeout", "70000", "0 to 65535"},
		{"OptInPolicy", "false", "must stay true in CCM"},
		{"Is5900PortEnabled", "true", "needs an RFBPassword"},
		{"RFBPassword", "short1!", "8 characters"},
		{"RFBPassword", "abcdefgh", "8 characters"},
	} {
		body := get()
		body.Set(c2.prop, c2.value)
		_, err := c.Put(ctx, "IPS_KVMRedirectionSettingData", *body)
		fault(err, c2.want)
		if d.DefaultScreen() != 1 || get().Value(c2.prop) == c2.value && c2.prop != "OptInPolicy" {
			t.Fatalf("refused Put of %s=%s changed the device", c2.prop, c2.value)
		}
	}

	// The RFB password is set, never read back, kept by a Put without it,
	// and lets port 5900 open.
	body := get()
	body.Set("RFBPassword", "Vnc!Pas1")
	if _, err := c.Put(ctx, "IPS_KVMRedirectionSettingData", *body); err != nil {
		t.Fatal(err)
	}
	if d.RFBPassword() != "Vnc!Pas1" || get().Value("RFBPassword") != "" {
		t.Fatalf("RFB password: device %q, read %q", d.RFBPassword(), get().Value("RFBPassword"))
	}
	body = get() // RFBPassword empty, as a console reads it
	body.Set("Is5900PortEnabled", "true")
	body.Set("EnabledByMEBx", "false") // the firmware's: ignored
	if _, err := c.Put(ctx, "IPS_KVMRedirectionSettingData", *body); err != nil {
		t.Fatal(err)
	}
	if in := get(); in.Value("Is5900PortEnabled") != "true" || in.Value("EnabledByMEBx") != "true" || d.RFBPassword() != "Vnc!Pas1" {
		t.Fatalf("after Put without the password: %v, password kept %v", in.Props, d.RFBPassword() == "Vnc!Pas1")
	}

	// Screens: the fixture's two active displays, then what SetDisplays says.
	items, err := c.Enumerate(ctx, "IPS_ScreenSettingData")
	if err != nil || len(items) != 1 || strings.Join(items[0].Values("IsActive"), ",") != "true,true,false,false" {
		t.Fatalf("screens %v %v", items, err)
	}
	d.SetDisplays([]Display{{Active: true, ResolutionX: 2560, ResolutionY: 1440}, {Active: false}, {Active: true, UpperLeftX: 2560, ResolutionX: 1280, ResolutionY: 1024}})
	items, err = c.Enumerate(ctx, "IPS_ScreenSettingData")
	if err != nil || strings.Join(items[0].Values("IsActive"), ",") != "true,false,true,false" ||
		strings.Join(items[0].Values("ResolutionX"), ",") != "2560,0,1280,0" || strings.Join(items[0].Values("UpperLeftX"), ",") != "0,0,2560,-1" {
		t.Fatalf("screens after SetDisplays %v %v", items, err)
	}
	_, err = c.Put(ctx, "IPS_ScreenSettingData", items[0])
	fault(err, "not supported")
}
