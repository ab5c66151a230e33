// Package dns is amtd's DNS service: authoritative for the site zones
// (ProvisionServer, the appliance's own name, leased host names and their
// reverse zones, static records), a small caching forwarder for everything
// else, RFC 2136 updates from AMT's own DDNS client and from TSIG-signed
// peers, and response rate limiting (spec/network.md §2, §4). The same
// package holds the registrar, which puts ProvisionServer into a site's own
// DNS instead (registrar.go).
//
// Messages are decoded and encoded by miekg/dns; the policy (what is ours,
// who may update what, how fast anyone gets answers) is here.
package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"amtd/daemon/config"
	"amtd/metrics"
	"amtd/netsvc"
	"amtd/store"
)

// Limits that keep a flood from growing goroutines, fds or memory.
const (
	maxTCPConns   = 128  // concurrent TCP connections; more wait in the kernel backlog
	udpReadBuffer = 4096 // largest query read over UDP; queries are small
	// Updates per second per source /32 or /128: AMT refreshes its record
	// every DDNSPeriodicUpdateInterval (≥ 20 min, spec/network.md §4), so a
	// few a second is already generous.
	updateRate  = 2
	updateBurst = 10
)

// Service is the DNS server. It implements netsvc.Service, netsvc.Reloader
// and netsvc.Status.
type Service struct {
	deps  netsvc.Deps
	log   *slog.Logger
	now   func() time.Time
	hosts *netsvc.Hosts
	dyn   *dynamic
	tsig  *tsigKeys
	prov  *provisionLog

	state atomic.Pointer[state] // swapped whole by Reload

	mu       sync.Mutex // guards the lifecycle fields below
	running  bool
	servers  *listening
	serveErr atomic.Value // error that stopped a server early

	updMu sync.Mutex // serialises RFC 2136 updates: read-modify-write of a name

	queries  *metrics.CounterVec
	limited  *metrics.CounterVec
	updates  *metrics.CounterVec
	cacheHit *metrics.Counter
	dropped  *metrics.CounterVec
	// Counters of the hot path, looked up once.
	qAuth, limDrop, limSlip           *metrics.Counter
	dropMalformed, dropResp, dropBusy *metrics.Counter
}

// state is one configuration's worth of everything the handler reads.
type state struct {
	listen     string
	zone       *zoneData
	fwd        *forwarder
	rrl        *limiter
	updRL      *limiter
	updateFrom []netip.Prefix
	updateKeys map[string]bool // canonical key names
	upstreams  []string
	cacheSize  int
	rate       int
}

// New validates cfg and builds the service; it touches no socket and reads
// nothing from the store (Start does).
func New(cfg *config.Config, deps netsvc.Deps) (*Service, error) {
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	hosts := deps.Hosts
	if hosts == nil {
		hosts = netsvc.NewHosts()
	}
	reg := deps.Metrics
	if reg == nil {
		reg = metrics.NewRegistry()
	}
	s := &Service{
		deps:     deps,
		log:      log.With("svc", "dns"),
		now:      now,
		hosts:    hosts,
		dyn:      newDynamic(),
		tsig:     newTSIGKeys(),
		queries:  reg.CounterVec("amtd_dns_queries_total", "DNS queries answered, by how: auth, forward, cached, refused, servfail.", "how"),
		limited:  reg.CounterVec("amtd_dns_rate_limited_total", "Authoritative UDP responses withheld by response rate limiting, by action: drop, slip.", "action"),
		updates:  reg.CounterVec("amtd_dns_updates_total", "RFC 2136 updates, by result: accepted, refused.", "result"),
		cacheHit: reg.Counter("amtd_dns_cache_hits_total", "Forwarded questions answered from the cache."),
		dropped: reg.CounterVec("amtd_dns_udp_dropped_total", "UDP datagrams dropped unanswered, by reason: malformed, "+
			"response (a DNS response sent to the server), busy (forwarded query or update with the slow path full).", "reason"),
	}
	s.qAuth, s.limDrop, s.limSlip = s.queries.With("auth"), s.limited.With("drop"), s.limited.With("slip")
	s.dropMalformed, s.dropResp, s.dropBusy = s.dropped.With("malformed"), s.dropped.With("response"), s.dropped.With("busy")
	s.prov = newProvisionLog(s.log, now)
	st, err := s.buildState(cfg, nil)
	if err != nil {
		return nil, err
	}
	s.state.Store(st)
	return s, nil
}

