package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"

	"amtd/daemon/config"
	"amtd/daemon/control"
	"amtd/netsvc"
)

// DefaultControlSocket is [Control] Socket='s default, inside the unit's
// RuntimeDirectory=amtd.
const DefaultControlSocket = "/run/amtd/control.sock"

// controlService runs the control socket as a service of the daemon: it
// starts first, so `amtd status` answers while the rest come up, and it
// reloads in place (a new Socket= path is bound before the old one closes).
type controlService struct {
	log       *slog.Logger
	listeners *netsvc.Listeners
	mux       *control.Mux

	mu        sync.Mutex
	path      string
	gid       int
	activated bool
	srv       *control.Server
	serveErr  chan error
	// served is closed when Serve returns. Close waits for it: Serve runs in
	// a goroutine, and until it has taken the listener, Server.Close cannot
	// close it (and so unlink the socket file).
	served chan struct{}
}

func (d *daemon) newControl(cfg *config.Config, deps netsvc.Deps) (netsvc.Service, error) {
	gid, err := control.LookupGroup(cfg.Control.Group)
	if err != nil {
		return nil, err
	}
	return &controlService{log: deps.Log, listeners: deps.Listeners, mux: d.mux, path: controlPath(cfg), gid: gid}, nil
}

func controlPath(cfg *config.Config) string {
	if cfg.Control.Socket == "" {
		return DefaultControlSocket
	}
	return cfg.Control.Socket
}

func (c *controlService) Name() string { return "control" }

func (c *controlService) Start(ctx context.Context) error {
	var ln net.Listener
	if c.listeners.Activated("control") {
		// systemd owns the path, its mode and group (SocketMode=, SocketGroup=).
		f, err := c.listeners.File("control")
		if err != nil {
			return err
		}
		ln, err = net.FileListener(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("control socket passed by systemd: %w (is it ListenStream= of a unix path?)", err)
		}
		c.activated = true
	} else {
		uln, err := control.Listen(c.path, c.gid)
		if err != nil {
			return err
		}
		ln = uln
	}
	c.serve(ln)
	c.log.Info("control socket listening", "socket", ln.Addr().String(), "activated", c.activated)
	return nil
}

func (c *controlService) serve(ln net.Listener) {
	srv := control.NewServer(c.log, c.mux)
	srv.AllowGroup(c.gid)
	ch := make(chan error, 1)
	served := make(chan struct{})
	go func() { ch <- srv.Serve(ln); close(served) }()
	c.srv, c.serveErr, c.served = srv, ch, served
}

func (c *controlService) Close(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.srv == nil {
		return nil
	}
	err := c.srv.Close(ctx)
	select {
	case <-c.served:
	case <-ctx.Done():
	}
	return err
}

func (c *controlService) Health(ctx context.Context) error {
	c.mu.Lock()
	ch := c.serveErr
	c.mu.Unlock()
	if ch == nil {
		return errors.New("control socket not started")
	}
	select {
	case err := <-ch:
		ch <- err // keep reporting it
		if err == nil {
			err = errors.New("closed")
		}
		return fmt.Errorf("control socket stopped accepting: %w", err)
	default:
		return nil
	}
}

// Reload applies a new Group= in place, and a new Socket= by binding it and
// then closing the old one. Errors leave the old socket serving.
func (c *controlService) Reload(ctx context.Context, cfg *config.Config) error {
	gid, err := control.LookupGroup(cfg.Control.Group)
	if err != nil {
		return err
	}
	path := controlPath(cfg)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.activated || path == c.path {
		if path != c.path {
			c.log.Warn("control socket: Socket= changed, but the socket comes from systemd; change amtd-control.socket instead", "socket", path)
		}
		if gid != c.gid && !c.activated && gid >= 0 {
			if err := os.Chown(c.path, -1, gid); err != nil {
				return fmt.Errorf("control socket %s: chown to group %d: %w", c.path, gid, err)
			}
		}
		c.gid = gid
		c.srv.AllowGroup(gid)
		return nil
	}
	ln, err := control.Listen(path, gid)
	if err != nil {
		return err
	}
	old := c.srv
	c.gid, c.path = gid, path
	c.serve(ln)
	c.log.Info("control socket moved", "socket", path)
	return old.Close(ctx)
}
