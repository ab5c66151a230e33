// Package dhcp is amtd's DHCPv4 server: address pools per subnet, reservations,
// relayed links, and the options AMT depends on (1, 3, 6, 15, 51, 54, 58, 59,
// and 12/81 with DNS registration in netsvc.Hosts), per spec/network.md §1.
//
// Packets are decoded and encoded with insomniacslk/dhcp, but the socket, the
// read loop and its bounded worker pool are our own: the library's server4
// binds with SO_REUSEPORT, which would let a second amtd silently share the
// port, and starts a goroutine per packet.
package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"amtd/daemon/config"
	"amtd/metrics"
	"amtd/netsvc"
)

// Limits of the read loop: a flood of requests queues at most queueLen
// packets for a fixed set of workers and drops the rest, so it can grow
// neither goroutines nor memory.
const (
	queueLen   = 256
	maxPacket  = 1500 // one Ethernet MTU; DHCP messages are rarely over 576
	sweepEvery = 15 * time.Second
)

// Service is the DHCPv4 server. It implements netsvc.Service, netsvc.Reloader
// and netsvc.Status.
type Service struct {
	listen string
	deps   netsvc.Deps
	log    *slog.Logger
	srv    *server

	mu       sync.Mutex
	sock     *socket
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	allowed  map[int]bool // interfaces to serve, by index; empty: all
	running  bool
	readErr  atomic.Value // error that stopped the read loop
	packets  *metrics.CounterVec
	dropped  *metrics.Counter
	leaseGau *metrics.Gauge
}

// Options adjust New for callers that have no store wired in yet.
type Option func(*Service)

// WithLeaseStore persists leases in ls instead of the store in deps.
func WithLeaseStore(ls LeaseStore) Option { return func(s *Service) { s.srv.store = ls } }

// New validates cfg and builds the service; it touches no socket.
func New(cfg *config.Config, deps netsvc.Deps, opts ...Option) (*Service, error) {
	pol, err := newPolicy(cfg)
	if err != nil {
		return nil, err
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("svc", "dhcp")
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	listen := cfg.DHCP.Listen
	if listen == "" {
		listen = "0.0.0.0:67"
	}
	s := &Service{
		listen: listen,
		deps:   deps,
		log:    log,
		srv:    &server{pol: pol, tab: newTable(), hosts: deps.Hosts, now: now, log: log},
	}
	s.srv.store = leasesFrom(deps)
	for _, o := range opts {
		o(s)
	}
	if s.srv.store == nil {
		log.Warn("dhcp: no lease store: leases will not survive a restart")
	}
	reg := deps.Metrics
	if reg == nil {
		reg = metrics.NewRegistry()
	}
	s.packets = reg.CounterVec("amtd_dhcp_packets_total", "DHCP messages received, by message type.", "type")
	s.dropped = reg.Counter("amtd_dhcp_dropped_total", "DHCP packets dropped because the worker queue was full or they did not parse.")
	s.leaseGau = reg.Gauge("amtd_dhcp_leases", "Bound DHCP leases.")
	for _, w := range pol.warnings {
		log.Warn("dhcp: " + w)
	}
	return s, nil
}

// Name implements netsvc.Service.
func (s *Service) Name() string { return "dhcp" }

// Start binds (or reuses) the "dhcp" socket and starts serving. The socket is
// bound without SO_REUSEPORT, so a second server on the port is an error here
// rather than a silent split of the traffic.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return errors.New("dhcp: already started")
	}
	if s.deps.Listeners == nil {
		return errors.New("dhcp: no listener registry in deps")
	}
	allowed, err := interfaceIndexes(s.srv.pol.interfaces)
	if err != nil {
		return err
	}
	pc, err := s.deps.Listeners.Packet("dhcp", s.listen)
	if err != nil {
		return fmt.Errorf("dhcp: %w", err)
	}
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		pc.Close()
		return fmt.Errorf("dhcp: socket for %s is not UDP", s.listen)
	}
	sock, err := newSocket(uc)
	if err != nil {
		uc.Close()
		return fmt.Errorf("dhcp: socket %s: %w", s.listen, err)
	}
	if sock.raw < 0 {
		s.log.Info("dhcp: no packet socket (needs CAP_NET_RAW); replies to clients without an address are broadcast")
	}
	if err := s.srv.restore(ctx); err != nil {
		sock.close()
		return fmt.Errorf("dhcp: loading leases: %w", err)
	}
	s.leaseGau.Set(float64(s.boundLeases()))
	s.sock, s.allowed, s.running = sock, allowed, true
	s.readErr = atomic.Value{}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	queue := make(chan packet, queueLen)
	workers := max(4, 2*runtime.GOMAXPROCS(0))
	for range workers {
		s.wg.Go(func() { s.work(rctx, queue) })
	}
	s.wg.Go(func() { s.readLoop(queue) })
	s.wg.Go(func() { s.sweep(rctx, sweepEvery) })
	s.log.Info("dhcp: serving", "listen", s.listen, "pools", len(s.srv.pol.pools), "workers", workers)
	return nil
}

type packet struct {
	b  []byte
	in inbound
}

