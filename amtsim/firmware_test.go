package amtsim

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"slices"
	"testing"
	"time"

	"amtd/amt/digest"
	"amtd/amt/guid"
	"amtd/secret"
)

func newTestDevice(t testing.TB, cfg Config) *Device {
	t.Helper()
	if cfg.Version.Major == 0 {
		cfg.Version = defaultBuilds[16]
	}
	if cfg.Net.Suffix == "" {
		cfg.Net.Suffix = "corp.example.com"
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestChainChecks(t *testing.T) {
	good := makeChain(t, chainOpts{})
	tests := []struct {
		name    string
		chain   provChain
		suffix  string
		version int
		trust   bool
		ok      bool
	}{
		{"good chain", good, "corp.example.com", 16, true, true},
		{"OU instead of OID", makeChain(t, chainOpts{useOU: true}), "corp.example.com", 16, true, true},
		{"missing OID and OU", makeChain(t, chainOpts{noOID: true}), "corp.example.com", 16, true, false},
		{"no serverAuth", makeChain(t, chainOpts{noServer: true}), "corp.example.com", 16, true, false},
		{"SHA-1 on AMT 15", makeChain(t, chainOpts{sha1: true}), "corp.example.com", 15, true, false},
		{"SHA-1 on AMT 11", makeChain(t, chainOpts{sha1: true}), "corp.example.com", 11, true, true},
		{"RSA 1024 leaf", makeChain(t, chainOpts{smallLeaf: true}), "corp.example.com", 16, true, false},
		{"expired leaf", makeChain(t, chainOpts{expired: true}), "corp.example.com", 16, true, false},
		{"wrong domain", good, "other.example.org", 16, true, false},
		{"no suffix", good, "", 16, true, false},
		{"untrusted root", good, "corp.example.com", 16, false, false},
		{"MeshCentral rule: suffix ends with .CN", makeChain(t, chainOpts{leafCN: "example.com"}), "corp.example.com", 16, true, true},
		{"wildcard CN", makeChain(t, chainOpts{leafCN: "*.corp.example.com"}), "corp.example.com", 16, true, true},
		{"CN shares only the TLD", makeChain(t, chainOpts{leafCN: "amtd.example.net"}), "corp.example.com", 16, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			trusted := DefaultRootHashes()
			if tc.trust {
				trusted = append(trusted, tc.chain.rootHash())
			}
			v := defaultBuilds[tc.version]
			c := ChainCheck{Version: v, Trusted: trusted, Suffix: tc.suffix, Now: time.Now()}
			// Out of order on purpose: the firmware orders by issuer links.
			_, err := c.Verify([]*x509Cert{tc.chain.leaf, tc.chain.root, tc.chain.inter})
			if tc.ok && err != nil {
				t.Fatalf("want accepted, got %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrProvisioningCert) {
				t.Fatalf("want rejected with ErrProvisioningCert, got %v", err)
			}
		})
	}
}

func TestRootHashForms(t *testing.T) {
	p := makeChain(t, chainOpts{})
	for _, alg := range []string{"sha1", "sha256", "sha384"} {
		var want string
		switch alg {
		case "sha1":
			want = hexSum(sha1Sum(p.root.Raw))
		case "sha256":
			want = p.rootHash().Hex
		case "sha384":
			want = hexSum(sha384Sum(p.root.Raw))
		}
		if _, ok := matchRoot(p.root.Raw, []RootHash{{Algorithm: alg, Hex: want}}); !ok {
			t.Errorf("%s hash of the root not matched", alg)
		}
	}
	if _, ok := matchRoot(p.root.Raw, []RootHash{{Algorithm: "sha1", Hex: p.rootHash().Hex}}); ok {
		t.Error("a SHA-256 value under algorithm sha1 matched")
	}
}

func TestCheckPassword(t *testing.T) {
	for _, tc := range []struct {
		p  string
		ok bool
	}{
		{"P@ssw0rd1", true}, {"Aa1!aaaa", true}, {"short1A!", true},
		{"Aa1!aaa", false}, {"password1!", false}, {"PASSWORD1!", false}, {"Password!!", false},
		{"Password1_", false}, {"Pass word1", false}, {"Pass:word1", false}, {"Pass,word1!", false},
		{"Pässword1!", false}, {"Aa1!" + string(make([]byte, 29)), false},
	} {
		if err := CheckPassword(tc.p); (err == nil) != tc.ok {
			t.Errorf("CheckPassword(%q) = %v, want ok=%v", tc.p, err, tc.ok)
		}
	}
}

func ha1(user, realm, pass string) string {
	s := md5.Sum([]byte(user + ":" + realm + ":" + pass))
	return hex.EncodeToString(s[:])
}

func TestAdminSetupAndNonce(t *testing.T) {
	p := makeChain(t, chainOpts{})
	d := newTestDevice(t, Config{ExtraRootHashes: []RootHash{p.rootHash()}})
	addChain := func() {
		for i, c := range p.certs() {
			if code := d.AddNextCertInChain(c.Raw, i == 0, i == 2); code != 0 {
				t.Fatalf("AddNextCertInChain #%d = %d", i, code)
			}
		}
	}
	mc := make([]byte, 20)
	pass := ha1("admin", d.Realm(), "P@ssw0rd1")

	// A signature over the wrong nonce fails with AuthFailed, and the
	// nonce changes even so.
	n0 := d.ConfigurationNonce()
	addChain()
	if code := d.AdminSetup(2, pass, mc, 2, p.sign(t, []byte("not the nonce"), mc)); code != 5 {
		t.Fatalf("AdminSetup with a bad signature = %d, want 5", code)
	}
	n1 := d.ConfigurationNonce()
	if slices.Equal(n0, n1) || len(n1) != 20 {
		t.Fatalf("nonce not refreshed after use: %x → %x", n0, n1)
	}
	// Replaying a signature over the old nonce fails too.
	addChain()
	if code := d.AdminSetup(2, pass, mc, 2, p.sign(t, n0, mc)); code != 5 {
		t.Fatalf("AdminSetup with a replayed nonce = %d, want 5", code)
	}
	n2 := d.ConfigurationNonce()
	addChain()
	if code := d.AdminSetup(2, pass, mc, 2, p.sign(t, n2, mc)); code != 0 {
		t.Fatalf("AdminSetup = %d, want 0", code)
	}
	if d.ControlMode() != ModeACM {
		t.Fatalf("control mode %d, want ACM", d.ControlMode())
	}
	if code := d.AdminSetup(2, pass, mc, 2, nil); code != 2 {
		t.Fatalf("AdminSetup when activated = %d, want 2 InvalidState", code)
	}
}

func TestAdminSetupUntrustedRootIsAuthFailed(t *testing.T) {
	p := makeChain(t, chainOpts{})
	d := newTestDevice(t, Config{}) // root not added
	for i, c := range p.certs() {
		d.AddNextCertInChain(c.Raw, i == 0, i == 2)
	}
	mc := make([]byte, 20)
	if code := d.AdminSetup(2, ha1("admin", d.Realm(), "P@ssw0rd1"), mc, 2, p.sign(t, d.ConfigurationNonce(), mc)); code != 5 {
		t.Fatalf("AdminSetup with an untrusted root = %d, want 5 (spec/activation.md §6)", code)
	}
}

func TestCCMUpgradeAndPasswords(t *testing.T) {
	p := makeChain(t, chainOpts{})
	d := newTestDevice(t, Config{ExtraRootHashes: []RootHash{p.rootHash()}})
	if code := d.Setup(2, "not-hex"); code != 3 {
		t.Fatalf("Setup with a bad hash = %d, want 3", code)
	}
	if code := d.Setup(2, ha1("admin", d.Realm(), "P@ssw0rd1")); code != 0 || d.ControlMode() != ModeCCM {
		t.Fatalf("Setup = %d, mode %d", code, d.ControlMode())
	}
	if code := d.SetMEBxPassword("Mebx!Pass1"); code != ptNotPermitted {
		t.Fatalf("SetMEBxPassword in CCM = %d, want 16", code)
	}
	for i, c := range p.certs() {
		d.AddNextCertInChain(c.Raw, i == 0, i == 2)
	}
	mc := []byte("01234567890123456789")
	if code := d.UpgradeClientToAdmin(mc, 2, p.sign(t, d.ConfigurationNonce(), mc)); code != 0 || d.ControlMode() != ModeACM {
		t.Fatalf("UpgradeClientToAdmin = %d, mode %d", code, d.ControlMode())
	}
	// SetAdminAclEntryEx takes base64 of the raw MD5 (spec/wsman.md §2).
	raw, _ := hex.DecodeString(ha1("admin", d.Realm(), "N3w!Passw0rd"))
	if code := d.SetAdminAclEntryEx("admin", base64.StdEncoding.EncodeToString(raw)); code != 0 {
		t.Fatalf("SetAdminAclEntryEx = %d", code)
	}
	if got := d.Snapshot().AdminHA1; got != ha1("admin", d.Realm(), "N3w!Passw0rd") {
		t.Fatalf("admin HA1 %s not stored", got)
	}
	if code := d.SetAdminAclEntryEx("admin", "bm90IGEgaGFzaA=="); code != ptInvalidPass {
		t.Fatalf("SetAdminAclEntryEx with a short value = %d, want 2054", code)
	}
	if code := d.SetAdminAclEntryEx("$$OsAdmin", base64.StdEncoding.EncodeToString(raw)); code != ptInvalidName {
		t.Fatalf("SetAdminAclEntryEx for $$OsAdmin = %d, want 12", code)
	}
	// ACM commit needs the MEBx password.
	if code := d.CommitChanges(Session{}); code != ptDataMissing {
		t.Fatalf("CommitChanges without MEBx = %d, want 2057", code)
	}
	if code := d.SetMEBxPassword("weak"); code != ptInvalidPass {
		t.Fatalf("weak MEBx = %d, want 2054", code)
	}
	if code := d.SetMEBxPassword("Mebx!Pass1"); code != 0 {
		t.Fatalf("SetMEBxPassword = %d", code)
	}
	if code := d.CommitChanges(Session{}); code != 0 {
		t.Fatalf("CommitChanges = %d", code)
	}
}

func TestUnprovisionAndPersistence(t *testing.T) {
	dir := t.TempDir()
	u, _ := guid.Parse("33221100-5544-7766-8899-aabbccddeeff")
	p := makeChain(t, chainOpts{})
	d := newTestDevice(t, Config{UUID: u, StateDir: dir, ExtraRootHashes: []RootHash{p.rootHash()}})
	realm := d.Realm()
	if code := d.Setup(2, ha1("admin", realm, "P@ssw0rd1")); code != 0 {
		t.Fatal(code)
	}
	if id, code := d.GenerateKeyPair(0, 2048); code != 0 || id == "" {
		t.Fatalf("GenerateKeyPair = %q, %d", id, code)
	}
	d.SetClockOffset(-3600)

	// "Reboot" by booting a new Device from the same state directory.
	d2 := newTestDevice(t, Config{UUID: u, StateDir: dir})
	s := d2.Snapshot()
	if s.Realm != realm || s.ControlMode != ModeCCM || len(s.Keys) != 1 || s.ClockOffset != -3600 || len(s.UserHashes) != 1 {
		t.Fatalf("settings not kept across reboot: realm %s mode %d keys %d offset %d hashes %d", s.Realm, s.ControlMode, len(s.Keys), s.ClockOffset, len(s.UserHashes))
	}
	if code := d2.Unprovision(1); code != 0 {
		t.Fatalf("Unprovision = %d", code)
	}
	s = d2.Snapshot()
	if s.ControlMode != 0 || s.AdminHA1 != "" || len(s.Keys) != 0 || len(s.UserHashes) != 0 || s.Realm != realm {
		t.Fatalf("after Unprovision: mode %d admin %q keys %d user hashes %d realm %s", s.ControlMode, s.AdminHA1, len(s.Keys), len(s.UserHashes), s.Realm)
	}
	if code := d2.Unprovision(1); code != ptNotPermitted {
		t.Fatalf("Unprovision in pre-provisioning = %d, want 16", code)
	}
}

func TestClockAndPower(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	d := newTestDevice(t, Config{Now: func() time.Time { return now }})
	d.SetClockOffset(-100)
	ta0 := d.Time()
	if ta0 != now.Unix()-100 {
		t.Fatalf("Ta0 %d", ta0)
	}
	if code := d.SetHighAccuracyTimeSynch(ta0+1000, now.Unix(), now.Unix()); code != ptInvalidParam {
		t.Fatalf("future Ta0 = %d, want 36", code)
	}
	if code := d.SetHighAccuracyTimeSynch(ta0, now.Unix(), now.Unix()); code != 0 || d.Time() != now.Unix() {
		t.Fatalf("SetHighAccuracyTimeSynch = %d, clock %d", code, d.Time())
	}
	for _, tc := range []struct{ req, want int }{{8, 8}, {2, 2}, {5, 2}, {4, 4}, {12, 8}, {10, 2}} {
		if code := d.RequestPowerStateChange(tc.req); code != 0 || d.PowerState() != tc.want {
			t.Errorf("power %d: code %d state %d, want %d", tc.req, code, d.PowerState(), tc.want)
		}
	}
	if code := d.RequestPowerStateChange(99); code != cimInvalidParam {
		t.Errorf("power 99 = %d", code)
	}
}

func TestDigestCredentialsForms(t *testing.T) {
	d := newTestDevice(t, Config{RemoteConfig: true})
	// Setup session: admin with an empty password (spec/activation.md §3).
	h, ok := d.credentials(Session{Setup: true})("admin")
	if !ok || h.RevealString() != digest.HA1Hex("admin", d.Realm(), secret.Value{}).RevealString() {
		t.Fatal("setup session does not take admin with an empty password")
	}
	if _, ok := d.credentials(Session{})("admin"); ok {
		t.Fatal("a plain session in pre-provisioning accepted admin")
	}
}
