package amtsim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"amtd/amt/digest"
	"amtd/amt/httpwire"
	"amtd/amt/wsman"
	"amtd/secret"
)

// idleTimeout closes a WS-Man connection nobody uses; AMT's own value is
// unknown, so this is a guess.
const idleTimeout = 2 * time.Minute

// ServeWSMan answers HTTP/1.1 WS-Man requests on conn until the peer closes
// it or asks for Connection: close (spec/wsman.md §1). The same handler
// serves the 16992/16993 listeners and CIRA channels.
func (d *Device) ServeWSMan(conn net.Conn, sess Session) {
	tc := d.track(conn)
	defer d.untrack(tc)
	br := bufio.NewReaderSize(conn, 2048)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(idleTimeout))
		req, err := httpwire.ReadRequest(br, httpwire.Limits{MaxHeaderBytes: 16 << 10, MaxBodyBytes: wsman.MaxEnvelopeBytes})
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.ErrUnexpectedEOF) {
				d.log.Debug("wsman: bad request", "err", err)
				resp := &httpwire.Response{StatusCode: http.StatusBadRequest, Header: http.Header{"Connection": {"close"}}, Body: []byte("bad request\n")}
				_ = resp.Write(conn, false)
			}
			return
		}
		_ = conn.SetReadDeadline(time.Time{})
		resp, drop := d.HandleHTTP(req, sess)
		if drop {
			return // fault injection: the connection is lost mid-call
		}
		closeAfter := strings.EqualFold(req.Header.Get("Connection"), "close")
		if closeAfter {
			resp.Header.Set("Connection", "close")
		}
		_ = conn.SetWriteDeadline(time.Now().Add(time.Minute))
		if err := resp.Write(conn, true); err != nil || closeAfter {
			return
		}
	}
}

// HandleHTTP answers one request: digest auth with the device realm, then
// WS-Man. drop means fault injection wants the connection cut without an
// answer.
func (d *Device) HandleHTTP(req *httpwire.Request, sess Session) (resp *httpwire.Response, drop bool) {
	h := http.Header{"Server": {d.Version.serverHeader()}, "Content-Type": {"application/soap+xml;charset=UTF-8"}}
	if req.Method != "POST" || req.Target != digest.WSManURI {
		return &httpwire.Response{StatusCode: http.StatusNotFound, Header: h, Body: []byte("not found\n")}, false
	}
	if resp := d.authenticate(req, h, &sess); resp != nil {
		return resp, false
	}
	release, drop := d.faults.begin(d)
	defer release()
	if drop {
		return nil, true
	}
	status, body := d.Dispatch(req.Body, sess)
	return &httpwire.Response{StatusCode: status, Header: h, Body: body}, false
}

// authenticate returns a 401 response, or nil when the request carries
// valid credentials (spec/wsman.md §2).
func (d *Device) authenticate(req *httpwire.Request, h http.Header, sess *Session) *httpwire.Response {
	d.mu.Lock()
	srv := d.digestServerLocked()
	d.mu.Unlock()
	now := d.now()
	unauthorized := func(stale bool) *httpwire.Response {
		hh := h.Clone()
		hh.Set("WWW-Authenticate", srv.Challenge(now, stale))
		hh.Set("Content-Type", "text/html")
		return &httpwire.Response{StatusCode: http.StatusUnauthorized, Header: hh,
			Body: []byte("<html><head><title>401 Unauthorized</title></head><body>Unauthorized</body></html>")}
	}
	auth := req.Header.Get("Authorization")
	if auth == "" {
		return unauthorized(false)
	}
	user, err := srv.Verify(now, req.Method, auth, d.credentials(*sess))
	switch {
	case errors.Is(err, digest.ErrStale):
		return unauthorized(true)
	case err != nil:
		d.log.Debug("wsman: digest refused", "err", err)
		return unauthorized(false)
	}
	sess.User = user
	return nil
}

// credentials returns the HA1 the device accepts for a user in this
// session: the admin ACL entry once provisioned; in the mutual-TLS setup
// session, user admin with an empty password (spec/activation.md §3 step 4,
// as MeshCentral uses it), and the new admin entry once set.
func (d *Device) credentials(sess Session) digest.Credentials {
	return func(user string) (secret.Value, bool) {
		d.mu.Lock()
		defer d.mu.Unlock()
		if sess.Setup && d.s.ControlMode == ModePreProvisioning && user == "admin" {
			return digest.HA1Hex("admin", d.s.Realm, secret.Value{}), true
		}
		if sess.Local && user == LocalSystemUser && d.s.LSAPassword != "" {
			return digest.HA1Hex(LocalSystemUser, d.s.Realm, secret.FromString(d.s.LSAPassword)), true
		}
		if d.s.ControlMode != ModePreProvisioning && d.s.AdminHA1 != "" && user == d.s.AdminUser {
			return secret.FromString(d.s.AdminHA1), true
		}
		return secret.Value{}, false
	}
}

func (d *Device) nextMsgID() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.msgID++
	return d.msgID
}

// faultDestinationUnreachable is AMT's answer for a class it does not have
// (spec/wsman.md §5).
func faultDestinationUnreachable(class string) *wsman.Fault {
	return &wsman.Fault{Code: "a:Sender", Subcode: "b:DestinationUnreachable",
		Reason: "No route can be determined to reach the destination role defined by the WS-Addressing To.", Class: class}
}

