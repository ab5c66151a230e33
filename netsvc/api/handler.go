package api

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"

	"amtd/secret"
	"amtd/store"
)

// route is one endpoint: what it is called in metrics and the audit trail,
// the least role that may call it, and the handler. A handler returns the
// audit object ("devices", "device/<uuid>") and the HTTP status it sent.
type route struct {
	method, pattern string
	name            string // "devices.list": the audit action is "api.devices.list"
	role            string // store.RoleViewer, ...
	h               func(w http.ResponseWriter, r *http.Request) (object string, status int)
}

func (s *Service) routes() []route {
	rts := []route{
		// Open AMT MPS (spec/redirection.md §7.1, §7.3).
		{"GET", "/api/v1/devices", "devices.list", store.RoleViewer, s.listDevices},
		{"GET", "/api/v1/devices/stats", "devices.stats", store.RoleViewer, s.deviceStats},
		{"GET", "/api/v1/devices/tags", "devices.tags", store.RoleViewer, s.deviceTags},
		{"GET", "/api/v1/devices/{guid}", "devices.get", store.RoleViewer, s.getDevice},
		// The redirection relay (spec/redirection.md §6; relay.go).
		{"GET", "/api/v1/authorize/redirection/{guid}", "authorize.redirection", store.RoleOperator, s.authorizeRedirection},
		{"GET", "/api/v1/devices/redirectstatus/{guid}", "devices.redirectstatus", store.RoleViewer, s.redirectStatus},
		{"GET", "/api/v1/devices/redirectStatus/{guid}", "devices.redirectstatus", store.RoleViewer, s.redirectStatus},
		{"GET", "/api/v1/version", "version", store.RoleViewer, s.version},
		{"GET", "/api/v1/health", "health", store.RoleViewer, s.health},
		{"GET", "/api/v1/ciracert", "ciracert", store.RoleViewer, s.ciraCert},
		// Device operations over CIRA (spec/redirection.md §7.2).
		{"GET", "/api/v1/amt/power/state/{guid}", "amt.power.state", store.RoleViewer, s.powerState},
		{"POST", "/api/v1/amt/power/action/{guid}", "amt.power.action", store.RoleOperator, s.powerAction},
		{"GET", "/api/v1/amt/version/{guid}", "amt.version", store.RoleViewer, s.amtVersion},
		// amtd's own: its audit trail, which names every key's calls.
		{"GET", "/api/v1/audit", "audit.list", store.RoleAdmin, s.listAudit},
	}
	// More device operations over CIRA (spec/redirection.md §7.2), one
	// file each: settings and power (amt_settings.go), logs, consent and
	// alarms (amt_logs.go); editing device records and display settings
	// (devices_edit.go).
	rts = append(rts, s.settingsRoutes()...)
	rts = append(rts, s.deviceEditRoutes()...)
	return append(rts, s.logRoutes()...)
}

// roleRank orders the roles; a key may call a route needing its rank or less.
var roleRank = map[string]int{store.RoleViewer: 1, store.RoleOperator: 2, store.RoleAdmin: 3}

// apiError is the JSON body of every error, shaped as MPS's
// ({"error": "Not Found", "message": "..."}).
type apiError struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"Internal Server Error","message":"encoding the response failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	return status
}

func writeError(w http.ResponseWriter, status int, msg string) int {
	return writeJSON(w, status, apiError{Error: http.StatusText(status), Message: msg})
}

// keyCtx carries the authenticated key to handlers.
type keyCtx struct{}

