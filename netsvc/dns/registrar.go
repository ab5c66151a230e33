package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"amtd/daemon/config"
	"amtd/netsvc"
	"amtd/store"
)

// Registrar puts ProvisionServer.<zone> A/AAAA, pointing at the appliance,
// into a site's own DNS by RFC 2136 signed with TSIG, for sites that keep
// their DNS and only want amtd found ([DNSRegistrar]). It checks the record
// by asking the server afterwards, refreshes it every Interval and whenever
// the appliance's addresses change, and reports the server's answer when it
// fails. It implements netsvc.Service, netsvc.Reloader and netsvc.Status.
type Registrar struct {
	deps netsvc.Deps
	log  *slog.Logger
	now  func() time.Time

	mu      sync.Mutex
	cfg     registrarConfig
	cancel  context.CancelFunc
	done    chan struct{}
	kick    chan struct{}
	last    time.Time    // last attempt
	lastErr error        // its failure, nil when it succeeded
	okAt    time.Time    // last success
	okAddrs []netip.Addr // what was registered then
}

type registrarConfig struct {
	server   string // host:port
	zone     string // canonical
	name     string // ProvisionServer.<zone>
	key      string // canonical key name
	alg      string
	interval time.Duration
	ttl      uint32
	addrs    []netip.Addr // configured; empty: the interfaces' addresses
}

// Timing of the registrar: retries back off from retryMin to the refresh
// interval; with no configured address the interfaces are polled.
const (
	retryMin      = 5 * time.Second
	addrPollEvery = 30 * time.Second
	exchangeLimit = 5 * time.Second
)

// NewRegistrar validates cfg.Registrar; it contacts nothing.
func NewRegistrar(cfg *config.Config, deps netsvc.Deps) (*Registrar, error) {
	rc, err := registrarConfigOf(cfg)
	if err != nil {
		return nil, err
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	return &Registrar{deps: deps, log: log.With("svc", "dns-registrar"), now: now, cfg: rc}, nil
}

func registrarConfigOf(cfg *config.Config) (registrarConfig, error) {
	r := cfg.Registrar
	var rc registrarConfig
	if r.Server == "" {
		return rc, errors.New("dns registrar: [DNSRegistrar] Server= is required: the site's primary DNS server, host:port")
	}
	server, err := upstreamAddr(r.Server)
	if err != nil {
		return rc, fmt.Errorf("dns registrar: [DNSRegistrar] Server=%s: %w", r.Server, err)
	}
	zone := r.Zone
	if zone == "" && len(cfg.Site.Domains) > 0 {
		zone = cfg.Site.Domains[0]
	}
	if zone == "" {
		return rc, errors.New("dns registrar: [DNSRegistrar] Zone= (or [Site] Domain=) is required")
	}
	zone = netsvc.Canonical(zone)
	if _, ok := dns.IsDomainName(zone); !ok {
		return rc, fmt.Errorf("dns registrar: [DNSRegistrar] Zone=%s is not a valid DNS name", r.Zone)
	}
	if r.Key == "" {
		return rc, errors.New("dns registrar: [DNSRegistrar] Key= is required: the TSIG key name the site's server allows updates with")
	}
	if _, ok := dns.IsDomainName(r.Key); !ok {
		return rc, fmt.Errorf("dns registrar: [DNSRegistrar] Key=%s is not a valid key name", r.Key)
	}
	alg, err := TSIGAlgorithm(r.Algorithm)
	if err != nil {
		return rc, fmt.Errorf("dns registrar: [DNSRegistrar] Algorithm=: %w", err)
	}
	interval := r.Interval
	if interval == 0 {
		interval = time.Hour
	}
	if interval < time.Second {
		return rc, fmt.Errorf("dns registrar: [DNSRegistrar] Interval=%s is too short", r.Interval)
	}
	ttl := r.TTL
	if ttl == 0 {
		ttl = defaultTTL
	}
	if ttl < 0 || ttl > 7*24*time.Hour {
		return rc, fmt.Errorf("dns registrar: [DNSRegistrar] TTL=%s is out of range", r.TTL)
	}
	rc = registrarConfig{
		server: server, zone: zone, name: "ProvisionServer." + zone, key: netsvc.Canonical(r.Key), alg: alg,
		interval: interval, ttl: uint32(ttl / time.Second),
	}
	for _, a := range cfg.Site.Addresses {
		rc.addrs = append(rc.addrs, a.Unmap())
	}
	return rc, nil
}

// Name implements netsvc.Service.
func (r *Registrar) Name() string { return "dns-registrar" }

// Start begins registering in the background; the first attempt is made at
// once, and its outcome shows in Status and Health.
func (r *Registrar) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel != nil {
		return errors.New("dns registrar: already started")
	}
	if r.deps.Store == nil {
		return errors.New("dns registrar: needs the store, which holds the TSIG key")
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel, r.done, r.kick = cancel, make(chan struct{}), make(chan struct{}, 1)
	go func() {
		defer close(r.done)
		r.run(rctx)
	}()
	return nil
}

// Close implements netsvc.Service. The record stays at the server: devices
// may still be looking for amtd, and a restart re-registers it.
func (r *Registrar) Close(ctx context.Context) error {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.cancel = nil
	r.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("dns registrar: close: %w", ctx.Err())
	}
}

