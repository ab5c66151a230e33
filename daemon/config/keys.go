package config

import (
	"net/netip"
	"time"
)

// Section describes one section of amtd.conf: the table the parser runs on
// and the sample amtd.conf and amtd.conf(5) are checked against.
type Section struct {
	Name string // without brackets
	// Repeated sections ([DHCPPool], [DHCPReservation]) start a new element
	// at each header; the others merge when they appear twice, as systemd's do.
	Repeated bool
	Doc      string
	Keys     []Key
}

// Key describes one Key= of a section.
type Key struct {
	Name string
	// List keys may be given more than once; each adds an item, and an empty
	// assignment (Key=) clears the items before it, as in systemd.
	List bool
	// Required keys must be given in every instance of a repeated section.
	Required bool
	// Default is the value the parser starts from, written as in the file
	// (the sample has "#Key=Default"); "" when there is none or it is derived.
	Default string
	// Derived describes a default computed from other keys ("amtd. followed
	// by the first [Site] Domain="); "" when Default says it all.
	Derived string
	// Values says what the key accepts ("boolean", "duration", "ADDRESS:PORT").
	Values string
	Doc    string

	h handler
}

// handler stores a value of a key into the configuration being built.
type handler struct {
	set   func(t *target, v string) error
	reset func(t *target)
}

// target is where a handler writes: the configuration, and the element of
// the repeated section being read.
type target struct {
	cfg  *Config
	pool *DHCPPool
	res  *DHCPReservation
	line int
}

// one stores a single value; the last assignment wins, as in systemd.
func one[T any](parse func(string) (T, error), field func(*target) *T) handler {
	return handler{
		set: func(t *target, v string) error {
			x, err := parse(v)
			if err != nil {
				return err
			}
			*field(t) = x
			return nil
		},
		reset: func(t *target) { var zero T; *field(t) = zero },
	}
}

// many appends to a list; reset empties it.
func many[T any](parse func(string) (T, error), field func(*target) *[]T) handler {
	return handler{
		set: func(t *target, v string) error {
			x, err := parse(v)
			if err != nil {
				return err
			}
			*field(t) = append(*field(t), x)
			return nil
		},
		reset: func(t *target) { *field(t) = nil },
	}
}

// Value kinds as the man page and the sample name them.
const (
	vBool     = "boolean"
	vDuration = "duration"
	vListen   = "ADDRESS:PORT"
	vPath     = "absolute path"
)

