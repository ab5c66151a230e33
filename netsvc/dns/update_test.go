package dns

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"amtd/store"
)

// updateConfig allows unsigned updates from 127.0.0.0/29 and signed ones
// with key ddns-key.
func updateHarness(t *testing.T) (*harness, *store.Store, []byte) {
	t.Helper()
	st, _ := testStore(t)
	key := []byte("0123456789abcdef0123456789abcdef")
	putTSIG(t, st, "ddns-key", key)
	cfg := baseConfig()
	cfg.DNS.UpdateFrom = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/29")}
	cfg.DNS.UpdateKeys = []string{"ddns-key"}
	return startService(t, cfg, st), st, key
}

func (h *harness) nsupdate(t *testing.T, local, zone string, lines ...string) (string, bool) {
	t.Helper()
	script := fmt.Sprintf("server 127.0.0.1 %d\n", h.port)
	if local != "" {
		script += "local " + local + "\n"
	}
	script += "zone " + zone + "\n" + strings.Join(lines, "\n") + "\nsend\n"
	return nsupdate(t, script)
}

// TestNsupdateUnsigned drives the real nsupdate as AMT's DDNS client would
// (spec/network.md §4): from an allowed source, its own address, one name.
func TestNsupdateUnsigned(t *testing.T) {
	h, st, _ := updateHarness(t)

	out, ok := h.nsupdate(t, "127.0.0.5", "site.test", "update delete amt-5.site.test A", "update add amt-5.site.test 900 A 127.0.0.5")
	if !ok {
		t.Fatalf("unsigned update from an allowed source refused:\n%s\nlogs:\n%s", out, h.logs)
	}
	if got := answers(h.dig(t, "amt-5.site.test", "A")); !sameSet(got, []string{"amt-5.site.test. A 127.0.0.5"}) {
		t.Fatalf("after update: %q", got)
	}
	if got := answers(h.dig(t, "-x", "127.0.0.5")); !sameSet(got, []string{"5.0.0.127.in-addr.arpa. PTR amt-5.site.test."}) {
		t.Fatalf("reverse after update: %q", got)
	}
	recs, err := st.DNSRecords().List(context.Background(), store.SourceDDNS)
	if err != nil || len(recs) != 1 || recs[0].Name != "amt-5.site.test." || recs[0].Value != "127.0.0.5" {
		t.Fatalf("store holds %+v (err %v), want amt-5.site.test. A 127.0.0.5 from ddns", recs, err)
	}
	// The same device, moved to a new address, replaces its own record.
	if out, ok := h.nsupdate(t, "127.0.0.6", "site.test", "update delete amt-5.site.test A", "update add amt-5.site.test 900 A 127.0.0.6"); !ok {
		t.Fatalf("replace of its own name refused:\n%s", out)
	}
	if got := answers(h.dig(t, "amt-5.site.test", "A")); !sameSet(got, []string{"amt-5.site.test. A 127.0.0.6"}) {
		t.Fatalf("after replace: %q", got)
	}

	h.hosts.Set("leased.site.test", netip.MustParseAddr("10.20.30.40"))
	refused := []struct {
		name, local, zone string
		lines             []string
		rcode, reason     string
	}{
		{"source not in UpdateFrom", "127.0.1.9", "site.test", []string{"update add x1.site.test 900 A 127.0.1.9"}, "REFUSED", "not in [DNS] UpdateFrom="},
		{"another address than the source", "127.0.0.1", "site.test", []string{"update add x2.site.test 900 A 127.0.0.6"}, "REFUSED", "the source must be the address registered"},
		{"reverse zone", "127.0.0.2", "0.0.127.in-addr.arpa", []string{"update add 2.0.0.127.in-addr.arpa 900 PTR evil.site.test."}, "REFUSED", "forward zones only"},
		{"delete of another name", "127.0.0.3", "site.test", []string{"update delete amt-5.site.test A"}, "REFUSED", "adds nothing"},
		{"delete of another name with an add", "127.0.0.3", "site.test", []string{"update delete amt-5.site.test A", "update add x6.site.test 900 A 127.0.0.3"}, "REFUSED", "only one owner name"},
		{"two names", "127.0.0.4", "site.test", []string{"update add x3.site.test 900 A 127.0.0.4", "update add x4.site.test 900 A 127.0.0.4"}, "REFUSED", "only one owner name"},
		{"TXT record", "127.0.0.7", "site.test", []string{"update add x5.site.test 900 TXT hello"}, "REFUSED", "only A and AAAA"},
		{"hijack ProvisionServer", "127.0.0.1", "site.test", []string{"update add ProvisionServer.site.test 900 A 127.0.0.1"}, "REFUSED", "cannot be changed by an unsigned update"},
		{"static record", "127.0.0.2", "site.test", []string{"update add www.site.test 900 A 127.0.0.2"}, "REFUSED", "cannot be changed by an unsigned update"},
		{"a leased name", "127.0.0.4", "site.test", []string{"update add leased.site.test 900 A 127.0.0.4"}, "REFUSED", "another host's DHCP lease"},
		{"zone not ours", "127.0.0.7", "example.org", []string{"update add a.example.org 900 A 127.0.0.7"}, "NOTAUTH", "not authoritative for zone example.org."},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			before := len(h.logs.String())
			out, ok := h.nsupdate(t, tc.local, tc.zone, tc.lines...)
			if ok || !strings.Contains(out, tc.rcode) {
				t.Fatalf("nsupdate ok=%v, want failure with %s:\n%s", ok, tc.rcode, out)
			}
			if logged := h.logs.String()[before:]; !strings.Contains(logged, "update refused") || !strings.Contains(logged, tc.reason) {
				t.Fatalf("refusal not logged with reason %q:\n%s", tc.reason, logged)
			}
		})
	}
	if got := answers(h.dig(t, "amt-5.site.test", "A")); !sameSet(got, []string{"amt-5.site.test. A 127.0.0.6"}) {
		t.Fatalf("a refused update changed amt-5: %q", got)
	}
	for _, name := range []string{"x1", "x2", "x3", "x4", "x5", "x6"} {
		if s := digStatus(h.dig(t, name+".site.test", "ANY")); s != "NXDOMAIN" {
			t.Fatalf("%s.site.test exists after a refused update (%s)", name, s)
		}
	}
	if got := answers(h.dig(t, "ProvisionServer.site.test", "A")); !sameSet(got, []string{"ProvisionServer.site.test. A 127.0.0.10"}) {
		t.Fatalf("ProvisionServer changed: %q", got)
	}
	if got := answers(h.dig(t, "-x", "127.0.0.5")); len(got) != 0 {
		t.Fatalf("reverse record for the old address remains or was hijacked: %q", got)
	}

	// A flood of unsigned updates from one address is cut off.
	var limited bool
	for range 20 {
		out, ok := h.nsupdate(t, "127.0.0.6", "site.test", "update add amt-5.site.test 900 A 127.0.0.6")
		if !ok && strings.Contains(out, "REFUSED") {
			limited = true
			break
		}
	}
	if !limited || !strings.Contains(h.logs.String(), "too many unsigned updates from 127.0.0.6") {
		t.Fatal("20 updates in a row from one address were all accepted: no update rate limit")
	}
}

