package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"amtd/daemon"
	"amtd/daemon/config"
	"amtd/daemon/control"
	"amtd/netsvc/cira"
	"amtd/store"
)

// maxForwarded bounds the local connections one `amtd forward` carries at
// once; the daemon queues them at 3 channels per device (spec/apf.md §7.6).
const maxForwarded = 32

// forwardOpenTimeout bounds opening one forwarded connection: the daemon
// waits up to 30 s for one of the device's 3 channels to come free.
const forwardOpenTimeout = 45 * time.Second

// cmdForward listens on a local TCP port and tunnels each connection to a
// device's AMT port over its CIRA link, through the daemon's control socket.
// It runs until Ctrl-C (or SIGTERM). Exit codes: 0 stopped, 1 failure, 2 usage.
func cmdForward(c *cli, args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runForward(ctx, c, args, nil)
}

// runForward is cmdForward until ctx ends; ready, if set, gets the address
// listened on.
func runForward(ctx context.Context, c *cli, args []string, ready func(addr string)) int {
	f := newCmdFlags(c, "forward", "UUID [--port PORT] [--listen ADDR] [-c FILE] [--socket PATH]",
		"Listens on a local TCP port and tunnels each connection to the device's AMT port over its CIRA link,\n"+
			"through the running daemon. amtd passes the bytes unchanged: point a WS-Man or redirection tool at the\n"+
			"local port (TLS ports 16993 and 16995 keep the device's own TLS end to end). Ctrl-C stops.\n"+
			"Exit status: 0 stopped, 1 failure, 2 usage.")
	fs := f.fs
	port := fs.Uint("port", 16993, "the device's `port`: 16992/16993 WS-Man (HTTP/HTTPS), 16994/16995 redirection, 664, 5900")
	listen := fs.String("listen", "127.0.0.1:0", "local `address` to listen on (port 0 picks a free one, printed)")
	cfgPath := fs.String("config", defaultConfigPath, "configuration `file` (to find [Control] Socket=)")
	fs.StringVar(cfgPath, "c", defaultConfigPath, "configuration `file` (short for --config)")
	socket := fs.String("socket", "", "control socket `path` (default: [Control] Socket= of the configuration, else "+daemon.DefaultControlSocket+")")
	pos, code := f.parse(c, args, 1)
	if code >= 0 {
		return code
	}
	uuid, err := store.NormalizeUUID(pos[0])
	if err != nil {
		fmt.Fprintf(c.stderr, "amtd forward: %v\n", err)
		return exitUsage
	}
	if *port == 0 || *port > 65535 {
		fmt.Fprintf(c.stderr, "amtd forward: --port %d: want 1-65535 (AMT listens on 16992-16995)\n", *port)
		return exitUsage
	}
	fw := &forwarder{c: c, path: controlSocketPath(c, fs, "forward", *cfgPath, *socket),
		args: cira.ForwardArgs{UUID: uuid, Port: uint16(*port)}}

	// One check before listening, so an unknown or absent device is one
	// sentence now rather than a refused connection later.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	res, err := fw.check(cctx)
	cancel()
	if err != nil {
		switch {
		case errors.Is(err, control.ErrUnreachable):
			fmt.Fprintf(c.stderr, "amtd forward: no daemon answers on %s: %v\n"+
				"Start it with 'systemctl start amtd', or point at its socket with --socket PATH.\n", fw.path, errors.Unwrap(err))
		case strings.Contains(err.Error(), `unknown command "`+cira.ForwardCommand+`"`):
			fmt.Fprintf(c.stderr, "amtd forward: the daemon on %s does not run the CIRA relay; turn it on with [CIRA] Enable=yes in amtd.conf and reload\n", fw.path)
		default:
			fmt.Fprintf(c.stderr, "amtd forward: %s\n", trimAmtd(err))
		}
		return exitFailure
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(c.stderr, "amtd forward: listen on %s: %v (pick another --listen address)\n", *listen, err)
		return exitFailure
	}
	fmt.Fprintf(c.stdout, "forwarding %s to device %s port %d over CIRA (link from %s); Ctrl-C stops\n",
		ln.Addr(), uuid, *port, orDash(res.RemoteAddr))
	if ready != nil {
		ready(ln.Addr().String())
	}
	fw.serve(ctx, ln)
	fmt.Fprintln(c.stdout, "stopped")
	return exitOK
}