// Reload implements netsvc.Reloader: a changed server, zone, key or address
// list is registered at once.
func (r *Registrar) Reload(ctx context.Context, cfg *config.Config) error {
	rc, err := registrarConfigOf(cfg)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.cfg = rc
	kick := r.kick
	r.mu.Unlock()
	if kick != nil {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// Health implements netsvc.Service: failing while the last attempt failed.
func (r *Registrar) Health(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lastErr != nil {
		return fmt.Errorf("dns registrar: %w", r.lastErr)
	}
	return nil
}

// Status implements netsvc.Status.
func (r *Registrar) Status() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.last.IsZero():
		return fmt.Sprintf("registering %s at %s", r.cfg.name, r.cfg.server)
	case r.lastErr != nil:
		return fmt.Sprintf("%s not registered at %s (last try %s): %v", r.cfg.name, r.cfg.server, r.last.Format(time.TimeOnly), r.lastErr)
	}
	return fmt.Sprintf("%s → %s registered at %s, checked %s", r.cfg.name, joinAddrs(r.okAddrs), r.cfg.server, r.okAt.Format(time.TimeOnly))
}

func (r *Registrar) run(ctx context.Context) {
	retry := retryMin
	poll := time.NewTicker(addrPollEvery)
	defer poll.Stop()
	var registered []netip.Addr
	for {
		r.mu.Lock()
		rc := r.cfg
		r.mu.Unlock()
		addrs, err := r.addresses(rc)
		if err == nil {
			err = r.register(ctx, rc, addrs)
		}
		if ctx.Err() != nil {
			return
		}
		wait := rc.interval
		r.mu.Lock()
		r.last, r.lastErr = r.now(), err
		if err == nil {
			r.okAt, r.okAddrs = r.last, addrs
			registered = addrs
			retry = retryMin
		} else {
			wait = min(retry, rc.interval)
			retry = min(2*retry, rc.interval)
		}
		r.mu.Unlock()
		if err != nil {
			r.log.Error("dns registrar: "+err.Error(), "server", rc.server, "name", rc.name, "retry_in", wait)
		} else {
			r.log.Info("dns registrar: registered", "name", rc.name, "addrs", joinAddrs(addrs), "server", rc.server)
		}
		timer := time.NewTimer(wait)
	wait:
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
				break wait
			case <-r.kick:
				timer.Stop()
				break wait
			case <-poll.C:
				if now, err := r.addresses(rc); err == nil && !sameAddrs(now, registered) {
					r.log.Info("dns registrar: the appliance's addresses changed", "addrs", joinAddrs(now))
					timer.Stop()
					break wait
				}
			}
		}
	}
}

// addresses are the configured [Site] Address= list, or else the global
// unicast addresses of the interfaces.
func (r *Registrar) addresses(rc registrarConfig) ([]netip.Addr, error) {
	if len(rc.addrs) > 0 {
		return rc.addrs, nil
	}
	ifas, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("listing the interfaces' addresses: %w", err)
	}
	var out []netip.Addr
	for _, ifa := range ifas {
		if p, err := netip.ParsePrefix(ifa.String()); err == nil && p.Addr().IsGlobalUnicast() {
			out = append(out, p.Addr().Unmap())
		}
	}
	if len(out) == 0 {
		return nil, errors.New("the appliance has no global unicast address to register; set [Site] Address=")
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, nil
}

