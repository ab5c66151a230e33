package cira

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"amtd/amt/guid"
	"amtd/daemon/control"
	"amtd/store"
)

// ForwardCommand is the control command `amtd forward` sends for each TCP
// connection it accepts: the daemon opens a channel to the device's port
// over its CIRA link and the control connection becomes a byte pipe to it
// (control.Stream), so tools that speak to AMT directly (WS-Man on
// 16992/16993, redirection on 16994/16995) reach a device behind NAT.
// amtd does nothing to the bytes.
const ForwardCommand = "forward"

// ForwardArgs is the forward command's request.
type ForwardArgs struct {
	UUID string `json:"uuid"`
	Port uint16 `json:"port"`
	// Check asks whether a forward would be accepted, without opening a
	// channel: `amtd forward` checks once before it listens.
	Check bool `json:"check,omitempty"`
}

// ForwardResult answers a forward command.
type ForwardResult struct {
	UUID       string   `json:"uuid"`
	Port       uint16   `json:"port"`
	RemoteAddr string   `json:"remote_addr"` // where the device's link comes from
	BoundPorts []uint16 `json:"bound_ports"` // ports the device forwards on its link
}

// Commands implements daemon.Commander: "forward".
func (s *Service) Commands() map[string]control.Handler {
	return map[string]control.Handler{ForwardCommand: s.forward}
}

func (s *Service) forward(ctx context.Context, raw json.RawMessage) (any, error) {
	var a ForwardArgs
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return nil, fmt.Errorf("forward: the request is not {\"uuid\":...,\"port\":...}: %v", err)
	}
	u, err := guid.Parse(a.UUID)
	if err != nil {
		return nil, fmt.Errorf("forward: %v", err)
	}
	uuid := u.String()
	if a.Port == 0 {
		return nil, errors.New("forward: no port given (AMT listens on 16992/16993 for WS-Man and 16994/16995 for redirection)")
	}
	s.mu.Lock()
	dir := s.dir
	s.mu.Unlock()
	if dir == nil {
		return nil, errors.New("forward: the CIRA service is not running")
	}
	known, err := dir.Known(ctx, uuid)
	if err != nil {
		return nil, fmt.Errorf("forward: looking up device %s: %w", uuid, err)
	}
	if !known {
		return nil, fmt.Errorf("device %s is not known to amtd (amtd devices list shows the devices it knows)", uuid)
	}
	sess := s.reg.get(uuid)
	if sess == nil {
		return nil, fmt.Errorf("device %s is not connected over CIRA to this amtd; it connects by itself when its CIRA policy fires (amtd devices show %s says when it was last seen)", uuid, uuid)
	}
	sess.mu.Lock()
	ports := slices.Clone(sess.ports)
	sess.mu.Unlock()
	slices.Sort(ports)
	res := ForwardResult{UUID: uuid, Port: a.Port, RemoteAddr: sess.remote, BoundPorts: ports}
	if !slices.Contains(ports, a.Port) {
		return nil, fmt.Errorf("device %s does not forward port %d on its CIRA link (it forwards %s)", uuid, a.Port, portList(ports))
	}
	if a.Check {
		return res, nil
	}
	conn, err := s.Dial(ctx, uuid, a.Port)
	s.auditForward(ctx, uuid, a.Port, err)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return nil, fmt.Errorf("device %s: no channel to port %d came free in time: %d are open to it already (the most AMT allows); close one and retry", uuid, a.Port, maxOpenChannels)
	case errors.Is(err, ErrNotConnected):
		return nil, fmt.Errorf("device %s went off CIRA just now; it reconnects by itself", uuid)
	case err != nil:
		return nil, fmt.Errorf("device %s port %d: %w", uuid, a.Port, err)
	}
	s.log.Info("cira: forwarding a connection", "uuid", uuid, "port", a.Port)
	return &control.Stream{Conn: conn, Result: res}, nil
}

// auditForward records a forwarded connection (or its failure) in the
// audit trail with the local user who asked: a tunnel to a device's AMT is
// an administrator's act, as an API call is.
func (s *Service) auditForward(ctx context.Context, uuid string, port uint16, err error) {
	if s.deps.Store == nil {
		return
	}
	actor := "control"
	if p, ok := control.PeerFrom(ctx); ok {
		actor = fmt.Sprintf("control:uid:%d", p.UID)
	}
	e := store.AuditEntry{Actor: actor, Action: "cira.forward", Object: fmt.Sprintf("device/%s/port/%d", uuid, port),
		Reason: "amtd forward"}
	if err != nil {
		e.Result = err.Error()
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.deps.Store.Audit(actx, e); err != nil {
		s.log.Error("cira: audit row not written", "action", e.Action, "err", err)
	}
}

func portList(ps []uint16) string {
	if len(ps) == 0 {
		return "none yet"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = fmt.Sprint(p)
	}
	return strings.Join(s, ", ")
}