// controlSocketPath is --socket, else [Control] Socket= of the
// configuration (read from the text when the file does not load), else the
// default. A file that fails to load is said only when fs had -c or
// --config.
func controlSocketPath(c *cli, fs *flag.FlagSet, name, cfgPath, socket string) string {
	if socket != "" {
		return socket
	}
	configGiven := false
	fs.Visit(func(f *flag.Flag) { configGiven = configGiven || f.Name == "c" || f.Name == "config" })
	cfg, err := config.Load(cfgPath)
	switch {
	case err == nil && cfg.Control.Socket != "":
		return cfg.Control.Socket
	case err != nil:
		if p, ok := controlSocketFromText(cfgPath); ok {
			return p
		}
		if configGiven && !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(c.stderr, "amtd %s: %s: cannot read [Control] Socket= (%v); trying %s\n", name, cfgPath, firstLine(err.Error()), daemon.DefaultControlSocket)
		}
	}
	return daemon.DefaultControlSocket
}

// trimAmtd drops the "amtd: " the control client puts before the daemon's
// message, which the CLI's own prefix already says.
func trimAmtd(err error) string { return strings.TrimPrefix(err.Error(), "amtd: ") }

// forwarder carries local connections to the device, one control
// connection each.
type forwarder struct {
	c    *cli
	path string
	args cira.ForwardArgs

	outMu sync.Mutex // one line at a time on stdout
}

func (fw *forwarder) printf(format string, a ...any) {
	fw.outMu.Lock()
	defer fw.outMu.Unlock()
	fmt.Fprintf(fw.c.stdout, format, a...)
}

func (fw *forwarder) check(ctx context.Context) (cira.ForwardResult, error) {
	var res cira.ForwardResult
	cl, err := control.Dial(ctx, fw.path)
	if err != nil {
		return res, err
	}
	defer cl.Close()
	a := fw.args
	a.Check = true
	err = cl.Call(ctx, cira.ForwardCommand, a, &res)
	return res, err
}

// open asks the daemon for a channel and returns the control connection as
// a pipe to it.
func (fw *forwarder) open(ctx context.Context) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, forwardOpenTimeout)
	defer cancel()
	cl, err := control.Dial(ctx, fw.path)
	if err != nil {
		return nil, err
	}
	conn, err := cl.Stream(ctx, cira.ForwardCommand, fw.args, nil)
	if err != nil {
		cl.Close()
		return nil, err
	}
	return conn, nil
}

// serve accepts until ctx ends, then closes every connection and returns
// once they are done.
func (fw *forwarder) serve(ctx context.Context, ln net.Listener) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	stopped := context.AfterFunc(ctx, func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	defer stopped()
	sem := make(chan struct{}, maxForwarded)
	for {
		tc, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				fw.printf("accept: %v\n", err)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			break
		}
		select {
		case sem <- struct{}{}:
		default:
			fw.printf("connection from %s refused: %d are open already\n", tc.RemoteAddr(), maxForwarded)
			tc.Close()
			continue
		}
		mu.Lock()
		if ctx.Err() != nil {
			mu.Unlock()
			tc.Close()
			<-sem
			break
		}
		conns[tc] = struct{}{}
		mu.Unlock()
		wg.Go(func() {
			defer func() {
				mu.Lock()
				delete(conns, tc)
				mu.Unlock()
				tc.Close()
				<-sem
			}()
			fw.carry(ctx, tc, &mu, conns)
		})
	}
	wg.Wait()
}

// carry tunnels one local connection.
func (fw *forwarder) carry(ctx context.Context, tc net.Conn, mu *sync.Mutex, conns map[net.Conn]struct{}) {
	from := tc.RemoteAddr().String()
	fw.printf("connection from %s\n", from)
	dc, err := fw.open(ctx)
	if err != nil {
		if ctx.Err() == nil {
			fw.printf("connection from %s closed: %s\n", from, trimAmtd(err))
		}
		return
	}
	mu.Lock()
	if ctx.Err() != nil {
		mu.Unlock()
		dc.Close()
		return
	}
	conns[dc] = struct{}{}
	mu.Unlock()
	defer func() {
		mu.Lock()
		delete(conns, dc)
		mu.Unlock()
		dc.Close()
	}()
	up, down := splice(tc, dc)
	fw.printf("connection from %s closed: %d bytes to the device, %d back\n", from, up, down)
}

// splice copies between the local connection and the daemon's pipe. The
// local end-of-file is passed on as a half-close (the daemon then passes on
// what the device still sends); when the daemon's side ends, so does the
// local connection.
func splice(local, remote net.Conn) (up, down int64) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		down, _ = io.Copy(local, remote)
		closeWrite(local)
		// Nothing the local side still sends can reach the device.
		remote.Close()
		local.SetReadDeadline(time.Now())
	}()
	up, err := io.Copy(remote, local)
	if err == nil {
		closeWrite(remote)
	} else {
		remote.Close()
	}
	<-done
	return up, down
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}
