package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Handler answers one command. Its result is encoded as the response's
// "result"; an error becomes the response's "error", shown to the user as is.
// A *Stream result turns the connection into a byte pipe (see Stream).
type Handler func(ctx context.Context, args json.RawMessage) (any, error)

// Limits that keep a misbehaving local client from holding the daemon.
const (
	maxConns       = 16
	requestTimeout = 30 * time.Second // a connection idle this long is closed
)

// Mux is the registry of command handlers. The daemon registers "status";
// services add their own commands as they start. One Mux may back several
// Servers (a reload that moves the socket serves the old and new one briefly).
type Mux struct {
	mu       sync.Mutex
	handlers map[string]Handler
}

// NewMux returns an empty registry.
func NewMux() *Mux { return &Mux{handlers: map[string]Handler{}} }

// Handle registers h for cmd, replacing an earlier one. cmd must be a short
// lower-case name.
func (m *Mux) Handle(cmd string, h Handler) {
	if err := checkCmd(cmd); err != nil {
		panic("control: " + err.Error())
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.handlers[cmd] = h
}

// Remove unregisters cmd (a service that stopped).
func (m *Mux) Remove(cmd string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.handlers, cmd)
}

func (m *Mux) lookup(cmd string) (Handler, []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h, ok := m.handlers[cmd]; ok {
		return h, nil
	}
	known := make([]string, 0, len(m.handlers))
	for k := range m.handlers {
		known = append(known, k)
	}
	slices.Sort(known)
	return nil, known
}

// Server serves the control socket on one listener.
type Server struct {
	log *slog.Logger
	mux *Mux

	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
	closed bool

	gid     atomic.Int64 // -1: no group admitted
	uid     int          // the daemon's own uid, always admitted
	sem     chan struct{}
	streams chan struct{} // one token per open Stream, maxStreams
	wg      sync.WaitGroup
	done    chan struct{}
}

// NewServer returns a server answering with mux's handlers.
func NewServer(log *slog.Logger, mux *Mux) *Server {
	s := &Server{
		log:     log,
		mux:     mux,
		conns:   map[net.Conn]struct{}{},
		uid:     os.Geteuid(),
		sem:     make(chan struct{}, maxConns),
		streams: make(chan struct{}, maxStreams),
		done:    make(chan struct{}),
	}
	s.gid.Store(-1)
	return s
}

// AllowGroup admits members of group gid besides root and the daemon's user;
// -1 admits no group.
func (s *Server) AllowGroup(gid int) { s.gid.Store(int64(gid)) }

// LookupGroup resolves [Control] Group= (a name or a number) to a gid.
func LookupGroup(name string) (int, error) {
	if name == "" {
		return -1, nil
	}
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return -1, fmt.Errorf("control socket group %q: %w (create it, e.g. with a sysusers.d entry, or change [Control] Group=)", name, err)
	}
	return strconv.Atoi(g.Gid)
}

// Listen binds a unix stream socket at path with mode 0660, owned by group
// gid when gid >= 0. A stale socket file left by a crashed daemon is replaced;
// a socket another process still answers on is not.
func Listen(path string, gid int) (*net.UnixListener, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s: another daemon is answering on it; stop it (systemctl stop amtd) or set another [Control] Socket=", path)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("control socket %s: a file that is not a socket is in the way; remove it or set another [Control] Socket=", path)
		}
		os.Remove(path)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w (does its directory exist and belong to the daemon's user? amtd.service creates /run/amtd with RuntimeDirectory=)", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: chmod 0660: %w", path, err)
	}
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("control socket %s: chown to group %d: %w (the daemon's user must be a member of [Control] Group=)", path, gid, err)
		}
	}
	return ln, nil
}

// Serve accepts connections on ln until Close. It returns nil after Close.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.ln = ln
	s.mu.Unlock()
	for {
		select {
		case s.sem <- struct{}{}:
		case <-s.done:
			return nil
		}
		c, err := ln.Accept()
		if err != nil {
			<-s.sem
			select {
			case <-s.done:
				return nil
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("control: accept: %w", err)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			<-s.sem
			return nil
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			// A connection that becomes a stream gives its slot back early.
			release := sync.OnceFunc(func() { <-s.sem })
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
				release()
				s.wg.Done()
			}()
			s.serveConn(c, release)
		}()
	}
}

// Close stops accepting and waits for requests in progress until ctx ends,
// then closes the remaining connections.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	var err error
	if s.ln != nil {
		err = s.ln.Close()
	}
	// Idle connections wait in a read: wake them so they see the close.
	for c := range s.conns {
		c.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	finished := make(chan struct{})
	go func() { s.wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		<-finished
	}
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Peer is who is on the other end of a connection, from SO_PEERCRED.
type Peer struct {
	PID, UID, GID int
}

type peerKey struct{}

func withPeer(ctx context.Context, p Peer) context.Context {
	return context.WithValue(ctx, peerKey{}, p)
}

// PeerFrom is the peer whose request a handler answers, for its audit
// trail; ok is false outside a control request.
func PeerFrom(ctx context.Context) (p Peer, ok bool) {
	p, ok = ctx.Value(peerKey{}).(Peer)
	return p, ok
}

// PeerCred reads the credentials of a unix socket's peer.
func PeerCred(c net.Conn) (Peer, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Peer{}, fmt.Errorf("peer credentials: %T is not a unix socket", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Peer{}, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Peer{}, err
	}
	if cerr != nil {
		return Peer{}, fmt.Errorf("peer credentials: getsockopt SO_PEERCRED: %w", cerr)
	}
	return Peer{PID: int(cred.Pid), UID: int(cred.Uid), GID: int(cred.Gid)}, nil
}

// admitted reports whether p may use the socket: root, the daemon's own
// user, or a member (primary or supplementary) of the configured group.
func (s *Server) admitted(p Peer) bool {
	if p.UID == 0 || p.UID == s.uid {
		return true
	}
	gid := int(s.gid.Load())
	if gid < 0 {
		return false
	}
	if p.GID == gid {
		return true
	}
	return slices.Contains(supplementaryGroups(p), gid)
}

// supplementaryGroups are the peer process's groups from /proc/PID/status,
// falling back to the group database for its uid.
func supplementaryGroups(p Peer) []int {
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "Groups:"); ok {
				var gids []int
				for _, f := range strings.Fields(rest) {
					if n, err := strconv.Atoi(f); err == nil {
						gids = append(gids, n)
					}
				}
				return gids
			}
		}
	}
	u, err := user.LookupId(strconv.Itoa(p.UID))
	if err != nil {
		return nil
	}
	ids, err := u.GroupIds()
	if err != nil {
		return nil
	}
	var gids []int
	for _, id := range ids {
		if n, err := strconv.Atoi(id); err == nil {
			gids = append(gids, n)
		}
	}
	return gids
}