// buildState validates cfg into a new state, reusing old's cache and rate
// limiter when their settings did not change (a reload keeps warm caches).
func (s *Service) buildState(cfg *config.Config, old *state) (*state, error) {
	z, err := newZoneData(cfg, s.now())
	if err != nil {
		return nil, err
	}
	st := &state{
		listen:     cfg.DNS.Listen,
		zone:       z,
		updateFrom: slices.Clone(cfg.DNS.UpdateFrom),
		updateKeys: map[string]bool{},
		upstreams:  slices.Clone(cfg.DNS.Upstreams),
		cacheSize:  cfg.DNS.CacheSize,
		rate:       cfg.DNS.RateLimit,
	}
	if st.listen == "" {
		st.listen = defaultListen
	}
	if _, err := netip.ParseAddrPort(st.listen); err != nil {
		return nil, fmt.Errorf("dns: [DNS] Listen=%s: %w", st.listen, err)
	}
	if st.rate < 0 {
		return nil, fmt.Errorf("dns: [DNS] RateLimit=%d is negative", st.rate)
	}
	for _, p := range st.updateFrom {
		if !p.IsValid() {
			return nil, fmt.Errorf("dns: [DNS] UpdateFrom=: invalid prefix")
		}
	}
	for _, k := range cfg.DNS.UpdateKeys {
		if _, ok := dns.IsDomainName(k); !ok {
			return nil, fmt.Errorf("dns: [DNS] UpdateKey=%s is not a valid key name", k)
		}
		st.updateKeys[netsvc.Canonical(k)] = true
	}
	c := newCache(st.cacheSize, s.now)
	if old != nil && old.fwd != nil && slices.Equal(old.upstreams, st.upstreams) && old.cacheSize == st.cacheSize {
		c = old.fwd.cache
	}
	if st.fwd, err = newForwarder(st.upstreams, c); err != nil {
		return nil, err
	}
	if old != nil && old.rate == st.rate {
		st.rrl, st.updRL = old.rrl, old.updRL
	} else {
		st.rrl = newLimiter(st.rate, st.rate, 24, 56, s.now)
		st.updRL = newLimiter(updateRate, updateBurst, 32, 128, s.now)
	}
	return st, nil
}

// Name implements netsvc.Service.
func (s *Service) Name() string { return "dns" }

// Start loads the TSIG keys and the records earlier updates registered from
// the store, then serves UDP and TCP on the "dns" and "dns-tcp" sockets.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return errors.New("dns: already started")
	}
	if s.deps.Listeners == nil {
		return errors.New("dns: no listener registry in deps")
	}
	st := s.state.Load()
	keys, err := s.loadKeys(ctx, st)
	if err != nil {
		return err
	}
	if err := s.restoreUpdates(ctx, st.zone); err != nil {
		return err
	}
	s.tsig.replace(keys)
	l, err := s.serve(st.listen)
	if err != nil {
		return err
	}
	s.servers = l
	s.running = true
	s.log.Info("dns: serving", "listen", st.listen, "zones", append(slices.Clone(st.zone.forward), st.zone.reverse...),
		"upstreams", st.upstreams, "rate_limit", st.rate)
	return nil
}

