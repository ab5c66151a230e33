package api

import (
	"encoding/pem"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"amtd/pki"
	"amtd/store"
)

// Device is a device as MPS's GET /api/v1/devices/{guid} returns it
// (spec/redirection.md §7.1). Fields amtd has no value for are sent empty
// rather than left out, so clients that index them find them. There is no
// password here, ever: mpsusername is the CIRA user name only.
type Device struct {
	GUID             string     `json:"guid"`
	Hostname         string     `json:"hostname"`
	FriendlyName     string     `json:"friendlyName"`
	DNSSuffix        string     `json:"dnsSuffix"`
	Tags             []string   `json:"tags"`
	MPSUsername      string     `json:"mpsusername"`
	TenantID         string     `json:"tenantId"`
	ConnectionStatus bool       `json:"connectionStatus"`
	MPSInstance      *string    `json:"mpsInstance"`
	LastConnected    *time.Time `json:"lastConnected"`
	LastSeen         *time.Time `json:"lastSeen"`
	LastDisconnected *time.Time `json:"lastDisconnected"`
	DeviceInfo       DeviceInfo `json:"deviceInfo"`
}

// DeviceInfo is MPS's deviceInfo. MPS keeps currentMode as a string; amtd
// sends AMT's CurrentControlMode number in it ("0" pre-provisioning, "1"
// CCM, "2" ACM).
type DeviceInfo struct {
	FWVersion   string     `json:"fwVersion"`
	FWBuild     string     `json:"fwBuild"`
	FWSku       string     `json:"fwSku"`
	CurrentMode string     `json:"currentMode"`
	Features    string     `json:"features"`
	IPAddress   string     `json:"ipAddress"`
	LastUpdated *time.Time `json:"lastUpdated"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func deviceJSON(d store.Device) Device {
	out := Device{
		GUID:             d.UUID,
		Hostname:         d.Hostname,
		FriendlyName:     d.FriendlyName,
		DNSSuffix:        d.DNSSuffix,
		Tags:             d.Tags,
		MPSUsername:      d.CIRA.MPSUsername,
		ConnectionStatus: d.CIRA.Connected,
		LastConnected:    timePtr(d.CIRA.ConnectedSince),
		LastSeen:         timePtr(d.CIRA.LastSeen),
		LastDisconnected: timePtr(d.CIRA.LastDisconnected),
		DeviceInfo: DeviceInfo{
			FWVersion:   d.AMTVersion,
			FWBuild:     d.AMTBuild,
			FWSku:       d.AMTSKU,
			CurrentMode: strconv.Itoa(d.ControlMode),
			LastUpdated: timePtr(d.Updated),
		},
	}
	if out.Tags == nil {
		out.Tags = []string{}
	}
	if d.CIRA.Connected && d.CIRA.OwnerInstance != "" {
		inst := d.CIRA.OwnerInstance
		out.MPSInstance = &inst
	}
	if len(d.Addresses) > 0 {
		out.DeviceInfo.IPAddress = d.Addresses[0].String()
	}
	return out
}

// MPS pages device lists 25 at a time unless $top says otherwise.
const (
	defaultTop = 25
	maxTop     = 10000
)

// deviceFilter reads the query MPS's GET /devices takes that the store can
// answer: status (0/1), tags (one), $top, $skip, $count.
func deviceFilter(r *http.Request) (q store.DeviceQuery, count bool, err error) {
	v := r.URL.Query()
	// MPS filters amtd cannot answer yet are refused, not ignored: a
	// script must not act on an unfiltered list it believes filtered.
	for _, f := range []string{"hostname", "friendlyName", "method"} {
		if v.Has(f) {
			return q, false, errors.New("the " + f + " filter is not supported by this version of amtd (status, tags, $top, $skip and $count are)")
		}
	}
	switch s := strings.ToLower(v.Get("status")); s {
	case "":
	case "1", "true", "connected":
		t := true
		q.Connected = &t
	case "0", "false", "disconnected":
		f := false
		q.Connected = &f
	default:
		return q, false, errors.New("status must be 1 (connected) or 0 (disconnected)")
	}
	if tags := v.Get("tags"); tags != "" {
		if strings.Contains(tags, ",") {
			return q, false, errors.New("tags: this version of amtd filters on one tag at a time")
		}
		q.Tag = tags
	}
	q.Limit = defaultTop
	if t := v.Get("$top"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 || n > maxTop {
			return q, false, errors.New("$top must be a number from 0 to " + strconv.Itoa(maxTop))
		}
		q.Limit = n
	}
	if sk := v.Get("$skip"); sk != "" {
		n, err := strconv.Atoi(sk)
		if err != nil || n < 0 {
			return q, false, errors.New("$skip must be a number, 0 or more")
		}
		q.Offset = n
	}
	if c := v.Get("$count"); c != "" {
		count, err = strconv.ParseBool(c)
		if err != nil {
			return q, false, errors.New("$count must be true or false")
		}
	}
	return q, count, nil
}

// listDevices is GET /api/v1/devices. With $count=true the answer is
// {"data": [...], "totalCount": N}, as MPS's; otherwise the bare list.
func (s *Service) listDevices(w http.ResponseWriter, r *http.Request) (string, int) {
	q, count, err := deviceFilter(r)
	if err != nil {
		return "devices", writeError(w, http.StatusBadRequest, err.Error())
	}
	list := []Device{}
	if q.Limit > 0 {
		ds, err := s.deps.Store.Devices().List(r.Context(), q)
		if err != nil {
			return "devices", s.internal(w, "listing devices", err)
		}
		for _, d := range ds {
			list = append(list, deviceJSON(d))
		}
	}
	if !count {
		return "devices", writeJSON(w, http.StatusOK, list)
	}
	total, err := s.countDevices(r, store.DeviceQuery{Tag: q.Tag, Connected: q.Connected})
	if err != nil {
		return "devices", s.internal(w, "counting devices", err)
	}
	return "devices", writeJSON(w, http.StatusOK, struct {
		Data       []Device `json:"data"`
		TotalCount int      `json:"totalCount"`
	}{list, total})
}

// countDevices counts the devices q's tag and CIRA state select, in the
// database.
func (s *Service) countDevices(r *http.Request, q store.DeviceQuery) (int, error) {
	return s.deps.Store.Devices().CountWhere(r.Context(), q)
}

// deviceStats is GET /api/v1/devices/stats.
func (s *Service) deviceStats(w http.ResponseWriter, r *http.Request) (string, int) {
	total, err := s.countDevices(r, store.DeviceQuery{})
	if err != nil {
		return "devices", s.internal(w, "counting devices", err)
	}
	t := true
	connected, err := s.countDevices(r, store.DeviceQuery{Connected: &t})
	if err != nil {
		return "devices", s.internal(w, "counting devices", err)
	}
	return "devices", writeJSON(w, http.StatusOK, struct {
		Total        int `json:"totalCount"`
		Connected    int `json:"connectedCount"`
		Disconnected int `json:"disconnectedCount"`
	}{total, connected, max(total-connected, 0)})
}

// deviceTags is GET /api/v1/devices/tags: every tag in use, sorted.
func (s *Service) deviceTags(w http.ResponseWriter, r *http.Request) (string, int) {
	seen := map[string]bool{}
	q := store.DeviceQuery{Limit: maxTop}
	for {
		ds, err := s.deps.Store.Devices().List(r.Context(), q)
		if err != nil {
			return "devices", s.internal(w, "listing tags", err)
		}
		for _, d := range ds {
			for _, t := range d.Tags {
				seen[t] = true
			}
		}
		if len(ds) < q.Limit {
			break
		}
		q.Offset += len(ds)
	}
	return "devices", writeJSON(w, http.StatusOK, slices.Sorted(maps.Keys(seen)))
}

// health is GET /api/v1/health: whether the store answers with a master
// key (MPS reports its database and secret store, spec/redirection.md §7.3;
// amtd's store is both).
func (s *Service) health(w http.ResponseWriter, r *http.Request) (string, int) {
	if err := s.deps.Store.Health(r.Context()); err != nil {
		s.log.Error("api: health", "err", err)
		return "api", writeJSON(w, http.StatusServiceUnavailable, map[string]string{"db": "unavailable", "secretStore": "unavailable"})
	}
	return "api", writeJSON(w, http.StatusOK, map[string]string{"db": "OK", "secretStore": "OK"})
}

// ciraCert is GET /api/v1/ciracert: the appliance root in PEM, the one
// provisioning puts into AMT for CIRA (spec/redirection.md §7.3).
func (s *Service) ciraCert(w http.ResponseWriter, r *http.Request) (string, int) {
	ca, err := pki.Load(r.Context(), s.deps.Store)
	if errors.Is(err, store.ErrNotFound) {
		return "api", writeError(w, http.StatusNotFound, "the appliance has no CA yet")
	}
	if err != nil {
		return "api", s.internal(w, "reading the appliance CA", err)
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.WriteHeader(http.StatusOK)
	_ = pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: ca.RootDER()})
	return "api", http.StatusOK
}

// getDevice is GET /api/v1/devices/{guid}; the GUID in any case.
func (s *Service) getDevice(w http.ResponseWriter, r *http.Request) (string, int) {
	u, err := store.NormalizeUUID(r.PathValue("guid"))
	if err != nil {
		return "devices", writeError(w, http.StatusBadRequest, "guid: "+err.Error())
	}
	obj := "device/" + u
	d, err := s.deps.Store.Devices().Get(r.Context(), u)
	if errors.Is(err, store.ErrNotFound) {
		return obj, writeError(w, http.StatusNotFound, "Device ID "+u+" not found")
	}
	if err != nil {
		return obj, s.internal(w, "reading device "+u, err)
	}
	return obj, writeJSON(w, http.StatusOK, deviceJSON(d))
}

// version is GET /api/v1/version (MPS's service version, spec/redirection.md §7.3).
func (s *Service) version(w http.ResponseWriter, r *http.Request) (string, int) {
	return "api", writeJSON(w, http.StatusOK, struct {
		ServiceVersion string `json:"serviceVersion"`
		Product        string `json:"product"`
	}{s.deps.Version, "amtd"})
}

// AuditEntry is one row of amtd's audit trail as GET /api/v1/audit sends it.
type AuditEntry struct {
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Object string    `json:"object"`
	Reason string    `json:"reason"`
	Result string    `json:"result"`
}

// listAudit is GET /api/v1/audit?object=&limit= (admin): amtd's own audit
// trail, newest first. It is not MPS's /amt/log/audit, which is a device's.
func (s *Service) listAudit(w http.ResponseWriter, r *http.Request) (string, int) {
	q := store.AuditQuery{Object: r.URL.Query().Get("object"), Limit: 100}
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 10000 {
			return "audit", writeError(w, http.StatusBadRequest, "limit must be a number from 1 to 10000")
		}
		q.Limit = n
	}
	es, err := s.deps.Store.AuditList(r.Context(), q)
	if err != nil {
		return "audit", s.internal(w, "reading the audit trail", err)
	}
	out := make([]AuditEntry, 0, len(es))
	for _, e := range es {
		out = append(out, AuditEntry{e.Time.UTC(), e.Actor, e.Action, e.Object, e.Reason, e.Result})
	}
	return "audit", writeJSON(w, http.StatusOK, out)
}

// internal logs err and answers 500 without it: store errors may name paths.
func (s *Service) internal(w http.ResponseWriter, what string, err error) int {
	s.log.Error("api: "+what, "err", err)
	return writeError(w, http.StatusInternalServerError, what+" failed; the daemon's log has the cause")
}