// TestNsupdateSigned: a TSIG-signed nsupdate may change anything in the
// zones; a wrong secret or an unknown key is NOTAUTH; what was accepted
// survives a restart on the same store file.
func TestNsupdateSigned(t *testing.T) {
	h, _, key := updateHarness(t)
	good := "key hmac-sha256:ddns-key " + base64.StdEncoding.EncodeToString(key)

	out, ok := h.nsupdate(t, "127.0.1.9", "site.test", good,
		"update add printer.site.test 600 A 10.20.30.50",
		"update add printer.site.test 600 TXT \"floor 2\"",
		"update add docs.site.test 600 CNAME printer.site.test.")
	if !ok {
		t.Fatalf("signed update refused:\n%s\nlogs:\n%s", out, h.logs)
	}
	out, ok = h.nsupdate(t, "127.0.1.9", "30.20.10.in-addr.arpa", good, "update add 60.30.20.10.in-addr.arpa 600 PTR scanner.site.test.")
	if !ok {
		t.Fatalf("signed reverse update refused:\n%s", out)
	}
	check := func(when string, docs bool) {
		t.Helper()
		if got := answers(h.dig(t, "printer.site.test", "A")); !sameSet(got, []string{"printer.site.test. A 10.20.30.50"}) {
			t.Fatalf("%s: printer A %q", when, got)
		}
		if got := answers(h.dig(t, "printer.site.test", "TXT")); !sameSet(got, []string{`printer.site.test. TXT "floor 2"`}) {
			t.Fatalf("%s: printer TXT %q", when, got)
		}
		if got := answers(h.dig(t, "docs.site.test", "A")); docs && !sameSet(got, []string{"docs.site.test. CNAME printer.site.test.", "printer.site.test. A 10.20.30.50"}) {
			t.Fatalf("%s: docs %q", when, got)
		}
		if got := answers(h.dig(t, "-x", "10.20.30.60")); !sameSet(got, []string{"60.30.20.10.in-addr.arpa. PTR scanner.site.test."}) {
			t.Fatalf("%s: PTR %q", when, got)
		}
		if got := answers(h.dig(t, "-x", "10.20.30.50")); !sameSet(got, []string{"50.30.20.10.in-addr.arpa. PTR printer.site.test."}) {
			t.Fatalf("%s: printer PTR %q", when, got)
		}
	}
	check("after update", true)

	wrong := "key hmac-sha256:ddns-key " + base64.StdEncoding.EncodeToString([]byte("another secret, also 32 bytes!!!"))
	unknown := "key hmac-sha256:other-key " + base64.StdEncoding.EncodeToString(key)
	for _, k := range []string{wrong, unknown} {
		out, ok := h.nsupdate(t, "127.0.1.9", "site.test", k, "update add rogue.site.test 600 A 10.20.30.66")
		if ok || !strings.Contains(out, "NOTAUTH") {
			t.Fatalf("update with a bad key: ok=%v, want NOTAUTH:\n%s", ok, out)
		}
	}
	if s := digStatus(h.dig(t, "rogue.site.test", "A")); s != "NXDOMAIN" {
		t.Fatalf("a badly signed update took effect: %s", s)
	}
	// Even signed, SOA and NS stay amtd's.
	if out, ok := h.nsupdate(t, "", "site.test", good, "update add site.test 600 NS evil.example."); ok {
		t.Fatalf("NS change accepted:\n%s", out)
	}
	// A signed delete works.
	if out, ok := h.nsupdate(t, "", "site.test", good, "update delete docs.site.test CNAME"); !ok {
		t.Fatalf("signed delete refused:\n%s", out)
	}
	if s := digStatus(h.dig(t, "docs.site.test", "A")); s != "NXDOMAIN" {
		t.Fatalf("docs.site.test after delete: %s", s)
	}

	// Restart on the same store with an empty host table, as after a reboot.
	h.stop(t)
	h.hosts.Remove("printer.site.test")
	h.start(t)
	check("after restart", false)
	if s := digStatus(h.dig(t, "docs.site.test", "A")); s != "NXDOMAIN" {
		t.Fatalf("deleted docs.site.test came back after restart: %s", s)
	}
}
