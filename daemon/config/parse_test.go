package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// site is a valid [Site] that the cases below build on (lines 1-3).
const site = "[Site]\nDomain=corp.example.com\nAddress=192.0.2.10\n"

// problemLines parses text and returns its problems as "LINE: message".
func problemLines(t *testing.T, text string) []string {
	t.Helper()
	cfg, err := Parse("test.conf", strings.NewReader(text))
	if err == nil {
		if cfg == nil {
			t.Fatal("Parse returned neither a config nor an error")
		}
		return nil
	}
	if cfg != nil {
		t.Errorf("Parse returned a config and an error")
	}
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T, want *config.Errors: %v", err, err)
	}
	var out []string
	for _, p := range errs.Problems {
		if p.File != "test.conf" {
			t.Errorf("problem %q names file %q", p.Msg, p.File)
		}
		if !strings.HasPrefix(p.Error(), fmt.Sprintf("test.conf:%d: ", p.Line)) && p.Line != 0 {
			t.Errorf("problem %q is not FILE:LINE: message", p.Error())
		}
		out = append(out, fmt.Sprintf("%d: %s", p.Line, p.Msg))
	}
	return out
}

func TestParseProblems(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string // "LINE: part of the message", in order, all of them
	}{
		// Syntax.
		{"key before section", "Domain=x\n[Site]\n", []string{"1: assignment \"Domain=\" comes before any [Section] header"}},
		{"no equals", site + "Domain corp.example.com\n", []string{"4: line \"Domain corp.example.com\" is not Key=value"}},
		{"no key", site + "=yes\n", []string{"4: assignment \"=yes\" has no key"}},
		{"broken header", site + "[DHCP\nEnable=yes\n", []string{"4: section header \"[DHCP\" does not end with ']'"}},
		{"header with comment", site + "[DNS] # the resolver\nEnable=yes\n", []string{"4: section header \"[DNS] # the resolver\" does not end with ']' (a comment must be on a line of its own, starting with # or ;)"}},
		{"empty header", "[]\nFoo=1\n", []string{"1: empty section header []"}},
		{"bad utf8", site + "Hostname=a\xffb.example.com\n", []string{"4: line is not valid UTF-8", "4: [Site] Hostname=a\ufffdb.example.com: label"}},

		// Unknown names, with what was meant.
		{"unknown section", site + "[DHCPPools]\nSubnet=192.0.2.0/24\n", []string{"4: unknown section [DHCPPools] (did you mean [DHCPPool]?)"}},
		{"section case", "[site]\nDomain=corp.example.com\n", []string{"1: unknown section [site] (did you mean [Site]?)"}},
		{"unknown key prefix", site + "[DHCP]\nLease=5min\n", []string{"5: unknown key Lease in [DHCP] (did you mean LeaseTime?)"}},
		{"unknown key typo", site + "[DHCP]\nLeaseTiem=5min\n", []string{"5: unknown key LeaseTiem in [DHCP] (did you mean LeaseTime?)"}},
		{"unknown key case", site + "[DNS]\nupstream=192.0.2.1\n", []string{"5: unknown key upstream in [DNS] (did you mean Upstream?)"}},
		{"key of another section", site + "[DHCP]\nUpstream=192.0.2.1\n", []string{"5: unknown key Upstream in [DHCP]: Upstream= belongs in [DNS]"}},
		{"unknown key far", site + "[Log]\nVerbosity=3\n", []string{"5: unknown key Verbosity in [Log] (the keys of [Log] are Level, Format)"}},

		// Values.
		{"bool", site + "[DHCP]\nAuthoritative=maybe\n", []string{"5: [DHCP] Authoritative=maybe: not a boolean: write yes or no"}},
		{"duration", site + "[DHCP]\nLeaseTime=ten minutes\n", []string{"5: [DHCP] LeaseTime=ten minutes: not a duration"}},
		{"duration unit", site + "[DHCP]\nLeaseTime=10 fortnights\n", []string{"5: [DHCP] LeaseTime=10 fortnights: unknown unit \"fortnights\""}},
		{"duration zero", site + "[DHCP]\nLeaseTime=0\n", []string{"5: [DHCP] LeaseTime=0: must be at least 1s"}},
		{"duration no unit in sum", site + "[DNS]\nTTL=1h 30\n", []string{"5: [DNS] TTL=1h 30: 30 has no unit"}},
		{"ttl fraction", site + "[DNS]\nTTL=1.5s\n", []string{"5: [DNS] TTL=1.5s: a DNS TTL is whole seconds"}},
		{"address", site + "Address=192.0.2.300\n", []string{"4: [Site] Address=192.0.2.300: not an IP address"}},
		{"address is subnet", site + "Address=192.0.2.10/24\n", []string{"4: [Site] Address=192.0.2.10/24: is a subnet, not an address"}},
		{"address unspecified", site + "Address=0.0.0.0\n", []string{"4: [Site] Address=0.0.0.0: is not an address devices can reach"}},
		{"address duplicate", site + "Address=192.0.2.10\n", []string{"4: [Site] Address=192.0.2.10 is already given at line 3"}},
		{"domain underscore", site + "Domain=my_site.example.com\n", []string{"4: [Site] Domain=my_site.example.com: label \"my_site\" has \"_\""}},
		{"domain idn", site + "Domain=bücher.example.com\n", []string{"4: [Site] Domain=bücher.example.com: label \"bücher\" is not ASCII: write an internationalized name in its xn-- form"}},
		{"domain empty label", site + "Domain=corp..example.com\n", []string{"4: [Site] Domain=corp..example.com: has an empty label"}},
		{"domain hyphen", site + "Domain=-corp.example.com\n", []string{"4: [Site] Domain=-corp.example.com: label \"-corp\" starts or ends with '-'"}},
		{"domain is address", site + "Domain=192.0.2.1\n", []string{"4: [Site] Domain=192.0.2.1: is an IP address, not a domain name"}},
		{"domain duplicate", site + "Domain=CORP.example.com.\n", []string{"4: [Site] Domain=corp.example.com is already given at line 2"}},
		{"domain too long", site + "Domain=" + strings.Repeat("a.", 130) + "com\n", []string{"4: [Site] Domain=a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.…: is longer than 253 characters"}},
		{"hostname single label", site + "Hostname=amtd\n", []string{"4: [Site] Hostname=amtd: is not fully qualified: write amtd.corp.example.com"}},
		{"path relative", site + "[Store]\nPath=amtd.db\n", []string{"5: [Store] Path=amtd.db: is not an absolute path"}},
		{"socket too long", site + "[Control]\nSocket=/" + strings.Repeat("s", 120) + "\n", []string{"5: [Control] Socket=/sssssssssssssssssssssssssssssssssssssssssssssssssssssssssss…: is 121 bytes: a unix socket path has at most 107"}},
		{"group", site + "[Control]\nGroup=-wheel\n", []string{"5: [Control] Group=-wheel: not a group name"}},
		{"level", site + "[Log]\nLevel=verbose\n", []string{"5: [Log] Level=verbose: not a log level: write debug, info, warn or error"}},
		{"format", site + "[Log]\nFormat=xml\n", []string{"5: [Log] Format=xml: not a log format"}},
		{"listen no port", site + "[DNS]\nListen=0.0.0.0\n", []string{"5: [DNS] Listen=0.0.0.0: not a listen address: write ADDRESS:PORT"}},
		{"listen no address", site + "[DNS]\nListen=:53\n", []string{"5: [DNS] Listen=:53: has no address: write 0.0.0.0:53 for every IPv4 address or [::]:53 for every address"}},
		{"record txt backslash", site + "[DNS]\nRecord=t TXT a\\b\n", []string{"5: [DNS] Record=t TXT a\\\\b: TXT text cannot start with a quote or hold a backslash"}},
		{"listen name", site + "[DNS]\nListen=localhost:53\n", []string{"5: [DNS] Listen=localhost:53: host \"localhost\" is not an IP address"}},
		{"listen port", site + "[DNS]\nListen=0.0.0.0:65536\n", []string{"5: [DNS] Listen=0.0.0.0:65536: port \"65536\" is not a number from 0 to 65535"}},
		{"dhcp listen v6", site + "[DHCP]\nListen=[::]:67\n", []string{"5: [DHCP] Listen=[::]:67: is IPv6: DHCPv4 listens on an IPv4 address"}},
		{"key name", site + "[DNS]\nUpdateKey=bad key\n", []string{"5: [DNS] UpdateKey=bad key: label \"bad key\" has \" \""}},
		{"upstream name", site + "[DNS]\nUpstream=dns.google\n", []string{"5: [DNS] Upstream=dns.google: not a resolver address"}},
		{"cache size", site + "[DNS]\nCacheSize=-1\n", []string{"5: [DNS] CacheSize=-1: not a whole number from 0 to 10000000"}},
		{"update from host bits", site + "[DNS]\nUpdateFrom=192.0.2.1/24\n", []string{"5: [DNS] UpdateFrom=192.0.2.1/24: has host bits set: the subnet is 192.0.2.0/24"}},
		{"update from address", site + "[DNS]\nUpdateFrom=192.0.2.1\n", []string{"5: [DNS] UpdateFrom=192.0.2.1: is an address, not a subnet"}},
		{"interface", site + "[DHCP]\nInterface=eth0/1\n", []string{"5: [DHCP] Interface=eth0/1: not an interface name"}},
		{"dhcp dns v6", site + "[DHCP]\nDNS=2001:db8::1\n", []string{"5: [DHCP] DNS=2001:db8::1: is not IPv4"}},
		{"algorithm md5", site + "[DNSRegistrar]\nAlgorithm=hmac-md5\n", []string{"5: [DNSRegistrar] Algorithm=hmac-md5: HMAC-MD5 is not supported"}},
		{"server", site + "[DNSRegistrar]\nServer=ns1:abc\n", []string{"5: [DNSRegistrar] Server=ns1:abc: port \"abc\" is not a number"}},
		{"quoted value", site + "[DHCP]\nEnable=\"yes\"\n", []string{"5: [DHCP] Enable=\\\"yes\\\": not a boolean: write yes or no (values in amtd.conf are not quoted: remove the quotes)"}},
		{"trailing comment", site + "[DHCP]\nLeaseTime=10min # ten minutes\n", []string{"5: [DHCP] LeaseTime=10min # ten minutes: not a duration: write a number and a unit, as 90s, 10min, 1h 30min, 2d or Go's 1h30m (a comment must be on a line of its own, starting with # or ;)"}},

		// [DHCPPool] and [DHCPReservation].
		{"pool without keys", site + "[DHCPPool]\n", []string{"4: [DHCPPool] has no Subnet=: add Subnet=192.0.2.0/24", "4: [DHCPPool] has no Range=: add Range=192.0.2.100-192.0.2.199"}},
		{"pool v6", site + "[DHCPPool]\nSubnet=2001:db8::/64\nRange=192.0.2.100-192.0.2.200\n", []string{"4: [DHCPPool] has no Subnet=", "5: [DHCPPool] Subnet=2001:db8::/64: is not IPv4: amtd serves DHCPv4 only"}},
		{"pool /31", site + "[DHCPPool]\nSubnet=192.0.2.0/31\nRange=192.0.2.0-192.0.2.1\n", []string{"4: [DHCPPool] has no Subnet=", "5: [DHCPPool] Subnet=192.0.2.0/31: leaves no addresses for clients"}},
		{"range outside", site + "[DHCPPool]\nSubnet=192.0.2.0/24\nRange=192.0.2.100-192.0.3.10\n", []string{"6: [DHCPPool] Range=192.0.2.100-192.0.3.10 is not inside Subnet=192.0.2.0/24"}},
		{"range backwards", site + "[DHCPPool]\nSubnet=192.0.2.0/24\nRange=192.0.2.200-192.0.2.100\n", []string{"4: [DHCPPool] has no Range=", "6: [DHCPPool] Range=192.0.2.200-192.0.2.100: ends before it starts: write 192.0.2.100-192.0.2.200"}},
		{"range network address", site + "[DHCPPool]\nSubnet=192.0.2.0/24\nRange=192.0.2.0-192.0.2.10\n", []string{"6: [DHCPPool] Range=192.0.2.0-192.0.2.10 includes 192.0.2.0, the subnet's own address: start it at 192.0.2.1"}},
		{"range broadcast", site + "[DHCPPool]\nSubnet=192.0.2.0/24\nRange=192.0.2.200-192.0.2.255\n", []string{"6: [DHCPPool] Range=192.0.2.200-192.0.2.255 includes 192.0.2.255, the subnet's broadcast address: end it at 192.0.2.254"}},
		{"range not a range", site + "[DHCPPool]\nSubnet=192.0.2.0/24\nRange=192.0.2.100\n", []string{"4: [DHCPPool] has no Range=", "6: [DHCPPool] Range=192.0.2.100: not a range: write START-END"}},
		{"ranges overlap", site + "[DHCPPool]\nSubnet=192.0.2.0/24\nRange=192.0.2.100-192.0.2.150\nRange=192.0.2.140-192.0.2.160\n", []string{"7: [DHCPPool] Range=192.0.2.140-192.0.2.160 overlaps Range=192.0.2.100-192.0.2.150 at line 6"}},
		{"subnets overlap", site + "[DHCPPool]\nSubnet=10.0.0.0/8\nRange=10.0.0.10-10.0.0.20\n[DHCPPool]\nSubnet=10.1.0.0/24\nRange=10.1.0.10-10.1.0.20\n[DHCPPool]\nSubnet=10.0.0.0/24\nRange=10.0.0.30-10.0.0.40\n",
			[]string{"8: [DHCPPool] Subnet=10.1.0.0/24 overlaps Subnet=10.0.0.0/8 at line 5: each link needs a subnet of its own", "11: [DHCPPool] Subnet=10.0.0.0/24 overlaps Subnet=10.0.0.0/8 at line 5"}},
		{"router outside", site + "[DHCPPool]\nSubnet=192.0.2.0/24\nRange=192.0.2.100-192.0.2.199\nRouter=198.51.100.1\n", []string{"7: [DHCPPool] Router=198.51.100.1 is not a host address inside Subnet=192.0.2.0/24"}},
		{"pool domain not site", site + "[DHCPPool]\nSubnet=192.0.2.0/24\nRange=192.0.2.100-192.0.2.199\nDomain=corp.exmple.com\n", []string{"7: [DHCPPool] Domain=corp.exmple.com is not a [Site] Domain= (did you mean corp.example.com?): devices in this pool would look up ProvisionServer.corp.exmple.com"}},
		{"reservation without keys", site + "[DHCPPool]\nSubnet=192.0.2.0/24\nRange=192.0.2.100-192.0.2.199\n[DHCPReservation]\nHostname=desk\n", []string{"7: [DHCPReservation] has no MACAddress=", "7: [DHCPReservation] has no Address="}},
		{"reservation outside pools", site + "[DHCPPool]\nSubnet=192.0.2.0/24\nRange=192.0.2.100-192.0.2.199\n[DHCPReservation]\nMACAddress=00:16:3e:12:34:56\nAddress=198.51.100.5\n", []string{"9: [DHCPReservation] Address=198.51.100.5 is inside no [DHCPPool] Subnet="}},
		{"reservation broadcast", site + "[DHCPPool]\nSubnet=192.0.2.0/24\nRange=192.0.2.100-192.0.2.199\n[DHCPReservation]\nMACAddress=00:16:3e:12:34:56\nAddress=192.0.2.255\n", []string{"9: [DHCPReservation] Address=192.0.2.255 is the network or broadcast address of Subnet=192.0.2.0/24"}},
		{"reservation is site address", site + "[DHCPPool]\nSubnet=192.0.2.0/24\nRange=192.0.2.100-192.0.2.199\n[DHCPReservation]\nMACAddress=00:16:3e:12:34:56\nAddress=192.0.2.10\n", []string{"9: [DHCPReservation] Address=192.0.2.10 is this appliance's own [Site] Address="}},
		{"reservation duplicates", site + "[DHCPPool]\nSubnet=192.0.2.0/24\nRange=192.0.2.100-192.0.2.199\n[DHCPReservation]\nMACAddress=00:16:3e:12:34:56\nAddress=192.0.2.20\n[DHCPReservation]\nMACAddress=00-16-3E-12-34-56\nAddress=192.0.2.20\n",
			[]string{"11: [DHCPReservation] MACAddress=00:16:3e:12:34:56 is already reserved at line 8", "12: [DHCPReservation] Address=192.0.2.20 is already reserved at line 9"}},
		{"mac", site + "[DHCPReservation]\nMACAddress=00:16:3e:12:34\nAddress=192.0.2.20\n", []string{"4: [DHCPReservation] has no MACAddress=", "5: [DHCPReservation] MACAddress=00:16:3e:12:34: not a MAC address", "6: [DHCPReservation] Address=192.0.2.20 is inside no [DHCPPool]"}},
		{"mac multicast", site + "[DHCPReservation]\nMACAddress=01:00:5e:00:00:01\n", []string{"4: [DHCPReservation] has no MACAddress=", "4: [DHCPReservation] has no Address=", "5: [DHCPReservation] MACAddress=01:00:5e:00:00:01: is a multicast address"}},

		// [DNS] Record=.
		{"record syntax", site + "[DNS]\nRecord=nas A\n", []string{"5: [DNS] Record=nas A: not a record: write NAME TYPE VALUE"}},
		{"record type", site + "[DNS]\nRecord=nas MX mail.corp.example.com\n", []string{"5: [DNS] Record=nas MX mail.corp.example.com: type MX is not one of A, AAAA, CNAME, TXT, PTR"}},
		{"record a v6", site + "[DNS]\nRecord=nas A 2001:db8::5\n", []string{"5: [DNS] Record=nas A 2001:db8::5: 2001:db8::5 is not an IPv4 address"}},
		{"record outside site", site + "[DNS]\nRecord=www.example.org A 192.0.2.80\n", []string{"5: [DNS] Record=www.example.org. is not inside any [Site] Domain= (corp.example.com)"}},
		{"record fqdn dot outside", site + "[DNS]\nRecord=nas. A 192.0.2.80\n", []string{"5: [DNS] Record=nas. is not inside any [Site] Domain="}},
		{"record provisionserver", site + "[DNS]\nRecord=ProvisionServer A 192.0.2.99\n", []string{"5: [DNS] Record=provisionserver.corp.example.com.: amtd answers ProvisionServer.corp.example.com itself"}},
		{"record cname conflict", site + "[DNS]\nRecord=nas A 192.0.2.5\nRecord=nas.corp.example.com CNAME files\n", []string{"6: [DNS] Record=nas.corp.example.com. CNAME: the name already has a record (A, line 5)"}},
		{"record ptr name", site + "[DNS]\nRecord=nas PTR nas.corp.example.com\n", []string{"5: [DNS] Record=nas PTR nas.corp.example.com: a PTR record's name is an address"}},
		{"record without site", "[DNS]\nRecord=nas A 192.0.2.5\n", []string{"2: [DNS] Record=nas: needs a [Site] Domain= to be in"}},

		// Cross-checks.
		{"dns needs site", "[DNS]\nEnable=yes\n", []string{"2: [DNS] enabled: [Site] needs at least one Domain=", "2: [DNS] enabled: [Site] needs at least one Address="}},
		{"dhcp and dns need address", "[Site]\nDomain=corp.example.com\n[DNS]\nEnable=yes\n[DHCP]\nEnable=yes\n[DHCPPool]\nSubnet=192.0.2.0/24\nRange=192.0.2.100-192.0.2.199\n", []string{"4: [DHCP], [DNS] enabled: [Site] needs at least one Address="}},
		{"dhcp needs pool", site + "[DHCP]\nEnable=yes\n", []string{"5: [DHCP] Enable=yes needs at least one [DHCPPool] section"}},
		{"registrar needs server and key", site + "[DNSRegistrar]\nEnable=yes\n", []string{"5: [DNSRegistrar] Enable=yes needs Server=", "5: [DNSRegistrar] Enable=yes needs Key="}},
		{"cira idle timeout", site + "[CIRA]\nIdleTimeout=0\n", []string{"5: [CIRA] IdleTimeout=0"}},
		{"cira idle under two keep-alives", site + "[CIRA]\nKeepAlive=60s\nIdleTimeout=90s\n", []string{"6: [CIRA] IdleTimeout=1m30s must be at least twice KeepAlive=1m0s"}},
		{"agent without token", site + "[Provisioning]\nEnable=on\nAgentListen=0.0.0.0:8443\n", []string{"6: [Provisioning] AgentListen= needs AgentTokenFile="}},
		{"agent allow-from", site + "[Provisioning]\nAgentAllowFrom=10.0.0.0/33\n", []string{"5: [Provisioning] AgentAllowFrom=10.0.0.0/33"}},
		{"activations zero", site + "[Provisioning]\nMaxConcurrentActivations=0\n", []string{"5: [Provisioning] MaxConcurrentActivations=0: not a whole number from 1 to 1024"}},
		{"agent trust", site + "[Provisioning]\nAgentTLSTrust=none\n", []string{"5: [Provisioning] AgentTLSTrust=none: not a trust policy: write odca (AMT's On-Die CA chain, checked) or log (anything, logged)"}},
		{"activations too many", site + "[Provisioning]\nMaxConcurrentActivations=5000\n", []string{"5: [Provisioning] MaxConcurrentActivations=5000: not a whole number from 1 to 1024"}},
		{"port conflict", site + "[DNS]\nEnable=yes\nListen=127.0.0.1:8053\n[DHCP]\nEnable=yes\nListen=0.0.0.0:8053\n[DHCPPool]\nSubnet=192.0.2.0/24\nRange=192.0.2.100-192.0.2.199\n",
			[]string{"9: [DNS] Listen=127.0.0.1:8053 and [DHCP] Listen=0.0.0.0:8053 use the same port"}},

		// Every problem, in line order, not just the first.
		{"many", "[Site]\nDomain=bad_domain\nAddress=nope\n[DHCP]\nEnable=perhaps\nLeaseTime=forever\n[Nope]\n",
			[]string{"2: [Site] Domain=bad_domain", "3: [Site] Address=nope", "5: [DHCP] Enable=perhaps", "6: [DHCP] LeaseTime=forever", "7: unknown section [Nope]"}},
		// Problems point at the first line of a continued line.
		{"continued line", site + "[DHCP]\nLeaseTime=10 \\\n  minutes \\\n  please\nEnable=x\n", []string{"5: [DHCP] LeaseTime=10    minutes    please: not a duration", "8: [DHCP] Enable=x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := problemLines(t, tt.text)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("problem %d:\n got  %s\n want %s…", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestParseDefaults(t *testing.T) {
	cfg, err := Parse("empty.conf", strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Path:         "empty.conf",
		Store:        Store{Path: "/var/lib/amtd/amtd.db", BackupDir: "/var/lib/amtd/backup"},
		Log:          Log{Level: "info", Format: "auto"},
		Control:      Control{Socket: "/run/amtd/control.sock"},
		DHCP:         DHCP{Listen: "0.0.0.0:67", LeaseTime: 10 * time.Minute, Authoritative: true, UpdateDNS: true},
		DNS:          DNS{Listen: "0.0.0.0:53", CacheSize: 10000, TTL: 5 * time.Minute, SingleLabel: true, RateLimit: 50},
		Registrar:    DNSRegistrar{Algorithm: "hmac-sha256", Interval: time.Hour, TTL: 5 * time.Minute},
		Provisioning: Provisioning{HelloListen: "0.0.0.0:9971", MaxConcurrentActivations: 32, AgentTLSTrust: "odca"},
		CIRA:         CIRA{Listen: "0.0.0.0:4433", KeepAlive: 30 * time.Second, IdleTimeout: 90 * time.Second},
		API:          API{Listen: "0.0.0.0:3000"},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("defaults:\n got  %+v\n want %+v", cfg, want)
	}
}

func TestParseFull(t *testing.T) {
	text := `# a whole site
[Site]
Domain=Corp.Example.com.
Domain=lab.example.com
Address=192.0.2.10
Address=2001:db8::10

[Store]
Path=/srv/amtd/amtd.db

[DHCP]
Enable=yes
Interface=eth1
LeaseTime=1h 30min
Authoritative=no

[DHCPPool]
Subnet=192.0.2.0/24
Range=192.0.2.100 - 192.0.2.149
Range=192.0.2.150-192.0.2.199
Router=192.0.2.1

[DHCPPool]
Subnet=198.51.100.0/24
Range=198.51.100.10-198.51.100.20
Domain=lab.example.com
DNS=198.51.100.1
LeaseTime=2d

[DHCPReservation]
MACAddress=00-16-3E-AA-BB-CC
Address=198.51.100.5
Hostname=Desk-5

[DNS]
Enable=yes
Listen=[::]:53
Upstream=192.0.2.1
Upstream=[2001:db8::1]:5353
TTL=90
UpdateFrom=192.0.2.0/24
UpdateKey=amtd-key.
UpdateKey=AMTD_dhcp
Record=nas A 192.0.2.5
Record=@ TXT "v=spf1 -all"
Record=v6.lab.example.com AAAA 2001:db8::5
Record=files CNAME nas.corp.example.com
Record=192.0.2.5 PTR nas.corp.example.com
Record=_acme-challenge.corp.example.com. TXT token

[DNSRegistrar]
Enable=yes
Server=ns1.corp.example.com
Key=amtd-update
Algorithm=HMAC-SHA512
Interval=30m
`
	cfg, err := Parse("full.conf", strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr
	check := func(what string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", what, got, want)
		}
	}
	check("Site", cfg.Site, Site{Domains: []string{"corp.example.com", "lab.example.com"}, Hostname: "amtd.corp.example.com",
		Addresses: []netip.Addr{ip("192.0.2.10"), ip("2001:db8::10")}})
	check("Store", cfg.Store, Store{Path: "/srv/amtd/amtd.db", BackupDir: "/srv/amtd/backup"})
	check("DHCP", cfg.DHCP, DHCP{Enable: true, Interfaces: []string{"eth1"}, Listen: "0.0.0.0:67", LeaseTime: 90 * time.Minute,
		DNS: []netip.Addr{ip("192.0.2.10")}, UpdateDNS: true})
	check("pools", cfg.DHCPPools, []DHCPPool{
		{Line: 17, Subnet: netip.MustParsePrefix("192.0.2.0/24"),
			Ranges:  []AddrRange{{ip("192.0.2.100"), ip("192.0.2.149")}, {ip("192.0.2.150"), ip("192.0.2.199")}},
			Routers: []netip.Addr{ip("192.0.2.1")}, DNS: []netip.Addr{ip("192.0.2.10")}, Domain: "corp.example.com", LeaseTime: 90 * time.Minute},
		{Line: 23, Subnet: netip.MustParsePrefix("198.51.100.0/24"),
			Ranges: []AddrRange{{ip("198.51.100.10"), ip("198.51.100.20")}},
			DNS:    []netip.Addr{ip("198.51.100.1")}, Domain: "lab.example.com", LeaseTime: 48 * time.Hour},
	})
	check("reservations", cfg.Reservations, []DHCPReservation{{Line: 30, MAC: [6]byte{0, 0x16, 0x3e, 0xaa, 0xbb, 0xcc}, Address: ip("198.51.100.5"), Hostname: "desk-5"}})
	check("DNS", cfg.DNS, DNS{Enable: true, Listen: "[::]:53", Upstreams: []string{"192.0.2.1:53", "[2001:db8::1]:5353"}, CacheSize: 10000,
		TTL: 90 * time.Second, SingleLabel: true, UpdateFrom: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, UpdateKeys: []string{"amtd-key", "amtd_dhcp"}, RateLimit: 50})
	check("records", cfg.DNSRecords, []DNSRecord{
		{Line: 44, Name: "nas.corp.example.com.", Type: "A", Value: "192.0.2.5"},
		{Line: 45, Name: "corp.example.com.", Type: "TXT", Value: "v=spf1 -all"},
		{Line: 46, Name: "v6.lab.example.com.", Type: "AAAA", Value: "2001:db8::5"},
		{Line: 47, Name: "files.corp.example.com.", Type: "CNAME", Value: "nas.corp.example.com."},
		{Line: 48, Name: "5.2.0.192.in-addr.arpa.", Type: "PTR", Value: "nas.corp.example.com."},
		{Line: 49, Name: "_acme-challenge.corp.example.com.", Type: "TXT", Value: "token"},
	})
	check("Registrar", cfg.Registrar, DNSRegistrar{Enable: true, Server: "ns1.corp.example.com:53", Zone: "corp.example.com", Key: "amtd-update",
		Algorithm: "hmac-sha512", Interval: 30 * time.Minute, TTL: 5 * time.Minute})
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings: %v", cfg.Warnings)
	}
	if got, want := cfg.Summary(), "site corp.example.com, lab.example.com (amtd.corp.example.com, 192.0.2.10, 2001:db8::10); enabled: dns on [::]:53 (6 records), dhcp on 0.0.0.0:67 (2 pools, 1 reservation), dnsregistrar to ns1.corp.example.com:53"; got != want {
		t.Errorf("Summary:\n got  %s\n want %s", got, want)
	}
}

// TestParseSystemdSemantics checks the systemd rules the man page promises:
// last assignment wins, an empty one resets, sections merge, continuations.
func TestParseSystemdSemantics(t *testing.T) {
	text := "\ufeff; comment\r\n" +
		"[Site]\r\n" +
		"  Domain = old.example.com  \n" +
		"Domain=\n" + // clears the list
		"Domain=corp.example.com\n" +
		"Address=192.0.2.10\n" +
		"[DNS]\n" +
		"TTL=1min\n" +
		"TTL=\n" + // back to the default
		"Listen=127.0.0.1:5300\n" +
		"Listen=127.0.0.1:5353\n" + // the last wins
		"Upstream=192.0.2.1 \\\n" +
		"# comment lines inside a continuation are skipped\n" +
		"\n" +
		"[Site]\n" + // merges with the first [Site]
		"Domain=lab.example.com\n" +
		"Address=2001:db8::10\\\n" // continuation at the end of the file
	cfg, err := Parse("s.conf", strings.NewReader(text))
	// "Upstream=192.0.2.1 " followed by an empty line ends the continuation.
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Site.Domains; !reflect.DeepEqual(got, []string{"corp.example.com", "lab.example.com"}) {
		t.Errorf("Domains = %v", got)
	}
	if got := cfg.Site.Addresses; len(got) != 2 || got[1] != netip.MustParseAddr("2001:db8::10") {
		t.Errorf("Addresses = %v", got)
	}
	if cfg.DNS.TTL != 5*time.Minute || cfg.DNS.Listen != "127.0.0.1:5353" {
		t.Errorf("TTL %v Listen %s, want 5m0s 127.0.0.1:5353", cfg.DNS.TTL, cfg.DNS.Listen)
	}
	if !reflect.DeepEqual(cfg.DNS.Upstreams, []string{"192.0.2.1:53"}) {
		t.Errorf("Upstreams = %v", cfg.DNS.Upstreams)
	}

	// An odd number of trailing backslashes continues; an even one is an
	// escaped backslash, and the line ends there.
	_, err = Parse("s.conf", strings.NewReader("[Log]\nLevel=info\\\\\nFormat=text\n"))
	if err == nil || !strings.Contains(err.Error(), `s.conf:2: [Log] Level=info\\\\`) {
		t.Errorf("even backslashes: %v", err)
	}
	// A comment line ending in a backslash does not continue.
	if _, err := Parse("s.conf", strings.NewReader("[Log]\n# note \\\nLevel=debug\n")); err != nil {
		t.Errorf("comment with backslash: %v", err)
	}
}

func TestParseWarnings(t *testing.T) {
	text := "[Site]\nDomain=site.local\nDomain=intranet\nAddress=192.0.2.10\n" +
		"[DHCP]\nEnable=yes\n[DHCPPool]\nSubnet=192.0.2.0/24\nRange=192.0.2.100-192.0.2.199\nDomain=site.local\n" +
		"[DNS]\nUpdateFrom=0.0.0.0/0\n"
	cfg, err := Parse("w.conf", strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range cfg.Warnings {
		got = append(got, w.Error())
	}
	want := []string{
		"w.conf:2: warning: [Site] Domain=site.local: .local is for multicast DNS (RFC 6762)",
		"w.conf:3: warning: [Site] Domain=intranet has one label",
		"w.conf:6: warning: [DHCP] UpdateDNS=yes does nothing while [DNS] Enable=no",
		"w.conf:12: warning: [DNS] UpdateFrom=0.0.0.0/0 lets every address change records",
	}
	if len(got) != len(want) {
		t.Fatalf("warnings:\n%s", strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("warning %d:\n got  %s\n want %s…", i, got[i], want[i])
		}
	}
}

func TestParseLimits(t *testing.T) {
	// A file past the size bound is refused whole, before any parsing.
	big := strings.Repeat("# padding padding padding padding\n", maxFileSize/30)
	_, err := Parse("big.conf", strings.NewReader(big))
	if err == nil || !strings.Contains(err.Error(), "big.conf: is larger than 1024 KiB") {
		t.Errorf("big file: %v", err)
	}
	// Hundreds of problems: the first maxProblems, and a count of the rest.
	junk := "[Site]\n" + strings.Repeat("Address=x\n", 250)
	_, err = Parse("junk.conf", strings.NewReader(junk))
	var errs *Errors
	if !errors.As(err, &errs) || len(errs.Problems) != maxProblems+1 {
		t.Fatalf("junk: %v", err)
	}
	if last := errs.Problems[maxProblems].Error(); last != "junk.conf: 150 more problems not shown; fix these first" {
		t.Errorf("last problem = %q", last)
	}
	if first := errs.Problems[0].Error(); !strings.HasPrefix(first, "junk.conf:2: [Site] Address=x: not an IP address") {
		t.Errorf("first problem = %q", first)
	}
	// Lists are bounded: cross-checks compare their items with each other.
	var many strings.Builder
	many.WriteString("[Site]\n")
	for i := range maxItems + 1 {
		fmt.Fprintf(&many, "Domain=d%d.example.com\n", i)
	}
	got := problemLines(t, many.String())
	if want := fmt.Sprintf("%d: [Site] Domain=: more than %d values; at most %d are read", maxItems+2, maxItems, maxItems); len(got) != 1 || got[0] != want {
		t.Errorf("too many domains: %q, want %q", got, want)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "amtd.conf")
	if err := os.WriteFile(path, []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Path != path || cfg.Site.Domains[0] != "corp.example.com" {
		t.Errorf("Path %q Domains %v", cfg.Path, cfg.Site.Domains)
	}

	// Relative paths become absolute: the daemon reloads cfg.Path later.
	t.Chdir(dir)
	cfg, err = Load("amtd.conf")
	if err != nil || cfg.Path != path {
		t.Errorf("relative Load: Path %v, err %v", cfg, err)
	}

	_, err = Load(filepath.Join(dir, "missing.conf"))
	var errs *Errors
	if !errors.As(err, &errs) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %T %v", err, err)
	}
	if got, want := err.Error(), filepath.Join(dir, "missing.conf")+": cannot read: no such file or directory"; got != want {
		t.Errorf("missing file:\n got  %s\n want %s", got, want)
	}
	if _, err := Load(dir); err == nil || !strings.HasSuffix(err.Error(), ": is a directory, not a configuration file") {
		t.Errorf("directory: %v", err)
	}
}

func TestDurations(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"90s", 90 * time.Second}, {"90", 90 * time.Second}, {"10min", 10 * time.Minute}, {"10m", 10 * time.Minute},
		{"1h 30min", 90 * time.Minute}, {"1h30m", 90 * time.Minute}, {"1h30m0s", 90 * time.Minute}, {"2d", 48 * time.Hour},
		{"1.5h", 90 * time.Minute}, {"2 hours", 2 * time.Hour}, {"1w", 7 * 24 * time.Hour}, {"500ms", 500 * time.Millisecond},
		{"250us", 250 * time.Microsecond}, {"0", 0}, {"1d 2h 3min 4s", 26*time.Hour + 3*time.Minute + 4*time.Second},
	}
	for _, tt := range tests {
		got, err := parseDuration(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "s", "-5s", "5x", "1.2.3s", "11y", "3650d 1d", "99999999999999999999s", "1e9s", "inf"} {
		if d, err := parseDuration(bad); err == nil {
			t.Errorf("parseDuration(%q) = %v, want an error", bad, d)
		}
	}
	for _, d := range []time.Duration{0, time.Second, 90 * time.Second, 10 * time.Minute, 90 * time.Minute, 50 * time.Hour} {
		if back, err := parseDuration(formatDuration(d)); err != nil || back != d {
			t.Errorf("formatDuration(%v) = %q, reads back as %v, %v", d, formatDuration(d), back, err)
		}
	}
}

func TestBooleans(t *testing.T) {
	for _, v := range []string{"yes", "YES", "true", "on", "1", "y", "t"} {
		if b, err := parseBool(v); err != nil || !b {
			t.Errorf("parseBool(%q) = %v, %v", v, b, err)
		}
	}
	for _, v := range []string{"no", "False", "off", "0", "n", "f"} {
		if b, err := parseBool(v); err != nil || b {
			t.Errorf("parseBool(%q) = %v, %v", v, b, err)
		}
	}
	for _, v := range []string{"", "2", "enabled", "yess"} {
		if _, err := parseBool(v); err == nil {
			t.Errorf("parseBool(%q): no error", v)
		}
	}
}

func TestReverseName(t *testing.T) {
	if got := reverseName(netip.MustParseAddr("192.0.2.5")); got != "5.2.0.192.in-addr.arpa." {
		t.Errorf("v4: %s", got)
	}
	if got := reverseName(netip.MustParseAddr("2001:db8::1")); got != "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa." {
		t.Errorf("v6: %s", got)
	}
}

// TestKeysTable checks the table itself: unique names, every default parses
// through its own handler, and a value for every key is documented.
func TestKeysTable(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range Keys() {
		if seen[s.Name] || s.Doc == "" {
			t.Errorf("section %s: duplicate or undocumented", s.Name)
		}
		seen[s.Name] = true
		keys := map[string]bool{}
		for _, k := range s.Keys {
			if keys[k.Name] || k.Doc == "" || k.Values == "" || k.h.set == nil || k.h.reset == nil {
				t.Errorf("[%s] %s: duplicate, undocumented or without handler", s.Name, k.Name)
			}
			if k.Default != "" && k.Derived != "" {
				t.Errorf("[%s] %s has both Default and Derived", s.Name, k.Name)
			}
			keys[k.Name] = true
		}
		if _, ok := notYet[s.Name]; ok && !keys["Enable"] {
			t.Errorf("[%s] is in notYet but has no Enable=", s.Name)
		}
	}
	for name := range notYet {
		if !seen[name] {
			t.Errorf("notYet names unknown section %s", name)
		}
	}
}