// Handler is the API: authentication, then routing, then the audit row.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	// Patterns without a method, so a wrong method gets a JSON 405 here
	// rather than net/http's text one.
	byPattern := map[string][]route{}
	var order []string
	for _, rt := range s.routes() {
		if _, ok := byPattern[rt.pattern]; !ok {
			order = append(order, rt.pattern)
		}
		byPattern[rt.pattern] = append(byPattern[rt.pattern], rt)
	}
	for _, p := range order {
		rts := byPattern[p]
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) { s.serveRoute(w, r, rts) })
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		k, _ := r.Context().Value(keyCtx{}).(store.APIKey)
		st := writeError(w, http.StatusNotFound, "no such endpoint: "+truncate(r.URL.Path, 200)+" (amtd serves "+strings.Join(order, ", ")+")")
		s.finish(r, k, "unknown", "", st)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/authorize" {
			s.authorize(w, r)
			return
		}
		// The relay authenticates with its own token, in the WebSocket
		// subprotocol, and lives as long as the session.
		if r.URL.Path == relayPath {
			s.serveRelay(w, r)
			return
		}
		// Any other upgrade is refused (spec/redirection.md §6).
		if isUpgrade(r) {
			s.relayRefusal(w, r, "api:anonymous", "api", http.StatusUnauthorized,
				"WebSocket upgrades are served only at "+relayPath)
			return
		}
		k, reason := s.authenticate(r)
		if reason != "" {
			s.refuse(w, r, reason)
			return
		}
		// Bodies are small JSON ({"action": N}); whatever a client sends is bounded.
		if r.ContentLength > maxBodyBytes {
			st := writeError(w, http.StatusRequestEntityTooLarge, "request body over "+strconv.Itoa(maxBodyBytes)+" bytes")
			s.finish(r, k, "body", "", st)
			return
		}
		// ServeMux would redirect a path with "..", "//" or "." in text;
		// no API path has them.
		if p := r.URL.Path; !strings.HasPrefix(p, "/") || path.Clean(p) != p || r.RequestURI == "*" {
			st := writeError(w, http.StatusNotFound, "no such endpoint: the path is not in canonical form")
			s.finish(r, k, "unknown", "", st)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
		defer cancel()
		mux.ServeHTTP(w, r.WithContext(context.WithValue(ctx, keyCtx{}, k)))
	})
}

// serveRoute checks the method and the key's role, runs the handler, and
// audits the call.
func (s *Service) serveRoute(w http.ResponseWriter, r *http.Request, rts []route) {
	k, _ := r.Context().Value(keyCtx{}).(store.APIKey)
	var rt *route
	var allow []string
	for i := range rts {
		allow = append(allow, rts[i].method)
		if rts[i].method == r.Method || r.Method == http.MethodHead && rts[i].method == http.MethodGet {
			rt = &rts[i]
		}
	}
	if rt == nil {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		st := writeError(w, http.StatusMethodNotAllowed, truncate(r.Method, 16)+" is not allowed here; use "+strings.Join(allow, ", "))
		s.finish(r, k, rts[0].name, "", st)
		return
	}
	if roleRank[k.Role] < roleRank[rt.role] {
		st := writeError(w, http.StatusForbidden, "this API key's role is "+k.Role+"; "+rt.name+" needs "+rt.role+" (amtd apikey create --role "+rt.role+")")
		s.finish(r, k, rt.name, "", st)
		return
	}
	obj, st := rt.h(w, r)
	s.finish(r, k, rt.name, obj, st)
}

// authenticate returns the request's key, or why there is none.
func (s *Service) authenticate(r *http.Request) (store.APIKey, string) {
	var tok string
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, rest, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return store.APIKey{}, "scheme"
		}
		tok = strings.TrimSpace(rest)
	} else {
		tok = strings.TrimSpace(r.Header.Get("X-Api-Key"))
	}
	if tok == "" {
		return store.APIKey{}, "missing"
	}
	v := secret.FromString(tok)
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	k, err := s.deps.Store.APIKeys().Authenticate(ctx, v)
	if errors.Is(err, store.ErrUnauthorized) {
		return store.APIKey{}, "invalid"
	}
	if err != nil {
		s.log.Error("api: authenticating a key", "err", err)
		return store.APIKey{}, "error"
	}
	return k, ""
}

// maxLoginBytes bounds a POST /authorize body: a user name and a token.
const maxLoginBytes = 4 << 10

