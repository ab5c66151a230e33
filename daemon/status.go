package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"amtd/daemon/control"
	"amtd/netsvc"
)

// refreshDevices asks the store how many devices it knows, for STATUS=.
func (d *daemon) refreshDevices(ctx context.Context) {
	counts := control.DeviceCounts{}
	if d.deps.StoreView != nil {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		n, err := d.deps.StoreView.DeviceCount(cctx)
		cancel()
		if err != nil {
			counts.Error = err.Error()
		}
		counts.Known = n
	}
	d.mu.Lock()
	for _, r := range d.running {
		if c, ok := r.svc.(DeviceCounter); ok {
			counts.Connected += c.ConnectedDevices()
		}
	}
	d.devices = counts
	d.mu.Unlock()
}

func (d *daemon) activations() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, r := range d.running {
		if c, ok := r.svc.(ActivationCounter); ok {
			n += c.ActivationsRunning()
		}
	}
	return n
}

// provisioning asks the provisioning service, if one runs, for its
// progress; outside d.mu, as it reads the store.
func (d *daemon) provisioning(ctx context.Context) *control.ProvisioningStatus {
	d.mu.Lock()
	var pr ProvisioningReporter
	for _, r := range d.running {
		if p, ok := r.svc.(ProvisioningReporter); ok {
			pr = p
		}
	}
	d.mu.Unlock()
	if pr == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st := pr.Provisioning(cctx)
	return &st
}

// summary is the one line sent as STATUS= and shown first by `amtd status`:
// "2/2 services up (control, dns); 120 devices known, 4 connected; 0 activations running".
func (d *daemon) summary() string {
	acts := d.activations()
	d.mu.Lock()
	defer d.mu.Unlock()
	var up, failed, wedged []string
	for _, r := range d.running {
		if r.svc == nil {
			failed = append(failed, r.spec.Name)
			continue
		}
		up = append(up, r.spec.Name)
		r.probeMu.Lock()
		if r.probing || r.lastErr != nil {
			wedged = append(wedged, r.spec.Name)
		}
		r.probeMu.Unlock()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d/%d services up (%s)", len(up), len(d.running), strings.Join(up, ", "))
	if len(failed) > 0 {
		fmt.Fprintf(&b, ", failed: %s", strings.Join(failed, ", "))
	}
	if len(wedged) > 0 {
		fmt.Fprintf(&b, ", unhealthy: %s", strings.Join(wedged, ", "))
	}
	if d.devices.Error != "" {
		b.WriteString("; devices: store not answering")
	} else {
		fmt.Fprintf(&b, "; %d devices known, %d connected", d.devices.Known, d.devices.Connected)
	}
	fmt.Fprintf(&b, "; %d activations running", acts)
	if lr := d.lastReload; lr != nil && !lr.OK {
		fmt.Fprintf(&b, "; reload failed: %s", lr.Errors[0])
		if len(lr.Errors) > 1 {
			fmt.Fprintf(&b, " (and %d more)", len(lr.Errors)-1)
		}
	}
	return b.String()
}

// probeAll runs every service's health check concurrently, for STATUS= and
// `amtd status`.
func (d *daemon) probeAll(ctx context.Context) map[*running]error {
	d.mu.Lock()
	rs := slices.Clone(d.running)
	d.mu.Unlock()
	var mu sync.Mutex
	var wg sync.WaitGroup
	out := map[*running]error{}
	for _, r := range rs {
		if r.svc == nil {
			continue
		}
		wg.Go(func() {
			err := r.probe(ctx)
			mu.Lock()
			out[r] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

func (d *daemon) statusCommand(ctx context.Context, _ json.RawMessage) (any, error) {
	health := d.probeAll(ctx)
	d.refreshDevices(ctx)
	rep := control.StatusReport{
		Version:     d.deps.Version,
		PID:         os.Getpid(),
		StartedAt:   d.started,
		Activations: d.activations(),
		Summary:     d.summary(),
		Sockets:     d.sockets(),
	}
	rep.UptimeSeconds = int64(d.now().Sub(d.started) / time.Second)
	rep.Provisioning = d.provisioning(ctx)
	d.mu.Lock()
	defer d.mu.Unlock()
	rep.Config = d.cfg.Path
	rep.Store = d.cfg.Store.Path
	rep.Devices = d.devices
	if d.lastReload != nil {
		lr := *d.lastReload
		rep.LastReload = &lr
	}
	for _, r := range d.running {
		s := control.ServiceStatus{Name: r.spec.Name, State: control.StateUp, Health: "ok"}
		if r.svc == nil {
			s.State = control.StateFailed
			s.Health = "not running"
			if r.err != nil {
				s.Error = r.err.Error()
			}
		} else {
			if err := health[r]; err != nil {
				s.Health = err.Error()
			}
			if st, ok := r.svc.(netsvc.Status); ok {
				s.Summary = st.Status()
			}
		}
		rep.Services = append(rep.Services, s)
	}
	return rep, nil
}

// sockets describes the sockets in the registry, activated or bound.
func (d *daemon) sockets() []control.SocketStatus {
	var out []control.SocketStatus
	for _, name := range SocketNames {
		f, err := d.deps.Listeners.File(name)
		if err != nil || f == nil {
			continue
		}
		s := control.SocketStatus{Name: name, Activated: d.deps.Listeners.Activated(name)}
		s.Kind, s.Address = describeSocket(f)
		f.Close()
		out = append(out, s)
	}
	return out
}

func describeSocket(f *os.File) (kind, addr string) {
	// Not f.Fd(): it would put the socket, shared with the live service
	// through dup, into blocking mode (see netsvc.Listeners).
	rc, err := f.SyscallConn()
	if err != nil {
		return "unknown", ""
	}
	var typ int
	var sa unix.Sockaddr
	cerr := rc.Control(func(raw uintptr) {
		if typ, err = unix.GetsockoptInt(int(raw), unix.SOL_SOCKET, unix.SO_TYPE); err == nil {
			sa, _ = unix.Getsockname(int(raw))
		}
	})
	if cerr != nil || err != nil {
		return "unknown", ""
	}
	switch typ {
	case unix.SOCK_STREAM:
		kind = "stream"
	case unix.SOCK_DGRAM:
		kind = "datagram"
	default:
		kind = fmt.Sprintf("type %d", typ)
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return kind, net.JoinHostPort(net.IP(a.Addr[:]).String(), fmt.Sprint(a.Port))
	case *unix.SockaddrInet6:
		return kind, net.JoinHostPort(net.IP(a.Addr[:]).String(), fmt.Sprint(a.Port))
	case *unix.SockaddrUnix:
		return "unix " + kind, a.Name
	}
	return kind, ""
}