// register replaces ProvisionServer's A and AAAA at the server with addrs,
// then asks the server whether it now answers them.
func (r *Registrar) register(ctx context.Context, rc registrarConfig, addrs []netip.Addr) error {
	key, err := loadTSIGKey(ctx, r.deps.Store, rc.key)
	if err != nil {
		return fmt.Errorf("[DNSRegistrar] Key=: %w", err)
	}
	defer clear(key) // after the exchange: the provider signs with it
	keys := newTSIGKeys()
	keys.replace(map[string][]byte{rc.key: key})

	m := new(dns.Msg)
	m.SetUpdate(rc.zone)
	m.RemoveRRset([]dns.RR{
		&dns.A{Hdr: dns.RR_Header{Name: rc.name, Rrtype: dns.TypeA, Class: dns.ClassINET}},
		&dns.AAAA{Hdr: dns.RR_Header{Name: rc.name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET}},
	})
	m.Insert(addrRRs(rc.name, rc.ttl, addrs))
	m.SetTsig(rc.key, rc.alg, 300, r.now().Unix())
	resp, err := r.exchange(ctx, m, rc.server, keys)
	if resp != nil && resp.Rcode != dns.RcodeSuccess {
		return rcodeError(resp.Rcode, rc)
	}
	if err != nil {
		if errors.Is(err, dns.ErrSig) || errors.Is(err, dns.ErrSecret) || errors.Is(err, dns.ErrTime) {
			return fmt.Errorf("the answer from %s is not signed with key %s (%v): is the secret the same on both sides?", rc.server, rc.key, err)
		}
		return fmt.Errorf("update of %s at %s: %w", rc.name, rc.server, err)
	}
	if err := r.check(ctx, rc, addrs); err != nil {
		return err
	}
	r.remember(ctx, rc, addrs)
	return nil
}

func (r *Registrar) exchange(ctx context.Context, m *dns.Msg, server string, keys *tsigKeys) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, exchangeLimit)
	defer cancel()
	c := &dns.Client{Net: "udp", TsigProvider: keys, Timeout: exchangeLimit}
	resp, _, err := c.ExchangeContext(ctx, m, server)
	if err == nil && resp.Truncated {
		c.Net = "tcp"
		resp, _, err = c.ExchangeContext(ctx, m, server)
	}
	return resp, err
}

// rcodeError says what a refused update means and what to do about it.
func rcodeError(rcode int, rc registrarConfig) error {
	name := dns.RcodeToString[rcode]
	switch rcode {
	case dns.RcodeNotAuth:
		return fmt.Errorf("%s: TSIG key rejected by %s (the key %s or its secret does not match the server's; compare with 'amtd dns tsig list' and the server's key clause)",
			name, rc.server, strings.TrimSuffix(rc.key, "."))
	case dns.RcodeRefused:
		return fmt.Errorf("%s: update refused by %s (allow-update or update-policy for zone %s must grant key %s)",
			name, rc.server, rc.zone, strings.TrimSuffix(rc.key, "."))
	case dns.RcodeNotZone:
		return fmt.Errorf("%s: %s is not authoritative for zone %s (check [DNSRegistrar] Zone= and Server=)", name, rc.server, rc.zone)
	}
	return fmt.Errorf("%s: update of %s failed at %s", name, rc.name, rc.server)
}

// check asks the server for the record and compares it with addrs.
func (r *Registrar) check(ctx context.Context, rc registrarConfig, addrs []netip.Addr) error {
	var got []netip.Addr
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		q := new(dns.Msg)
		q.SetQuestion(rc.name, t)
		q.RecursionDesired = false
		resp, err := r.exchange(ctx, q, rc.server, newTSIGKeys())
		if err != nil {
			return fmt.Errorf("checking %s at %s: %w", rc.name, rc.server, err)
		}
		if resp.Rcode != dns.RcodeSuccess {
			return fmt.Errorf("checking %s at %s: %s after a successful update", rc.name, rc.server, dns.RcodeToString[resp.Rcode])
		}
		for _, rr := range resp.Answer {
			if a := rrAddr(rr); a.IsValid() && strings.EqualFold(rr.Header().Name, rc.name) {
				got = append(got, a)
			}
		}
	}
	if !sameAddrs(got, addrs) {
		return fmt.Errorf("checking %s at %s: it answers %s, not %s (is Server= the zone's primary?)", rc.name, rc.server, joinAddrs(got), joinAddrs(addrs))
	}
	return nil
}

// remember notes the registration in the store (source registrar), so
// `amtd status` and the API can show what amtd put in the site's DNS.
func (r *Registrar) remember(ctx context.Context, rc registrarConfig, addrs []netip.Addr) {
	recs := r.deps.Store.DNSRecords()
	name := strings.ToLower(rc.name)
	err := errors.Join(recs.Delete(ctx, name, "A"), recs.Delete(ctx, name, "AAAA"))
	for _, a := range addrs {
		typ := "A"
		if a.Is6() {
			typ = "AAAA"
		}
		err = errors.Join(err, recs.Put(ctx, store.DNSRecord{Name: name, Type: typ, Value: a.String(),
			TTL: time.Duration(rc.ttl) * time.Second, Source: store.SourceRegistrar}))
	}
	if err != nil {
		r.log.Warn("dns registrar: noting the registration in the store failed", "err", err)
	}
}

func sameAddrs(a, b []netip.Addr) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, netip.Addr.Compare)
	slices.SortFunc(b, netip.Addr.Compare)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

func joinAddrs(as []netip.Addr) string {
	if len(as) == 0 {
		return "nothing"
	}
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}