// authorize is POST /api/v1/authorize, which Open AMT clients call first
// with {"username", "password"} to get a bearer token (spec/redirection.md
// §7.1). amtd has no passwords: the password is an API key, and the token
// returned is that key, so a script written for MPS logs in with
// username=anything password=TOKEN and then sends Bearer TOKEN as before.
func (s *Service) authorize(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		st := writeError(w, http.StatusMethodNotAllowed, "POST {\"username\": ..., \"password\": API key}")
		s.requests.With("authorize", strconv.Itoa(st)).Inc()
		return
	}
	var login struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxLoginBytes))
	if err := dec.Decode(&login); err != nil || login.Password == "" {
		st := writeError(w, http.StatusBadRequest, "want a JSON body {\"username\": NAME, \"password\": API key} under 4 KiB")
		s.requests.With("authorize", strconv.Itoa(st)).Inc()
		return
	}
	tok := secret.FromString(login.Password)
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	k, err := s.deps.Store.APIKeys().Authenticate(ctx, tok)
	if err != nil {
		reason := "invalid"
		if !errors.Is(err, store.ErrUnauthorized) {
			s.log.Error("api: authenticating a key", "err", err)
			reason = "error"
		}
		s.authFailures.With(reason).Inc()
		// MPS's words, which its clients show.
		st := writeError(w, http.StatusUnauthorized, "Incorrect Username and/or Password!")
		s.requests.With("authorize", strconv.Itoa(st)).Inc()
		if !s.failAudit.allow(s.now()) {
			s.auditDropped.Inc()
			return
		}
		s.audit(r, store.AuditEntry{Actor: "api:anonymous", Action: "api.authorize", Object: "api",
			Result: strconv.Itoa(st) + " user " + printable(truncate(login.Username, 64))})
		return
	}
	st := writeJSON(w, http.StatusOK, map[string]string{"token": login.Password})
	s.finish(r, k, "authorize", "", st)
}

// refuse answers a request without a valid key. It never says which check
// failed beyond "missing" or "invalid or revoked".
func (s *Service) refuse(w http.ResponseWriter, r *http.Request, reason string) {
	s.authFailures.With(reason).Inc()
	var st int
	switch reason {
	case "error":
		st = writeError(w, http.StatusServiceUnavailable, "the key store is not answering; try again")
	case "missing":
		w.Header().Set("WWW-Authenticate", `Bearer realm="amtd"`)
		st = writeError(w, http.StatusUnauthorized, "an API key is required: send Authorization: Bearer TOKEN (amtd apikey create makes one)")
	case "scheme":
		w.Header().Set("WWW-Authenticate", `Bearer realm="amtd"`)
		st = writeError(w, http.StatusUnauthorized, "the Authorization header must be Bearer TOKEN")
	default:
		w.Header().Set("WWW-Authenticate", `Bearer realm="amtd", error="invalid_token"`)
		st = writeError(w, http.StatusUnauthorized, "invalid or revoked API key")
	}
	s.requests.With("unauthenticated", strconv.Itoa(st)).Inc()
	if !s.failAudit.allow(s.now()) {
		s.auditDropped.Inc()
		return
	}
	s.audit(r, store.AuditEntry{Actor: "api:anonymous", Action: "api.auth", Object: "api",
		Result: strconv.Itoa(st) + " " + reason})
}

// finish counts and audits one authenticated call.
func (s *Service) finish(r *http.Request, k store.APIKey, name, object string, status int) {
	s.requests.With(name, strconv.Itoa(status)).Inc()
	if object == "" {
		object = "api"
	}
	res := store.ResultOK
	if status >= 400 {
		res = strconv.Itoa(status) + " " + http.StatusText(status)
	}
	s.audit(r, store.AuditEntry{Actor: "api:key:" + k.ID, Action: "api." + name, Object: object, Result: res})
}

// audit writes e with the caller's address as its reason. The row is
// written on a context of its own: a client that hung up is still audited.
func (s *Service) audit(r *http.Request, e store.AuditEntry) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	e.Reason = printable(truncate(r.Method, 16) + " " + truncate(r.URL.Path, 200) + " from " + host)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), requestTimeout)
	defer cancel()
	if err := s.deps.Store.Audit(ctx, e); err != nil {
		s.log.Error("api: audit row not written", "action", e.Action, "err", err)
	}
}

// printable keeps what a client sent from writing control characters
// (newlines, escapes) into the audit trail amtd shows.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == utf8.RuneError {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