func (s *Server) serveConn(c net.Conn, release func()) {
	peer, err := PeerCred(c)
	if err != nil {
		s.log.Warn("control: refusing a connection whose peer is unknown", "err", err)
		return
	}
	if !s.admitted(peer) {
		s.log.Warn("control: refused connection", "uid", peer.UID, "gid", peer.GID, "pid", peer.PID,
			"why", "not root, the daemon's user, or a member of [Control] Group=")
		// Read the request before answering: closing a unix socket with
		// unread data resets the peer, which would lose the explanation.
		c.SetDeadline(time.Now().Add(2 * time.Second))
		readLine(bufio.NewReaderSize(c, 4096))
		writeResponse(c, Response{Error: fmt.Sprintf(
			"permission denied: uid %d may not use the amtd control socket; run as root, or as a member of the group set in [Control] Group=", peer.UID)})
		return
	}
	log := s.log.With("uid", peer.UID, "pid", peer.PID)
	r := bufio.NewReaderSize(c, 4096)
	for {
		c.SetReadDeadline(time.Now().Add(requestTimeout))
		// Checked after setting the deadline: a Close from now on moves the
		// deadline to the past, so this read cannot outlive it.
		select {
		case <-s.done:
			return
		default:
		}
		line, err := readLine(r)
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				writeResponse(c, Response{Error: err.Error()})
			}
			return
		}
		select {
		case <-s.done:
			return
		default:
		}
		resp, st := s.answer(log, peer, line)
		if st != nil {
			s.stream(log, c, r, st, release)
			return
		}
		c.SetWriteDeadline(time.Now().Add(requestTimeout))
		if err := writeResponse(c, resp); err != nil {
			return
		}
	}
}

// stream answers a request whose handler returned a Stream, then pipes
// bytes until either end is done. The connection is used up.
func (s *Server) stream(log *slog.Logger, c net.Conn, r *bufio.Reader, st *Stream, release func()) {
	defer st.Conn.Close()
	c.SetWriteDeadline(time.Now().Add(requestTimeout))
	select {
	case s.streams <- struct{}{}:
	default:
		writeResponse(c, Response{Error: errTooManyStreams.Error()})
		return
	}
	defer func() { <-s.streams }()
	resp := Response{OK: true}
	if st.Result != nil {
		b, err := json.Marshal(st.Result)
		if err != nil {
			writeResponse(c, Response{Error: fmt.Sprintf("encoding the result: %v", err)})
			return
		}
		resp.Result = b
	}
	if err := writeResponse(c, resp); err != nil {
		return
	}
	release()
	log = log.With("to", st.Conn.RemoteAddr().String())
	log.Info("control: stream opened")
	up, down := s.pipe(c, r, st.Conn)
	log.Info("control: stream closed", "bytes_in", up, "bytes_out", down)
}

var errLineTooLong = fmt.Errorf("request line longer than %d bytes", MaxLine)

// readLine reads one newline-terminated line of at most MaxLine bytes.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if err == nil {
			if len(line)+len(chunk)-1 > MaxLine {
				return nil, errLineTooLong
			}
			line = append(line, chunk...)
			return line[:len(line)-1], nil
		}
		if len(line)+len(chunk) > MaxLine {
			return nil, errLineTooLong
		}
		line = append(line, chunk...)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
	}
}

// answer runs the handler of one request line; a Stream result is returned
// as is, for serveConn to hand the connection over.
func (s *Server) answer(log *slog.Logger, peer Peer, line []byte) (Response, *Stream) {
	req, err := DecodeRequest(line)
	if err != nil {
		return Response{Error: err.Error()}, nil
	}
	h, known := s.mux.lookup(req.Cmd)
	if h == nil {
		return Response{Error: fmt.Sprintf("unknown command %q: known commands: %s", req.Cmd, strings.Join(known, ", "))}, nil
	}
	ctx, cancel := context.WithTimeout(withPeer(context.Background(), peer), requestTimeout)
	defer cancel()
	log.Debug("control: request", "cmd", req.Cmd)
	res, err := h(ctx, req.Args)
	if err != nil {
		return Response{Error: err.Error()}, nil
	}
	if st, ok := res.(*Stream); ok && st != nil && st.Conn != nil {
		return Response{}, st
	}
	b, err := json.Marshal(res)
	if err != nil {
		return Response{Error: fmt.Sprintf("%s: encoding the result: %v", req.Cmd, err)}, nil
	}
	return Response{OK: true, Result: b}, nil
}

func writeResponse(c net.Conn, resp Response) error {
	b, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	_, err = c.Write(append(b, '\n'))
	return err
}
