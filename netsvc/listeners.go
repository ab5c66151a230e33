package netsvc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
)

// Listeners owns every socket the daemon listens on, for the life of the
// process. Sockets come from systemd socket activation (matched by
// FileDescriptorName, sd_listen_fds(3)) or are bound on first use.
//
// A service never receives the registry's socket itself: it receives a new
// net.Listener or net.PacketConn on a dup(2) of it. Closing that copy stops the
// service without closing the socket, so a reload can start the new service on
// the same socket before the old one is closed: no gap, and a socket that
// systemd handed over is never lost.
type Listeners struct {
	mu    sync.Mutex
	files map[string]*os.File // by name
	addrs map[string]string   // by name: the address the socket was bound to ("" if activated)
}

// NewListeners returns a registry holding the given activated sockets, keyed by
// their FileDescriptorName. Pass nil when not socket-activated.
func NewListeners(activated map[string]*os.File) *Listeners {
	l := &Listeners{files: map[string]*os.File{}, addrs: map[string]string{}}
	for name, f := range activated {
		l.files[name] = f
	}
	return l
}

// Activated reports whether a socket named name was handed over by systemd.
func (l *Listeners) Activated(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.files[name]
	return ok && l.addrs[name] == ""
}

// Stream returns a listener for the stream socket called name: the activated
// one if systemd passed it, else one bound to addr (once; later calls with the
// same name and address share the socket). Asking for a name already bound to a
// different address closes the old socket and binds the new one: that is a
// configuration change, applied on reload.
func (l *Listeners) Stream(name, addr string) (net.Listener, error) {
	f, err := l.file(name, addr, func() (*os.File, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		return ln.(*net.TCPListener).File()
	})
	if err != nil {
		return nil, err
	}
	defer f.Close() // FileListener makes its own dup
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("socket %q: %w (is it a listening stream socket? check ListenStream= in the .socket unit)", name, err)
	}
	return ln, nil
}

// Packet is Stream for datagram sockets (DHCP, DNS over UDP).
func (l *Listeners) Packet(name, addr string) (net.PacketConn, error) {
	f, err := l.file(name, addr, func() (*os.File, error) {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, err
		}
		defer pc.Close()
		return pc.(*net.UDPConn).File()
	})
	if err != nil {
		return nil, err
	}
	defer f.Close() // FilePacketConn makes its own dup
	pc, err := net.FilePacketConn(f)
	if err != nil {
		return nil, fmt.Errorf("socket %q: %w (is it a datagram socket? check ListenDatagram= in the .socket unit)", name, err)
	}
	return pc, nil
}

// Adopt registers a socket the caller bound itself (for example a DHCP socket
// bound to one interface with SO_BINDTODEVICE) so later reloads reuse it.
// The registry takes ownership of f.
func (l *Listeners) Adopt(name, addr string, f *os.File) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := l.files[name]; ok && old != f {
		old.Close()
	}
	l.files[name] = f
	l.addrs[name] = addr
}

// File returns a dup of the socket registered under name, or nil. The caller
// owns the returned file.
func (l *Listeners) File(name string) (*os.File, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.files[name]
	if !ok {
		return nil, nil
	}
	return dup(f)
}

func (l *Listeners) file(name, addr string, bind func() (*os.File, error)) (*os.File, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.files[name]
	if ok && (l.addrs[name] == "" || l.addrs[name] == addr) {
		return dup(f)
	}
	nf, err := bind()
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("listen %s on %s: address in use: another program (perhaps a second amtd, dnsmasq or systemd-resolved) holds it; stop it or change the address in amtd.conf", name, addr)
		}
		if errors.Is(err, syscall.EACCES) {
			return nil, fmt.Errorf("listen %s on %s: permission denied: ports below 1024 need socket activation (amtd.socket) or CAP_NET_BIND_SERVICE", name, addr)
		}
		return nil, fmt.Errorf("listen %s on %s: %w", name, addr, err)
	}
	if ok {
		f.Close()
	}
	l.files[name] = nf
	l.addrs[name] = addr
	return dup(nf)
}

// dup duplicates f's descriptor without calling f.Fd(): Fd puts the file
// into blocking mode, and O_NONBLOCK belongs to the open file description
// that every dup shares, so a live net.Conn on another dup would then read
// in a blocking syscall that Close cannot interrupt.
func dup(f *os.File) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("dup %s: %w", f.Name(), err)
	}
	fd := -1
	cerr := rc.Control(func(raw uintptr) { fd, err = syscall.Dup(int(raw)) })
	if cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("dup %s: %w", f.Name(), err)
	}
	syscall.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// Close closes every socket in the registry. Call it once, at exit.
func (l *Listeners) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for name, f := range l.files {
		errs = append(errs, f.Close())
		delete(l.files, name)
	}
	return errors.Join(errs...)
}