// Keys returns every section and key amtd.conf has, in the order the sample
// and the man page document them. The parser uses this same table.
func Keys() []Section {
	return []Section{
		{Name: "Site", Doc: "Who this appliance is: the site's DNS domains and the addresses devices reach it on.", Keys: []Key{
			{Name: "Domain", List: true, Values: "domain name",
				Doc: "A DNS suffix of the site. The first is the primary one: served as DHCP option 15 unless a pool says otherwise, and the domain of ProvisionServer. Required when any service is enabled.",
				h:   many(parseDomain, func(t *target) *[]string { return &t.cfg.Site.Domains })},
			{Name: "Hostname", Values: "fully qualified host name", Derived: "amtd. followed by the first Domain=",
				Doc: "The appliance's own name: the name in its TLS certificates and the one devices dial for CIRA.",
				h:   one(parseFQDN, func(t *target) *string { return &t.cfg.Site.Hostname })},
			{Name: "Address", List: true, Values: "IP address",
				Doc: "An address of this appliance that devices reach: the ProvisionServer A and AAAA records, the default DHCP DNS server and server identifier. Required when any service is enabled.",
				h:   many(siteAddr, func(t *target) *[]netip.Addr { return &t.cfg.Site.Addresses })},
			{Name: "AllowRoot", Values: vBool, Default: "no",
				Doc: "Let the daemon run as root. It normally runs as the amtd user with only the capabilities it needs.",
				h:   one(parseBool, func(t *target) *bool { return &t.cfg.Site.AllowRoot })},
		}},
		{Name: "Store", Doc: "The encrypted SQLite credential store.", Keys: []Key{
			{Name: "Path", Values: vPath, Default: "/var/lib/amtd/amtd.db",
				Doc: "The database file.",
				h:   one(parsePath, func(t *target) *string { return &t.cfg.Store.Path })},
			{Name: "KeyFile", Values: vPath, Derived: "none: the systemd credential amtd-master-key",
				Doc: "A master key file, for development and tests. Without it the key is the systemd credential $CREDENTIALS_DIRECTORY/amtd-master-key.",
				h:   one(parsePath, func(t *target) *string { return &t.cfg.Store.KeyFile })},
			{Name: "BackupDir", Values: vPath, Derived: "backup beside the database, /var/lib/amtd/backup",
				Doc: "Where the snapshot taken before a schema migration goes.",
				h:   one(parsePath, func(t *target) *string { return &t.cfg.Store.BackupDir })},
		}},
		{Name: "Log", Doc: "Logging.", Keys: []Key{
			{Name: "Level", Values: "debug, info, warn or error", Default: "info",
				Doc: "The least severe messages logged.",
				h:   one(parseLevel, func(t *target) *string { return &t.cfg.Log.Level })},
			{Name: "Format", Values: "auto, journal, text or json", Default: "auto",
				Doc: "How log lines are written. auto is journal when standard error is connected to the journal ($JOURNAL_STREAM), text otherwise.",
				h:   one(parseFormat, func(t *target) *string { return &t.cfg.Log.Format })},
		}},
		{Name: "Control", Doc: "The local control socket that amtd status and the other commands talk to.", Keys: []Key{
			{Name: "Socket", Values: vPath, Default: "/run/amtd/control.sock",
				Doc: "The unix socket's path.",
				h:   one(parseSocketPath, func(t *target) *string { return &t.cfg.Control.Socket })},
			{Name: "Group", Values: "group name or gid", Derived: "none",
				Doc: "A group whose members may use the socket, besides root and the daemon's own user.",
				h:   one(parseGroup, func(t *target) *string { return &t.cfg.Control.Group })},
		}},
		{Name: "DHCP", Doc: "The DHCPv4 server, which tells devices the site's domain (option 15) so Intel AMT finds ProvisionServer.", Keys: []Key{
			{Name: "Enable", Values: vBool, Default: "no",
				Doc: "Serve DHCP. Needs at least one [DHCPPool].",
				h:   one(parseBool, func(t *target) *bool { return &t.cfg.DHCP.Enable })},
			{Name: "Interface", List: true, Values: "interface name", Derived: "every interface with an address inside a pool's subnet",
				Doc: "An interface to serve on.",
				h:   many(parseInterface, func(t *target) *[]string { return &t.cfg.DHCP.Interfaces })},
			{Name: "Listen", Values: vListen, Default: "0.0.0.0:67",
				Doc: "The address and UDP port to listen on.",
				h:   one(parseListen4, func(t *target) *string { return &t.cfg.DHCP.Listen })},
			{Name: "LeaseTime", Values: vDuration, Default: "10min",
				Doc: "The lease time. Short on purpose: Intel AMT learns option 15 only from a DHCP exchange it sees, so short leases make it see one soon.",
				h:   one(positiveDuration, func(t *target) *time.Duration { return &t.cfg.DHCP.LeaseTime })},
			{Name: "DNS", List: true, Values: "IPv4 address", Derived: "the IPv4 addresses of [Site] Address=",
				Doc: "A DNS server for option 6.",
				h:   many(parseAddr4, func(t *target) *[]netip.Addr { return &t.cfg.DHCP.DNS })},
			{Name: "Authoritative", Values: vBool, Default: "yes",
				Doc: "Answer requests for addresses this server does not own with a NAK, so clients moved from another network get a new address at once.",
				h:   one(parseBool, func(t *target) *bool { return &t.cfg.DHCP.Authoritative })},
			{Name: "UpdateDNS", Values: vBool, Default: "yes",
				Doc: "Register the host names clients send (options 12 and 81) in amtd's DNS.",
				h:   one(parseBool, func(t *target) *bool { return &t.cfg.DHCP.UpdateDNS })},
		}},
		{Name: "DHCPPool", Repeated: true, Doc: "One subnet served, directly or through a relay. Repeat the section for each subnet.", Keys: []Key{
			{Name: "Subnet", Required: true, Values: "IPv4 subnet",
				Doc: "The subnet, as 192.0.2.0/24.",
				h:   one(subnet4, func(t *target) *netip.Prefix { return &t.pool.Subnet })},
			{Name: "Range", List: true, Required: true, Values: "START-END",
				Doc: "Addresses to lease, both ends included, inside Subnet=.",
				h:   many(parseRange, func(t *target) *[]AddrRange { return &t.pool.Ranges })},
			{Name: "Router", List: true, Values: "IPv4 address", Derived: "none",
				Doc: "A router for option 3, inside Subnet=.",
				h:   many(parseAddr4, func(t *target) *[]netip.Addr { return &t.pool.Routers })},
			{Name: "DNS", List: true, Values: "IPv4 address", Derived: "[DHCP] DNS=",
				Doc: "A DNS server for option 6 in this pool.",
				h:   many(parseAddr4, func(t *target) *[]netip.Addr { return &t.pool.DNS })},
			{Name: "Domain", Values: "domain name", Derived: "the first [Site] Domain=",
				Doc: "Option 15 for this pool. It must be one of the [Site] domains, since devices look up ProvisionServer in it.",
				h:   one(parseDomain, func(t *target) *string { return &t.pool.Domain })},
			{Name: "LeaseTime", Values: vDuration, Derived: "[DHCP] LeaseTime=",
				Doc: "The lease time in this pool.",
				h:   one(positiveDuration, func(t *target) *time.Duration { return &t.pool.LeaseTime })},
		}},
		{Name: "DHCPReservation", Repeated: true, Doc: "A fixed address for one device. Repeat the section for each device.", Keys: []Key{
			{Name: "MACAddress", Required: true, Values: "MAC address",
				Doc: "The device's Ethernet address, as 00:16:3e:12:34:56.",
				h:   one(parseMAC, func(t *target) *[6]byte { return &t.res.MAC })},
			{Name: "Address", Required: true, Values: "IPv4 address",
				Doc: "The address it always gets, inside some pool's Subnet=.",
				h:   one(parseAddr4, func(t *target) *netip.Addr { return &t.res.Address })},
			{Name: "Hostname", Values: "host name", Derived: "none",
				Doc: "The device's host name.",
				h:   one(parseHostname, func(t *target) *string { return &t.res.Hostname })},
		}},
		{Name: "DNS", Doc: "The DNS server: authoritative for the site's domains (ProvisionServer and the records below), and a forwarder for other names.", Keys: []Key{
			{Name: "Enable", Values: vBool, Default: "no",
				Doc: "Serve DNS.",
				h:   one(parseBool, func(t *target) *bool { return &t.cfg.DNS.Enable })},
			{Name: "Listen", Values: vListen, Default: "0.0.0.0:53",
				Doc: "The address and port to listen on, UDP and TCP.",
				h:   one(parseListen, func(t *target) *string { return &t.cfg.DNS.Listen })},
			{Name: "Upstream", List: true, Values: "ADDRESS or ADDRESS:PORT", Derived: "none: other names are REFUSED",
				Doc: "A resolver to forward other names to; the port defaults to 53.",
				h:   many(parseUpstream, func(t *target) *[]string { return &t.cfg.DNS.Upstreams })},
			{Name: "CacheSize", Values: "number of entries", Default: "10000",
				Doc: "Entries in the forwarder's cache; 0 turns the cache off.",
				h:   one(countIn(0, 10_000_000), func(t *target) *int { return &t.cfg.DNS.CacheSize })},
			{Name: "TTL", Values: vDuration, Default: "5min",
				Doc: "The TTL of the records amtd is authoritative for.",
				h:   one(ttl, func(t *target) *time.Duration { return &t.cfg.DNS.TTL })},
			{Name: "SingleLabel", Values: vBool, Default: "yes",
				Doc: "Also answer the bare name ProvisionServer, which Intel AMT tries when it has no domain.",
				h:   one(parseBool, func(t *target) *bool { return &t.cfg.DNS.SingleLabel })},
			{Name: "UpdateFrom", List: true, Values: "subnet", Derived: "none",
				Doc: "A subnet allowed to send unsigned RFC 2136 updates for forward records in the site's domains, as the DDNS client of Intel AMT does.",
				h:   many(parsePrefix, func(t *target) *[]netip.Prefix { return &t.cfg.DNS.UpdateFrom })},
			{Name: "UpdateKey", List: true, Values: "TSIG key name", Derived: "none",
				Doc: "A TSIG key allowed to sign updates for any name in the site's domains. The secret is held sealed in the store (amtd store).",
				h:   many(parseKeyName, func(t *target) *[]string { return &t.cfg.DNS.UpdateKeys })},
			{Name: "RateLimit", Values: "responses per second", Default: "50",
				Doc: "Authoritative responses per second to one client /24 (IPv6: /56); 0 turns the limit off.",
				h:   one(countIn(0, 1_000_000), func(t *target) *int { return &t.cfg.DNS.RateLimit })},
			{Name: "Record", List: true, Values: "NAME TYPE VALUE", Derived: "none",
				Doc: "A static record. TYPE is A, AAAA, CNAME, TXT or PTR. NAME is inside a [Site] domain; a name of one label is in the first domain, @ is the first domain itself. A PTR's NAME may be written as the address.",
				h:   handler{set: addRecord, reset: func(t *target) { t.cfg.DNSRecords = nil }}},
		}},
		{Name: "DNSRegistrar", Doc: "Register ProvisionServer in the site's own DNS by RFC 2136 updates signed with TSIG, for sites that keep their DNS.", Keys: []Key{
			{Name: "Enable", Values: vBool, Default: "no",
				Doc: "Keep ProvisionServer registered. Needs Server= and Key=.",
				h:   one(parseBool, func(t *target) *bool { return &t.cfg.Registrar.Enable })},
			{Name: "Server", Values: "HOST or HOST:PORT",
				Doc: "The site's primary DNS server; the port defaults to 53. Required when Enable=yes.",
				h:   one(parseServer, func(t *target) *string { return &t.cfg.Registrar.Server })},
			{Name: "Zone", Values: "domain name", Derived: "the first [Site] Domain=",
				Doc: "The zone to update.",
				h:   one(parseDomain, func(t *target) *string { return &t.cfg.Registrar.Zone })},
			{Name: "Key", Values: "TSIG key name",
				Doc: "The TSIG key's name. Its secret is held sealed in the store (amtd store). Required when Enable=yes.",
				h:   one(parseKeyName, func(t *target) *string { return &t.cfg.Registrar.Key })},
			{Name: "Algorithm", Values: "hmac-sha256, hmac-sha384, hmac-sha512, hmac-sha224 or hmac-sha1", Default: "hmac-sha256",
				Doc: "The TSIG algorithm.",
				h:   one(parseAlgorithm, func(t *target) *string { return &t.cfg.Registrar.Algorithm })},
			{Name: "Interval", Values: vDuration, Default: "1h",
				Doc: "How often the records are refreshed.",
				h:   one(positiveDuration, func(t *target) *time.Duration { return &t.cfg.Registrar.Interval })},
			{Name: "TTL", Values: vDuration, Default: "5min",
				Doc: "The TTL of the registered records.",
				h:   one(ttl, func(t *target) *time.Duration { return &t.cfg.Registrar.TTL })},
		}},
		{Name: "Provisioning", Doc: "The hello listener for bare-metal activation in admin control mode, and the endpoint for rpc-go agents.", Keys: []Key{
			{Name: "Enable", Values: vBool, Default: "no",
				Doc: "Provision devices: activate those that send a hello, with the certificate of a domain added by amtd domain add.",
				h:   one(parseBool, func(t *target) *bool { return &t.cfg.Provisioning.Enable })},
			{Name: "HelloListen", Values: vListen, Default: "0.0.0.0:9971",
				Doc: "Where Intel AMT in setup mode sends its hello packets (TCP).",
				h:   one(parseListen, func(t *target) *string { return &t.cfg.Provisioning.HelloListen })},
			{Name: "AgentListen", Values: vListen, Derived: "none: no agent endpoint",
				Doc: "The WebSocket endpoint for rpc-go agents, over TLS with the appliance certificate (rpc activate -u wss://HOST:PORT/activate). Needs AgentTokenFile=.",
				h:   one(parseListen, func(t *target) *string { return &t.cfg.Provisioning.AgentListen })},
			{Name: "AgentTokenFile", Values: vPath, Derived: "none",
				Doc: "A file holding the site's enrolment token, which agents give with rpc --tenantid TOKEN; written by amtd agent-token. Required with AgentListen=.",
				h:   one(parsePath, func(t *target) *string { return &t.cfg.Provisioning.AgentTokenFile })},
			{Name: "AgentAllowFrom", List: true, Values: "subnet", Derived: "none: any source",
				Doc: "A subnet agents may connect from.",
				h:   many(parsePrefix, func(t *target) *[]netip.Prefix { return &t.cfg.Provisioning.AgentAllowFrom })},
			{Name: "MaxConcurrentActivations", Values: "number from 1 to 1024", Default: "32",
				Doc: "Bare-metal activations run at once. Devices whose hellos come while all are busy wait in a queue (up to 8 times this many) and start as others finish; each WS-Man call keeps its own 30 s timeout. On reload the new limit applies to activations started after it.",
				h:   one(countIn(1, 1024), func(t *target) *int { return &t.cfg.Provisioning.MaxConcurrentActivations })},
			{Name: "AgentTLSTrust", Values: "odca or log", Default: "odca",
				Doc: "What AMT 19 and later may present in the TLS tunnel through an agent before activation. odca: a chain to Intel's On-Die CA root (or AgentODCARoots=); log: any certificate, written to the log (for diagnosing a device whose chain is refused). After activation amtd trusts the certificate it configured.",
				h:   one(parseTunnelTrust, func(t *target) *string { return &t.cfg.Provisioning.AgentTLSTrust })},
			{Name: "AgentODCARoots", Values: vPath, Derived: "none: Intel's On-Die CA root only",
				Doc: "A PEM file of further On-Die CA roots to trust besides Intel's (amtsim -odca FILE writes FILE.crt for a simulated site).",
				h:   one(parsePath, func(t *target) *string { return &t.cfg.Provisioning.AgentODCARoots })},
		}},
		{Name: "CIRA", Doc: "The relay Intel AMT devices connect out to (CIRA, APF over TLS), with a server certificate from the appliance CA.", Keys: []Key{
			{Name: "Enable", Values: vBool, Default: "no",
				Doc: "Accept CIRA connections.",
				h:   one(parseBool, func(t *target) *bool { return &t.cfg.CIRA.Enable })},
			{Name: "Listen", Values: vListen, Default: "0.0.0.0:4433",
				Doc: "The TLS listener.",
				h:   one(parseListen, func(t *target) *string { return &t.cfg.CIRA.Listen })},
			{Name: "LegacyTLS", Values: vBool, Default: "no",
				Doc: "Allow TLS 1.0 and 1.1 and RSA key exchange, which Intel AMT 11 and older need.",
				h:   one(parseBool, func(t *target) *bool { return &t.cfg.CIRA.LegacyTLS })},
			{Name: "KeepAlive", Values: vDuration, Default: "30s",
				Doc: "The keep-alive interval devices are asked for once connected; keep it well under IdleTimeout=.",
				h:   one(positiveDuration, func(t *target) *time.Duration { return &t.cfg.CIRA.KeepAlive })},
			{Name: "IdleTimeout", Values: vDuration, Default: "90s",
				Doc: "A link that sends nothing, not even a keep-alive, for this long is dropped; the device reconnects.",
				h:   one(positiveDuration, func(t *target) *time.Duration { return &t.cfg.CIRA.IdleTimeout })},
		}},
		{Name: "API", Doc: "The console REST API (HTTPS, Open AMT MPS /api/v1 compatible, API keys from amtd apikey create) and the metrics endpoint.", Keys: []Key{
			{Name: "Enable", Values: vBool, Default: "no",
				Doc: "Serve the API.",
				h:   one(parseBool, func(t *target) *bool { return &t.cfg.API.Enable })},
			{Name: "Listen", Values: vListen, Default: "0.0.0.0:3000",
				Doc: "The HTTPS listener.",
				h:   one(parseListen, func(t *target) *string { return &t.cfg.API.Listen })},
			{Name: "MetricsListen", Values: vListen, Derived: "none: no metrics endpoint",
				Doc: "The Prometheus endpoint, plain HTTP: keep it on loopback or a management network.",
				h:   one(parseListen, func(t *target) *string { return &t.cfg.API.MetricsListen })},
		}},
	}
}

// notYet lists the sections whose service this build does not have. Enable=yes
// in one of them is an error, so nobody believes a service runs that does not.
// A later version removes its entry when the service lands.
var notYet = map[string]string{}