// readLoop reads until the socket closes and hands packets to the workers,
// dropping them when all are busy and the queue is full.
func (s *Service) readLoop(queue chan<- packet) {
	defer close(queue)
	buf := make([]byte, maxPacket)
	oob := make([]byte, 128)
	for {
		n, in, err := s.sock.read(buf, oob)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.readErr.Store(err)
				s.log.Error("dhcp: read failed; service stopped", "err", err)
			}
			return
		}
		p := packet{b: append([]byte(nil), buf[:n]...), in: in}
		select {
		case queue <- p:
		default:
			s.dropped.Inc()
		}
	}
}

func (s *Service) work(ctx context.Context, queue <-chan packet) {
	for p := range queue {
		s.serve(ctx, p)
	}
}

func (s *Service) serve(ctx context.Context, p packet) {
	s.mu.Lock()
	allowed := s.allowed
	s.mu.Unlock()
	if len(allowed) > 0 && !allowed[p.in.ifindex] {
		return
	}
	req, err := dhcpv4.FromBytes(p.b)
	if err != nil {
		s.dropped.Inc()
		s.log.Debug("dhcp: undecodable packet", "err", err)
		return
	}
	s.packets.With(req.MessageType().String()).Inc()
	o := s.srv.handle(ctx, req, p.in)
	if o == nil {
		return
	}
	if err := s.sock.write(o, p.in.local); err != nil {
		s.log.Warn("dhcp: sending reply failed", "to", o.dst, "type", o.resp.MessageType().String(), "err", err)
	}
	if o.resp.MessageType() == dhcpv4.MessageTypeAck {
		s.leaseGau.Set(float64(s.boundLeases()))
	}
}

// sweep expires leases every interval until ctx ends.
func (s *Service) sweep(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if s.srv.expire(ctx) > 0 {
				s.leaseGau.Set(float64(s.boundLeases()))
			}
		}
	}
}

func (s *Service) boundLeases() int {
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	return s.srv.tab.bound(s.srv.now())
}

// Close implements netsvc.Service: it closes this service's copy of the
// socket (the registry keeps the bound socket for a successor) and waits for
// the workers, at most until ctx ends.
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	if !s.running {
		s.mu.Unlock()
		return nil
	}
	s.running = false
	s.cancel()
	sock := s.sock
	err := sock.udp.Close() // ends the read loop, which ends the workers
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); sock.closeRaw(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("dhcp: close: workers still busy: %w", ctx.Err())
	}
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Health implements netsvc.Service: an error once the read loop has died.
func (s *Service) Health(context.Context) error {
	s.mu.Lock()
	running := s.running
	s.mu.Unlock()
	if !running {
		return errors.New("dhcp: not running")
	}
	if err, ok := s.readErr.Load().(error); ok {
		return fmt.Errorf("dhcp: read loop stopped: %w", err)
	}
	return nil
}

// Status implements netsvc.Status, with configuration warnings appended so
// `amtd status` shows them (spec/network.md §5).
func (s *Service) Status() string {
	s.srv.mu.Lock()
	pol := s.srv.pol
	n := s.srv.tab.bound(s.srv.now())
	s.srv.mu.Unlock()
	st := fmt.Sprintf("%d leases in %d pools", n, len(pol.pools))
	for _, w := range pol.warnings {
		st += "; WARNING: " + w
	}
	return st
}

// Leases returns the current leases, including addresses held back after a
// DECLINE (with State declined and no MAC), for `amtd status` and tests.
func (s *Service) Leases() []Lease {
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	out := make([]Lease, 0, len(s.srv.tab.byMAC)+len(s.srv.tab.declined))
	for _, l := range s.srv.tab.byMAC {
		out = append(out, l.export())
	}
	for a, until := range s.srv.tab.declined {
		out = append(out, Lease{IP: a, Expires: until, State: StateDeclined})
	}
	return out
}

// Reload implements netsvc.Reloader: new pools, reservations and options
// apply to the next packet; leases are kept. The listen address cannot change
// in place.
func (s *Service) Reload(_ context.Context, cfg *config.Config) error {
	pol, err := newPolicy(cfg)
	if err != nil {
		return err
	}
	listen := cfg.DHCP.Listen
	if listen == "" {
		listen = "0.0.0.0:67"
	}
	if listen != s.listen {
		return fmt.Errorf("dhcp: Listen= changed from %s to %s: restart amtd to apply it", s.listen, listen)
	}
	allowed, err := interfaceIndexes(pol.interfaces)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.allowed = allowed
	s.mu.Unlock()
	s.srv.mu.Lock()
	s.srv.pol = pol
	s.srv.tab.cursor = map[netip.Prefix]netip.Addr{}
	s.srv.mu.Unlock()
	for _, w := range pol.warnings {
		s.log.Warn("dhcp: " + w)
	}
	s.log.Info("dhcp: configuration reloaded", "pools", len(pol.pools), "reservations", len(pol.reservations))
	return nil
}

func interfaceIndexes(names []string) (map[int]bool, error) {
	m := map[int]bool{}
	for _, n := range names {
		ifc, err := net.InterfaceByName(n)
		if err != nil {
			return nil, fmt.Errorf("dhcp: Interface=%s: %w (check the name with `ip link`)", n, err)
		}
		m[ifc.Index] = true
	}
	return m, nil
}
