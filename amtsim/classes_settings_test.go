package amtsim

import (
	"errors"
	"testing"

	"amtd/amt/wsman"
	"amtd/secret"
)

// settingsClient is a WS-Man client as admin to a CCM-activated device.
func settingsClient(t *testing.T) (*Device, *wsman.Client) {
	t.Helper()
	d := newTestDevice(t, Config{})
	if code := d.Setup(2, ha1("admin", d.Realm(), "P@ssw0rd1")); code != 0 {
		t.Fatal(code)
	}
	l := listen(t, d)
	return d, wsman.NewClient(plainDialer(l.Plain), wsman.Credentials{Host: d.UUID.String() + ":16992", Username: "admin",
		Password: secret.FromString("P@ssw0rd1")})
}

func returnCode(t *testing.T, err error) int {
	t.Helper()
	var re *wsman.ReturnError
	if errors.As(err, &re) {
		return re.Code
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// TestBootOptionsOneTime: boot settings, a forced source and the boot
// configuration role apply to the next boot a power change starts, and
// that boot consumes them.
func TestBootOptionsOneTime(t *testing.T) {
	d, c := settingsClient(t)
	ctx := ctxT(t)
	cfgEPR := wsman.EPR{Address: wsman.AnonymousAddress, ResourceURI: wsman.BaseCIM + "CIM_BootConfigSetting",
		Selectors: []wsman.Selector{{Name: "InstanceID", Value: "Intel(r) AMT: Boot Configuration 0"}}}
	srcEPR := func(id string) wsman.EPR {
		return wsman.EPR{Address: wsman.AnonymousAddress, ResourceURI: wsman.BaseCIM + "CIM_BootSourceSetting",
			Selectors: []wsman.Selector{{Name: "InstanceID", Value: id}}}
	}
	power := func(state int) {
		t.Helper()
		in := wsman.RequestPowerStateChangeInput{PowerState: state, ManagedElement: wsman.ManagedSystem()}
		if err := c.Invoke(ctx, "CIM_PowerManagementService", "RequestPowerStateChange", in.Params(), nil); err != nil {
			t.Fatal(err)
		}
	}

	var bsd wsman.Instance
	if err := c.Get(ctx, "AMT_BootSettingData", &bsd); err != nil {
		t.Fatal(err)
	}
	bsd.Set("UseSOL", "true")
	bsd.Set("BIOSSetup", "false")
	if _, err := c.Put(ctx, "AMT_BootSettingData", bsd); err != nil {
		t.Fatal(err)
	}
	var after wsman.Instance
	if err := c.Get(ctx, "AMT_BootSettingData", &after); err != nil {
		t.Fatal(err)
	}
	if after.Value("UseSOL") != "true" || after.Value("OptionsCleared") != "false" {
		t.Fatalf("after Put: UseSOL %q OptionsCleared %q", after.Value("UseSOL"), after.Value("OptionsCleared"))
	}
	// A bad value is refused and changes nothing.
	bad := after
	bad.Props = append([]wsman.Property(nil), after.Props...)
	bad.Set("UseIDER", "maybe")
	if _, err := c.Put(ctx, "AMT_BootSettingData", bad); err == nil {
		t.Fatal("Put with UseIDER=maybe accepted")
	}

	// An unknown boot source is refused; PXE is accepted.
	if code := returnCode(t, c.Invoke(ctx, "CIM_BootConfigSetting", "ChangeBootOrder",
		[]wsman.Property{{Name: "Source", EPR: new(srcEPR("Intel(r) AMT: Force Floppy"))}}, nil)); code != cimInvalidParam {
		t.Fatalf("ChangeBootOrder to an unknown source = %d", code)
	}
	if code := returnCode(t, c.Invoke(ctx, "CIM_BootConfigSetting", "ChangeBootOrder",
		[]wsman.Property{{Name: "Source", EPR: new(srcEPR("Intel(r) AMT: Force PXE Boot"))}}, nil)); code != 0 {
		t.Fatalf("ChangeBootOrder = %d", code)
	}
	// Without SetBootConfigRole the settings do not apply: a reset boots as usual.
	power(10)
	if b := d.LastBoot(); b.Count != 1 || b.Source != "" || b.UseSOL {
		t.Fatalf("boot without the role: %+v", b)
	}
	// The boot consumed the settings.
	if err := c.Get(ctx, "AMT_BootSettingData", &after); err != nil {
		t.Fatal(err)
	}
	if after.Value("UseSOL") != "false" || after.Value("OptionsCleared") != "true" {
		t.Fatalf("after the boot: UseSOL %q OptionsCleared %q", after.Value("UseSOL"), after.Value("OptionsCleared"))
	}

	// The full sequence: settings, source, role, then power on from off.
	bsd.Set("BIOSSetup", "true")
	if _, err := c.Put(ctx, "AMT_BootSettingData", bsd); err != nil {
		t.Fatal(err)
	}
	if code := returnCode(t, c.Invoke(ctx, "CIM_BootConfigSetting", "ChangeBootOrder",
		[]wsman.Property{{Name: "Source", EPR: new(srcEPR("Intel(r) AMT: Force PXE Boot"))}}, nil)); code != 0 {
		t.Fatal(code)
	}
	if code := returnCode(t, c.Invoke(ctx, "CIM_BootService", "SetBootConfigRole",
		[]wsman.Property{{Name: "BootConfigSetting", EPR: &cfgEPR}, {Name: "Role", Value: "1"}}, nil)); code != 0 {
		t.Fatal(code)
	}
	power(8) // off: no boot
	if d.LastBoot().Count != 1 {
		t.Fatalf("powering off booted: %+v", d.LastBoot())
	}
	power(2)
	if b := d.LastBoot(); b.Count != 2 || b.Source != "Intel(r) AMT: Force PXE Boot" || !b.BIOSSetup || !b.UseSOL || b.UseIDER {
		t.Fatalf("boot with the role: %+v", b)
	}
	// Power on when on starts nothing.
	power(2)
	if d.LastBoot().Count != 2 {
		t.Fatalf("power on while on booted: %+v", d.LastBoot())
	}
}

// TestOSPowerSavingAndBootService: IPS_PowerManagementService changes
// OSPowerSavingState only to 2 or 3 and only with the host on;
// CIM_BootService keeps its requested state; the packaging enumerations
// answer with their fixtures' classes.
func TestOSPowerSavingAndBootService(t *testing.T) {
	d, c := settingsClient(t)
	ctx := ctxT(t)
	osState := func() string {
		var in wsman.Instance
		if err := c.Get(ctx, "IPS_PowerManagementService", &in); err != nil {
			t.Fatal(err)
		}
		return in.Value("OSPowerSavingState")
	}
	change := func(n string) int {
		return returnCode(t, c.Invoke(ctx, "IPS_PowerManagementService", "RequestOSPowerSavingStateChange",
			[]wsman.Property{{Name: "OSPowerSavingState", Value: n}, {Name: "ManagedElement", EPR: new(wsman.ManagedSystem())}}, nil))
	}
	if got := osState(); got != "2" {
		t.Fatalf("OSPowerSavingState %s at start", got)
	}
	if code := change("3"); code != 0 || osState() != "3" {
		t.Fatalf("to 3: %d, state %s", code, osState())
	}
	if code := change("7"); code != cimInvalidParam || osState() != "3" {
		t.Fatalf("to 7: %d, state %s", code, osState())
	}
	d.RequestPowerStateChange(8)
	if code := change("2"); code != cimFailed || osState() != "3" {
		t.Fatalf("to 2 with the host off: %d, state %s", code, osState())
	}

	if err := c.RequestStateChange(ctx, "CIM_BootService", 32769); err != nil {
		t.Fatal(err)
	}
	var bs wsman.Instance
	if err := c.Get(ctx, "CIM_BootService", &bs); err != nil || bs.Value("EnabledState") != "32769" {
		t.Fatalf("CIM_BootService EnabledState %q (%v)", bs.Value("EnabledState"), err)
	}
	if code := returnCode(t, c.RequestStateChange(ctx, "CIM_BootService", 7)); code != cimInvalidParam {
		t.Fatalf("CIM_BootService RequestStateChange(7) = %d", code)
	}

	for class, want := range map[string]string{"CIM_SystemPackaging": "CIM_ComputerSystemPackage", "CIM_PhysicalPackage": "CIM_Card"} {
		items, err := c.Enumerate(ctx, class)
		if err != nil {
			t.Fatalf("%s: %v", class, err)
		}
		if len(items) == 0 {
			t.Fatalf("%s: no items", class)
		}
		if items[0].Class != want {
			t.Fatalf("%s: items of class %q, want %s", class, items[0].Class, want)
		}
	}
}