// serve starts the UDP and TCP servers on listen. Called with s.mu held.
//
// UDP has amtd's own read loop (udp.go): batched reads and writes, answers
// of ours built in the loop. TCP is miekg/dns's server: few clients use it
// (truncated answers, zone-sized replies, TSIG-signed updates from tools).
func (s *Service) serve(listen string) (*listening, error) {
	udp, err := newUDPServer(s, listen, udpReaders())
	if err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	ln, err := s.deps.Listeners.Stream("dns-tcp", listen)
	if err != nil {
		udp.close()
		return nil, fmt.Errorf("dns: %w", err)
	}
	tcp := &dns.Server{Listener: newLimitListener(ln, maxTCPConns), Handler: s, TsigProvider: s.tsig,
		MsgAcceptFunc: acceptMsg, MaxTCPQueries: 128}
	started := make(chan struct{})
	tcp.NotifyStartedFunc = func() { close(started) }
	failed := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := tcp.ActivateAndServe(); err != nil {
			s.serveErr.Store(err)
			s.log.Error("dns: TCP server stopped", "err", err)
			failed <- err
		}
	}()
	select {
	case <-started:
	case err := <-failed:
		<-done
		ln.Close()
		udp.close()
		return nil, fmt.Errorf("dns: serving %s over TCP: %w", listen, err)
	}
	udp.start()
	return &listening{udp: udp, tcp: tcp, tcpDone: done}, nil
}

// listening is what serve started: the UDP read loop and the TCP server.
type listening struct {
	udp     *udpServer
	tcp     *dns.Server
	tcpDone chan struct{} // closed when the TCP server has returned
}

// udpReaders is the number of read loops on the UDP socket, each on its
// own dup of it: the kernel hands datagrams to whichever reader is waiting.
func udpReaders() int { return min(4, max(2, runtime.GOMAXPROCS(0))) }

// stop shuts both servers down (their copies of the sockets close; the
// registry keeps the bound sockets for a successor) and waits for them.
func (l *listening) stop(ctx context.Context) error {
	if l == nil {
		return nil
	}
	var errs []error
	if err := l.tcp.ShutdownContext(ctx); err != nil {
		errs = append(errs, err)
	}
	udpDone := make(chan struct{})
	go func() { l.udp.close(); close(udpDone) }()
	for _, done := range []chan struct{}{l.tcpDone, udpDone} {
		select {
		case <-done:
		case <-ctx.Done():
			return errors.Join(append(errs, ctx.Err())...)
		}
	}
	return errors.Join(errs...)
}

// Close implements netsvc.Service.
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return nil
	}
	s.running = false
	l := s.servers
	s.servers = nil
	if err := l.stop(ctx); err != nil {
		return fmt.Errorf("dns: close: %w", err)
	}
	return nil
}

// Reload implements netsvc.Reloader: the new zone data, keys and limits are
// built aside and swapped in whole; the sockets stay unless Listen= changed.
func (s *Service) Reload(ctx context.Context, cfg *config.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.state.Load()
	st, err := s.buildState(cfg, old)
	if err != nil {
		return err
	}
	keys, err := s.loadKeys(ctx, st)
	if err != nil {
		return err
	}
	if s.running && st.listen != old.listen {
		l, err := s.serve(st.listen)
		if err != nil {
			return err
		}
		if err := s.servers.stop(ctx); err != nil {
			s.log.Warn("dns: closing the old listeners", "err", err)
		}
		s.servers = l
	}
	s.tsig.replace(keys)
	s.state.Store(st)
	s.log.Info("dns: reloaded", "zones", st.zone.forward, "static_records", len(cfg.DNSRecords), "upstreams", st.upstreams)
	return nil
}

// Health implements netsvc.Service: failing once a server loop has died.
func (s *Service) Health(ctx context.Context) error {
	s.mu.Lock()
	running := s.running
	s.mu.Unlock()
	if err, _ := s.serveErr.Load().(error); err != nil {
		return fmt.Errorf("dns: server stopped: %w", err)
	}
	if !running {
		return errors.New("dns: not running")
	}
	return nil
}