// Dispatch answers one WS-Man envelope: HTTP status and response body.
func (d *Device) Dispatch(body []byte, sess Session) (int, []byte) {
	msg, err := wsman.ParseRequest(body)
	if err != nil {
		r := wsman.Reply{Action: wsman.ActionFault, MessageID: d.nextMsgID()}
		return http.StatusBadRequest, wsman.WriteFault(r, &wsman.Fault{Code: "a:Sender", Subcode: "c:InvalidMessageInformationHeader",
			Reason: "The message could not be parsed: " + err.Error()})
	}
	reply := wsman.ReplyTo(msg, d.nextMsgID())
	fail := func(f *wsman.Fault) (int, []byte) {
		return http.StatusBadRequest, wsman.WriteFault(reply, f)
	}
	class := msg.Class()
	action := msg.Header.Action

	if action == wsman.ActionPull {
		return d.pull(msg, reply)
	}
	ins, known := d.instancesOf(class)
	if !known {
		return fail(faultDestinationUnreachable(class))
	}
	h := classHandlers()[class]
	if h == nil {
		h = &classHandler{}
	}
	switch action {
	case wsman.ActionGet:
		i := matchSelectors(ins, msg.Header.Selectors)
		if i < 0 {
			return fail(faultInvalidSelectors(class))
		}
		return http.StatusOK, wsman.WriteGetResponse(reply, ins[i])
	case wsman.ActionEnumerate:
		return http.StatusOK, wsman.WriteEnumerateResponse(reply, d.enumStart(class, ins))
	case wsman.ActionPut:
		if len(msg.Instances) == 0 {
			return fail(faultInvalidRepresentation(class, "Put has no instance in its body."))
		}
		put := h.put
		if put == nil && h.instances == nil {
			put = genericPut(class)
		}
		if put == nil {
			return fail(faultActionNotSupported(class, "Put"))
		}
		if f := put(d, &msg.Instances[0], msg.Header.Selectors); f != nil {
			return fail(f)
		}
		after, _ := d.instancesOf(class)
		i := matchSelectors(after, msg.Header.Selectors)
		if i < 0 {
			return http.StatusOK, wsman.WriteEmptyResponse(reply)
		}
		return http.StatusOK, wsman.WriteGetResponse(reply, after[i])
	case wsman.ActionCreate:
		if h.create == nil || len(msg.Instances) == 0 {
			return fail(faultActionNotSupported(class, "Create"))
		}
		e, f := h.create(d, &msg.Instances[0])
		if f != nil {
			return fail(f)
		}
		return http.StatusOK, wsman.WriteCreatedResponse(reply, *e)
	case wsman.ActionDelete:
		if h.delete == nil {
			return fail(faultActionNotSupported(class, "Delete"))
		}
		if f := h.delete(d, msg.Header.Selectors); f != nil {
			return fail(f)
		}
		return http.StatusOK, wsman.WriteEmptyResponse(reply)
	}
	name, ok := strings.CutPrefix(action, msg.Header.ResourceURI+"/")
	m := h.methods[name]
	if !ok || m == nil {
		return fail(faultActionNotSupported(class, action))
	}
	in := msg.Method
	if in == nil {
		in = &wsman.Instance{}
	}
	if code, hit := d.faults.methodError(class, name); hit {
		return http.StatusOK, wsman.WriteMethodResponse(reply, wsman.Instance{Class: name + "_OUTPUT", Namespace: msg.Header.ResourceURI,
			Props: []wsman.Property{rv(class, code)}})
	}
	out := m(d, in, sess)
	return http.StatusOK, wsman.WriteMethodResponse(reply, wsman.Instance{Class: name + "_OUTPUT", Namespace: msg.Header.ResourceURI, Props: out})
}

// enumeration contexts: AMT keeps a few open per client and forgets them
// when they run out (mps#664 shows they leak until expiry).
const maxEnumContexts = 16

type enumState struct {
	class string
	items []Instance
}

// Instance aliases wsman.Instance for brevity inside the package.
type Instance = wsman.Instance

type enumTable struct {
	next  uint32
	order []string
	open  map[string]*enumState
}

func (d *Device) enumStart(class string, items []wsman.Instance) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := &d.enums
	if t.open == nil {
		t.open = map[string]*enumState{}
	}
	if len(t.order) >= maxEnumContexts {
		delete(t.open, t.order[0])
		t.order = t.order[1:]
	}
	t.next++
	// AMT's contexts look like "14000000-0000-0000-0000-000000000000".
	ctx := fmt.Sprintf("%08X-0000-0000-0000-000000000000", t.next)
	t.open[ctx] = &enumState{class: class, items: items}
	t.order = append(t.order, ctx)
	return ctx
}

func (d *Device) pull(msg *wsman.Message, reply wsman.Reply) (int, []byte) {
	max := atoi(msg.MaxElements)
	if max <= 0 {
		max = 1 // WS-Enumeration's default when MaxElements is absent
	}
	if lim := d.faults.pullLimit(); lim > 0 && max > lim {
		max = lim
	}
	d.mu.Lock()
	st := d.enums.open[msg.EnumerationContext]
	var page []wsman.Instance
	end := true
	if st != nil {
		n := min(max, len(st.items))
		page, st.items = st.items[:n], st.items[n:]
		end = len(st.items) == 0
		if end {
			delete(d.enums.open, msg.EnumerationContext)
			for i, c := range d.enums.order {
				if c == msg.EnumerationContext {
					d.enums.order = append(d.enums.order[:i], d.enums.order[i+1:]...)
					break
				}
			}
		}
	}
	d.mu.Unlock()
	if st == nil {
		return http.StatusBadRequest, wsman.WriteFault(reply, &wsman.Fault{Code: "a:Receiver", Subcode: "g:InvalidEnumerationContext",
			Reason: "The supplied enumeration context is invalid."})
	}
	if reply.ResourceURI == "" {
		reply.ResourceURI, _ = wsman.ResourceURI(st.class)
	}
	return http.StatusOK, wsman.WritePullResponse(reply, page, msg.EnumerationContext, end)
}
