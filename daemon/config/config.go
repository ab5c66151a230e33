// Package config reads amtd.conf: INI in systemd's syntax (sections, Key=value,
// '#' and ';' comments, repeated keys for lists, repeated sections for things
// like DHCP pools), with every problem reported as FILE:LINE: message.
//
// The types below are the contract every service builds against. Every key is
// documented once, in the sample amtd.conf and in amtd.conf(5); a test checks
// that the parser, the sample and the man page agree.
package config

import (
	"net/netip"
	"time"
)

// Config is the whole parsed amtd.conf.
type Config struct {
	// Path is the file the configuration was read from.
	Path string

	Site         Site
	Store        Store
	Log          Log
	Control      Control
	DHCP         DHCP
	DHCPPools    []DHCPPool        // repeated [DHCPPool] sections
	Reservations []DHCPReservation // repeated [DHCPReservation] sections
	DNS          DNS
	DNSRecords   []DNSRecord // [DNS] Record= lines
	Registrar    DNSRegistrar
	Provisioning Provisioning
	CIRA         CIRA
	API          API

	// Warnings are things allowed but probably not meant (a .local site
	// domain, UpdateDNS= with DNS off), as FILE:LINE: warning: message.
	// `amtd check-config` prints them; the daemon logs them at start.
	Warnings []*Problem
}

// Site is [Site]: who this appliance is.
type Site struct {
	// Domains are the DNS suffixes of the site (Domain=, repeatable, at least
	// one). Domains[0] is the primary: served as DHCP option 15 unless a pool
	// says otherwise, and used for ProvisionServer.<domain>.
	Domains []string
	// Hostname is the appliance's FQDN (Hostname=), the name in its TLS
	// certificates and what devices are told to dial for CIRA. Default:
	// "amtd." + Domains[0].
	Hostname string
	// Addresses are the appliance's own addresses devices reach it on
	// (Address=, repeatable, at least one): ProvisionServer A/AAAA, DHCP option
	// 6 and 54 defaults, the CIRA server address.
	Addresses []netip.Addr
	// AllowRoot lets the daemon run as uid 0 (AllowRoot=, default no).
	AllowRoot bool
}

// Store is [Store]: the encrypted SQLite credential store.
type Store struct {
	// Path of the database (Path=, default /var/lib/amtd/amtd.db).
	Path string
	// KeyFile is a master key file for development and tests (KeyFile=). Empty
	// means the systemd credential $CREDENTIALS_DIRECTORY/amtd-master-key.
	KeyFile string
	// BackupDir receives the snapshot taken before a migration (BackupDir=,
	// default the database's directory + "/backup").
	BackupDir string
}

// Log is [Log].
type Log struct {
	// Level is debug, info, warn or error (Level=, default info).
	Level string
	// Format is auto, journal, text or json (Format=, default auto: journal
	// when $JOURNAL_STREAM matches stderr, text otherwise).
	Format string
}

// Control is [Control]: the local control socket the CLI talks to.
type Control struct {
	// Socket path (Socket=, default /run/amtd/control.sock).
	Socket string
	// Group whose members may use the socket besides root and the daemon's
	// own user (Group=, default none).
	Group string
}

// DHCP is [DHCP]: the DHCPv4 server.
type DHCP struct {
	Enable bool
	// Interfaces to serve on (Interface=, repeatable). Empty: every interface
	// that has an address inside a pool's subnet.
	Interfaces []string
	// Listen address (Listen=, default 0.0.0.0:67).
	Listen string
	// LeaseTime is the default lease (LeaseTime=, default 10m: short, so AMT
	// sees a fresh exchange and learns option 15; spec/network.md §1.1).
	LeaseTime time.Duration
	// DNS servers for option 6 (DNS=, repeatable; default Site.Addresses' IPv4).
	DNS []netip.Addr
	// Authoritative: NAK requests for addresses we do not own (default yes).
	Authoritative bool
	// UpdateDNS: register leased host names (option 12/81) in amtd's DNS (default yes).
	UpdateDNS bool
}

// DHCPPool is one [DHCPPool] section: a subnet served directly or through a relay.
type DHCPPool struct {
	Line    int          // line of the section header, for messages
	Subnet  netip.Prefix // Subnet= (required)
	Ranges  []AddrRange  // Range=START-END (repeatable, required, inside Subnet)
	Routers []netip.Addr // Router= (option 3, repeatable)
	DNS     []netip.Addr // DNS= (option 6; default [DHCP] DNS=)
	// Domain is option 15 for this pool (Domain=, default Site.Domains[0]).
	Domain    string
	LeaseTime time.Duration // LeaseTime= (default [DHCP] LeaseTime=)
}

// AddrRange is an inclusive address range.
type AddrRange struct{ Start, End netip.Addr }

