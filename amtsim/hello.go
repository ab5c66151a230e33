package amtsim

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"amtd/amt/hello"
)

// HelloSchedule says when a device in Setup Mode sends hellos. The real
// schedule of the ≤ 15 attempts is unverified (spec/activation.md §2.4), so
// every value here is a guess: Interval between attempts, doubling up to
// MaxInterval, at most Attempts attempts (retry counts 0…Attempts-1, IRG
// range 0–14), and no attempt after Window (AMT: "in most cases 6 hours").
type HelloSchedule struct {
	Interval    time.Duration
	MaxInterval time.Duration
	Attempts    int
	Window      time.Duration
	Port        int // 9971 unless setup.bin PSPO says otherwise
}

// DefaultHelloSchedule is the simulator's guess.
var DefaultHelloSchedule = HelloSchedule{Interval: 30 * time.Second, MaxInterval: 10 * time.Minute, Attempts: 15, Window: 6 * time.Hour, Port: 9971}

// ProvisionServerNames are the names AMT resolves, in order: the
// single-label name first, then provisionserver.<suffix> (spec/network.md §2).
func ProvisionServerNames(suffix string) []string {
	names := []string{"provisionserver."}
	if s := strings.Trim(suffix, "."); s != "" {
		names = append(names, "provisionserver."+s+".")
	}
	return names
}

// ResolveProvisionServer asks server for the names in order and returns
// the first A record's address.
func ResolveProvisionServer(ctx context.Context, server netip.AddrPort, suffix string) (netip.Addr, string, error) {
	var errs []error
	for _, name := range ProvisionServerNames(suffix) {
		ip, err := resolveA(ctx, server, name)
		if err == nil {
			return ip, name, nil
		}
		errs = append(errs, err)
	}
	return netip.Addr{}, "", fmt.Errorf("amtsim: ProvisionServer lookup at %s: %w", server, errors.Join(errs...))
}

// resolveA asks server for name's first A record.
func resolveA(ctx context.Context, server netip.AddrPort, name string) (netip.Addr, error) {
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeA)
	q.RecursionDesired = true
	r, _, err := c.ExchangeContext(ctx, q, server.String())
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s: %w", name, err)
	}
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			if ip, ok := netip.AddrFromSlice(a.A.To4()); ok {
				return ip, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("%s: %s, no A record", name, dns.RcodeToString[r.Rcode])
}

// Hello builds the device's hello: version 3, the retry count, its UUID,
// and its trusted root hashes (spec/activation.md §2.2).
func (d *Device) Hello(retry uint32) (*hello.Hello, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	h := &hello.Hello{AdminCredentialsSet: d.s.AdminHA1 != "", RetryCount: retry, UUID: d.UUID}
	for _, r := range d.trustedLocked() {
		v, err := hex.DecodeString(r.Hex)
		if err != nil {
			continue
		}
		t := map[string]hello.HashType{"sha1": hello.SHA1, "sha256": hello.SHA256, "sha384": hello.SHA384}[r.Algorithm]
		if t == 0 || t.Size() != len(v) {
			continue
		}
		h.Hashes = append(h.Hashes, hello.Hash{Type: t, Value: v})
	}
	return h, nil
}

// SendHello finds the provisioning server and sends one hello to it over
// TCP, then closes: AMT sends and closes, the server answers nothing
// (spec/activation.md §2.1). The server is, in IRG's order (spec/network.md
// §2): the configured SCA address; else the configured SCA FQDN resolved;
// else ProvisionServer. The port is the configured one (setup.bin PSPO)
// when set, else port.
func (d *Device) SendHello(ctx context.Context, port int, retry uint32) (netip.AddrPort, error) {
	d.mu.Lock()
	n := d.net
	suffix := d.s.DhcpDNSSuffix
	scaIP, scaFQDN := d.s.ProvServerIP, d.s.ProvServerFQDN
	if d.s.ProvServerPort != 0 {
		port = d.s.ProvServerPort
	}
	d.mu.Unlock()
	var ip netip.Addr
	var err error
	switch {
	case scaIP != "":
		ip, err = netip.ParseAddr(scaIP)
	case !n.DNS.IsValid():
		return netip.AddrPort{}, fmt.Errorf("amtsim: device %s has no DNS server (DHCP option 6), so no ProvisionServer lookup", d.UUID)
	case scaFQDN != "":
		if ip, err = resolveA(ctx, n.DNS, scaFQDN); err != nil {
			err = fmt.Errorf("amtsim: SCA FQDN lookup at %s: %w", n.DNS, err)
		}
	default:
		ip, _, err = ResolveProvisionServer(ctx, n.DNS, suffix)
	}
	if err != nil {
		return netip.AddrPort{}, err
	}
	h, err := d.Hello(retry)
	if err != nil {
		return netip.AddrPort{}, err
	}
	b, err := h.MarshalBinary()
	if err != nil {
		return netip.AddrPort{}, err
	}
	to := netip.AddrPortFrom(ip, uint16(port))
	dl := net.Dialer{Timeout: 5 * time.Second}
	if n.IP.IsValid() && n.IP.IsLoopback() {
		dl.LocalAddr = &net.TCPAddr{IP: n.IP.AsSlice()}
	}
	c, err := dl.DialContext(ctx, "tcp", to.String())
	if err != nil {
		return to, fmt.Errorf("amtsim: hello to %s: %w", to, err)
	}
	defer c.Close()
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(b); err != nil {
		return to, fmt.Errorf("amtsim: hello to %s: %w", to, err)
	}
	return to, nil
}

// RunHellos sends hellos on the schedule while the device stays in
// pre-provisioning with remote configuration on, until ctx ends, the
// attempts or the window run out. It returns how many were sent.
func (d *Device) RunHellos(ctx context.Context, sch HelloSchedule) int {
	if sch.Port == 0 {
		sch.Port = 9971
	}
	start := time.Now()
	wait := sch.Interval
	sent := 0
	for retry := 0; retry < sch.Attempts; retry++ {
		if !d.setupOpen() || (sch.Window > 0 && time.Since(start) > sch.Window) {
			return sent
		}
		if to, err := d.SendHello(ctx, sch.Port, uint32(retry)); err != nil {
			d.log.Info("hello not sent", "retry", retry, "err", err)
		} else {
			sent++
			d.log.Info("hello sent", "to", to.String(), "retry", strconv.Itoa(retry))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return sent
		case <-t.C:
		}
		wait = min(wait*2, max(sch.MaxInterval, sch.Interval))
	}
	return sent
}