// Status implements netsvc.Status.
func (s *Service) Status() string {
	st := s.state.Load()
	fwd := "no upstream (REFUSED for other names)"
	if st.fwd != nil {
		fwd = fmt.Sprintf("forwarding to %d upstream(s), %d cached", len(st.upstreams), st.fwd.cache.len())
	}
	return fmt.Sprintf("authoritative for %d zone(s) (%d reverse), %d host names, %d updated names; %s; rate limit %d/s, %d networks tracked",
		len(st.zone.forward), len(st.zone.reverse), s.hosts.Len(), s.dyn.len(), fwd, st.rate, st.rrl.len())
}

// acceptMsg is the first filter on every message, before it is fully
// parsed: responses are ignored, updates are let through with bounded
// section counts (miekg/dns's default filter refuses updates outright).
func acceptMsg(h dns.Header) dns.MsgAcceptAction {
	if h.Bits&(1<<15) != 0 { // QR: a response, never answer it
		return dns.MsgIgnore
	}
	opcode := int(h.Bits>>11) & 0xF
	switch {
	case opcode == dns.OpcodeQuery:
		if h.Qdcount != 1 || h.Ancount > 1 || h.Nscount > 1 || h.Arcount > 2 {
			return dns.MsgReject
		}
	case opcode == dns.OpcodeUpdate:
		// Zone 1; prerequisites and updates bounded; additional: TSIG and OPT.
		if h.Qdcount != 1 || h.Ancount > maxPrereqs || h.Nscount > maxUpdates || h.Arcount > 2 {
			return dns.MsgReject
		}
	default:
		return dns.MsgRejectNotImplemented
	}
	return dns.MsgAccept
}

// loadKeys opens the TSIG secrets st's UpdateKey= names from the store.
func (s *Service) loadKeys(ctx context.Context, st *state) (map[string][]byte, error) {
	keys := map[string][]byte{}
	if len(st.updateKeys) == 0 {
		return keys, nil
	}
	if s.deps.Store == nil {
		return nil, errors.New("dns: [DNS] UpdateKey= needs the store, which holds the key secrets")
	}
	for name := range st.updateKeys {
		v, err := loadTSIGKey(ctx, s.deps.Store, name)
		if err != nil {
			return nil, fmt.Errorf("dns: [DNS] UpdateKey=%s: %w", name, err)
		}
		keys[name] = v
	}
	return keys, nil
}

// restoreUpdates loads what accepted updates registered before a restart.
func (s *Service) restoreUpdates(ctx context.Context, z *zoneData) error {
	if s.deps.Store == nil {
		s.log.Warn("dns: no store: names registered by RFC 2136 updates will not survive a restart")
		return nil
	}
	recs, err := s.deps.Store.DNSRecords().List(ctx, store.SourceDDNS)
	if err != nil {
		return fmt.Errorf("dns: loading updated records: %w", err)
	}
	addrs := map[string][]netip.Addr{}
	other := map[string][]dns.RR{}
	for _, r := range recs {
		if z.zoneOf(r.Name) == "" {
			s.log.Debug("dns: stored record outside the zones now served; ignored", "name", r.Name, "type", r.Type)
			continue
		}
		switch r.Type {
		case "A", "AAAA":
			a, err := netip.ParseAddr(r.Value)
			if err != nil {
				s.log.Warn("dns: stored record has a bad address; ignored", "name", r.Name, "value", r.Value)
				continue
			}
			addrs[r.Name] = append(addrs[r.Name], a)
		default:
			rr, err := dns.NewRR(fmt.Sprintf("%s %d IN %s %s", r.Name, int(r.TTL/time.Second), r.Type, r.Value))
			if err != nil || rr == nil {
				s.log.Warn("dns: stored record does not parse; ignored", "name", r.Name, "type", r.Type, "err", err)
				continue
			}
			other[r.Name] = append(other[r.Name], rr)
		}
	}
	for name, as := range addrs {
		s.hosts.Set(name, as...)
		s.dyn.setOwned(name, true)
	}
	for name, rrs := range other {
		s.dyn.set(name, rrs)
	}
	if n := len(addrs) + len(other); n > 0 {
		s.log.Info("dns: restored names registered by updates", "names", n)
	}
	return nil
}

// addrOf returns the IP of a client address.
func addrOf(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}