// DHCPReservation is one [DHCPReservation] section.
type DHCPReservation struct {
	Line     int
	MAC      [6]byte    // MACAddress= (required)
	Address  netip.Addr // Address= (required, inside some pool's subnet)
	Hostname string     // Hostname= (optional)
}

// DNS is [DNS]: the authoritative server and forwarder.
type DNS struct {
	Enable bool
	// Listen address for UDP and TCP (Listen=, default 0.0.0.0:53).
	Listen string
	// Upstreams are the resolvers other names are forwarded to (Upstream=,
	// repeatable, host:port or address; default none: REFUSED for others).
	Upstreams []string
	// CacheSize is the forwarder cache's entry count (CacheSize=, default 10000; 0 off).
	CacheSize int
	// TTL of the records amtd is authoritative for (TTL=, default 5m).
	TTL time.Duration
	// SingleLabel answers the bare name "ProvisionServer" (SingleLabel=, default yes).
	SingleLabel bool
	// UpdateFrom are the subnets allowed to send unsigned RFC 2136 updates
	// for forward records in the site zone, as AMT's DDNS client does
	// (UpdateFrom=, repeatable CIDR; default none).
	UpdateFrom []netip.Prefix
	// UpdateKeys name the TSIG keys (held sealed in the store) allowed to
	// sign updates for anything in the site zones (UpdateKey=, repeatable).
	UpdateKeys []string
	// RateLimit is responses per second per client /24 (or /56) on the
	// authoritative side (RateLimit=, default 50; 0 off).
	RateLimit int
}

// DNSRecord is one static [DNS] Record=NAME TYPE VALUE.
type DNSRecord struct {
	Line  int
	Name  string // fully qualified, lower case, trailing dot
	Type  string // A, AAAA, CNAME, TXT, PTR
	Value string
}

// DNSRegistrar is [DNSRegistrar]: register ProvisionServer in the site's own
// DNS by RFC 2136 with TSIG, for sites that run their own DNS.
type DNSRegistrar struct {
	Enable bool
	// Server is the site's primary, host:port (Server=, required when enabled).
	Server string
	// Zone to update (Zone=, default Site.Domains[0]).
	Zone string
	// Key is the TSIG key name, its secret sealed in the store (Key=, required when enabled).
	Key string
	// Algorithm is the TSIG algorithm (Algorithm=, default hmac-sha256).
	Algorithm string
	// Interval between refreshes (Interval=, default 1h).
	Interval time.Duration
	// TTL of the registered records (TTL=, default 5m).
	TTL time.Duration
}

// Provisioning is [Provisioning]: the hello listener and the rpc-go endpoint.
type Provisioning struct {
	Enable bool
	// HelloListen is the hello packet listener (HelloListen=, default 0.0.0.0:9971).
	HelloListen string
	// AgentListen is the rpc-go WebSocket endpoint, TLS (AgentListen=,
	// default empty: none).
	AgentListen string
	// AgentTokenFile holds the enrolment token agents must send
	// (AgentTokenFile=, required with AgentListen=).
	AgentTokenFile string
	// AgentAllowFrom lists the subnets agents may connect from
	// (AgentAllowFrom=, default: any).
	AgentAllowFrom []netip.Prefix
	// MaxConcurrentActivations bounds bare-metal activations running at
	// once (MaxConcurrentActivations=, default 32, 1-1024).
	MaxConcurrentActivations int
	// AgentTLSTrust is which certificates AMT 19+ devices may present in
	// the agent's TLS tunnel: "odca" (default) or "log"
	// (spec/rpc-protocol.md §7).
	AgentTLSTrust string
	// AgentODCARoots is a PEM file of On-Die CA roots trusted besides
	// Intel's built-in one (AgentODCARoots=, default none).
	AgentODCARoots string
}

// CIRA is [CIRA]: the APF relay devices connect out to.
type CIRA struct {
	Enable bool
	// Listen is the TLS listener (Listen=, default 0.0.0.0:4433).
	Listen string
	// LegacyTLS allows TLS 1.0/1.1 and RSA key exchange for AMT 11 and older
	// (LegacyTLS=, default no).
	LegacyTLS bool
	// KeepAlive is the keep-alive interval amtd asks devices for
	// (KeepAlive=, default 30s; spec/apf.md §4 step 7).
	KeepAlive time.Duration
	// IdleTimeout drops a link that sent nothing for this long
	// (IdleTimeout=, default 90s, as MPS; spec/apf.md §4 step 8).
	IdleTimeout time.Duration
}

// API is [API]: the console REST API and relay, HTTPS.
type API struct {
	Enable bool
	// Listen (Listen=, default 0.0.0.0:3000).
	Listen string
	// MetricsListen is the Prometheus endpoint, plain HTTP, meant for loopback
	// or a management network (MetricsListen=, default empty: off).
	MetricsListen string
}
